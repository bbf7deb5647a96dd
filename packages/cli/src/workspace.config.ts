import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StackPorts } from './stack.launcher.js';

/** packages/cli/src (or dist) -> repository root. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

export const DEFAULT_PORTS: StackPorts = { pipeline: 8000, encoder: 8500, search: 8800, matching: 8300 };

export interface Workspace {
  repoRoot: string;
  /** <repo>/.doppel unless --home / DOPPEL_HOME. */
  home: string;
  modelPath: string;
  ports: StackPorts;
}

/**
 * One state folder per image root: the index of a folder lives with that folder's id,
 * so re-running `index`/`scan` on it resumes, and scanning another folder never reports
 * matches against images of a previous one.
 */
export function stateDirFor(home: string, imagesRoot: string): string {
  const id = createHash('sha256').update(imagesRoot).digest('hex').slice(0, 10);
  const name = basename(imagesRoot).replace(/[^\w.-]+/g, '_').slice(0, 40) || 'root';
  return join(home, 'roots', `${name}-${id}`);
}

export const canonical = (p: string): string => realpathSync(resolve(p));

export function requireModel(modelPath: string): void {
  if (!existsSync(modelPath)) {
    throw new Error(`model not found at ${modelPath}\n  run \`pnpm models\` to provision it, or pass --model FILE (or MODEL_PATH)`);
  }
}

/** Written by a running `doppel up` (or an auto-started stack) so other commands know its image root. */
export interface StackRecord { pid: number; imagesRoot: string; stateDir: string; ports: StackPorts }

const recordFile = (home: string) => join(home, 'stack.json');

export function readStackRecord(home: string): StackRecord | undefined {
  try {
    const rec = JSON.parse(readFileSync(recordFile(home), 'utf8')) as StackRecord;
    process.kill(rec.pid, 0);
    return rec;
  } catch {
    return undefined;
  }
}

export function writeStackRecord(home: string, rec: StackRecord): void {
  mkdirSync(home, { recursive: true });
  writeFileSync(recordFile(home), JSON.stringify(rec, null, 2));
}

export function clearStackRecord(home: string, pid: number): void {
  const rec = readStackRecord(home);
  if (!rec || rec.pid === pid) rmSync(recordFile(home), { force: true });
}

/** The last image root indexed, so `doppel query IMAGE` needs no --root after `doppel index DIR`. */
export function rememberRoot(home: string, root: string): void {
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, 'last-root'), root);
}

export function lastRoot(home: string): string | undefined {
  try {
    return readFileSync(join(home, 'last-root'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
