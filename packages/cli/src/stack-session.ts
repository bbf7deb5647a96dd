import { createPipelineClient, type PipelineClient } from '@doppel/clients';
import { relative, isAbsolute } from 'node:path';
import { startStack, type Stack, type StackOptions } from './stack.launcher.js';
import {
  clearStackRecord, readStackRecord, requireModel, stateDirFor, writeStackRecord, type Workspace,
} from './workspace.config.js';

export interface Session {
  pipeline: PipelineClient;
  /** The image root the pipeline resolves relative paths against. */
  root: string;
  /** True when this command started the stack (and will stop it). */
  started: boolean;
  close(): Promise<void>;
}

async function reachable(url: string): Promise<'ready' | 'not-ready' | 'down'> {
  try {
    const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(3000) });
    return r.ok ? 'ready' : 'not-ready';
  } catch {
    return 'down';
  }
}

export const isInside = (root: string, p: string): boolean => {
  const r = relative(root, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
};

let active: Stack | undefined;
/** Stops a stack this process started (Ctrl-C path). */
export const stopActive = async () => { await active?.stop(); active = undefined; };
/** startStack, remembered so that Ctrl-C (stopActive) stops it. */
export const startActive = async (opts: StackOptions): Promise<Stack> => (active = await startStack(opts));

/**
 * Uses the pipeline if one answers on the configured port; otherwise starts the whole
 * stack for `root` (the same code as `doppel up`) and stops it on close().
 */
export async function openSession(ws: Workspace, root: string, log: (s: string) => void, opts: { rootGiven?: boolean } = {}): Promise<Session> {
  const url = `http://127.0.0.1:${ws.ports.pipeline}`;
  const state = await reachable(url);
  const pipeline = createPipelineClient({ baseUrl: url, timeoutMs: 15 * 60_000, retries: 1 });
  if (state !== 'down') {
    if (state === 'not-ready') throw new Error(`the pipeline at ${url} answers but is not ready: see its /readyz (and /health/downstream for the three services it calls)`);
    const rec = readStackRecord(ws.home);
    const served = opts.rootGiven ? root : rec?.imagesRoot ?? root;
    return { pipeline, root: served, started: false, close: async () => {} };
  }
  requireModel(ws.modelPath);
  const stateDir = stateDirFor(ws.home, root);
  log(`starting the stack for ${root} (state in ${stateDir}) ...`);
  const t = Date.now();
  await startActive({ repoRoot: ws.repoRoot, imagesRoot: root, stateDir, modelPath: ws.modelPath, ports: ws.ports });
  writeStackRecord(ws.home, { pid: process.pid, imagesRoot: root, stateDir, ports: ws.ports });
  log(`stack ready in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  return {
    pipeline, root, started: true,
    close: async () => {
      await stopActive();
      clearStackRecord(ws.home, process.pid);
    },
  };
}
