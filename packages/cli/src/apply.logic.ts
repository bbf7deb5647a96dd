import { copyFile, mkdir, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { ACTIONS_KIND, ActionsFile, UNDO_KIND, UndoManifest, validate } from '@doppel/schemas';
import type { DecisionRecord, GroupDecision } from './scan-decisions.store.js';
import type { ScanReport } from './scan-report.model.js';

/** One file to take out of the folder, with the size and mtime the scan saw. */
export interface PlannedRemoval { relative_path: string; bytes: number; mtime_ms: number; group: number }

export interface ApplyPlan {
  root: string;
  removals: PlannedRemoval[];
  /** keep-all / not-duplicates groups: nothing moves, the decision is remembered. */
  decisions: Array<{ group: number; decision: GroupDecision; record: DecisionRecord }>;
}

const inside = (root: string, p: string) => {
  const r = relative(root, p);
  return r !== '' && !r.startsWith('..') && !isAbsolute(r);
};

function safeRel(root: string, rel: string, where: string): string {
  if (isAbsolute(rel) || rel.includes('\0') || !inside(root, resolve(root, rel))) throw new Error(`${where}: ${JSON.stringify(rel)} is not a path inside ${root}`);
  return rel;
}

/** The scan report as actions: in each group, the suggested keeper stays and the other members go. */
export function actionsFromReport(r: ScanReport): ActionsFile {
  const files: ActionsFile['files'] = {};
  for (const [p, f] of Object.entries(r.images)) files[p] = { bytes: f.bytes, mtime_ms: f.mtime_ms };
  return {
    kind: ACTIONS_KIND, version: 1, root: r.root, report_generated_at: r.generated_at, files,
    groups: r.groups.map((g) => ({ group: g.id, decision: 'remove', keep: [g.keeper], remove: g.members.filter((m) => m !== g.keeper) })),
  };
}

/** Reads FILE: a scan report (`doppel-report.json`) or an actions file exported from the page. */
export function readActions(file: string): ActionsFile {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not a JSON file (${(e as Error).message})`);
  }
  if (data && typeof data === 'object' && (data as { kind?: unknown }).kind === 'doppel-scan-report') return actionsFromReport(data as ScanReport);
  const v = validate(ActionsFile, data);
  if (!v.ok) throw new Error(`${file}: not a doppel scan report or actions file: ${v.error.message}`);
  return v.value;
}

export function planActions(a: ActionsFile, where = 'actions'): ApplyPlan {
  const root = resolve(a.root);
  const removals: PlannedRemoval[] = [];
  const decisions: ApplyPlan['decisions'] = [];
  const seen = new Set<string>();
  const stampOf = (rel: string, g: number) => {
    const s = a.files[rel];
    if (!s) throw new Error(`${where}: group ${g}: ${rel} has no recorded size and mtime in "files"`);
    return s;
  };
  for (const g of a.groups) {
    for (const rel of [...g.keep, ...g.remove]) safeRel(root, rel, `${where}: group ${g.group}`);
    if (g.decision !== 'remove') {
      const files = Object.fromEntries([...g.keep, ...g.remove].map((m) => [m, stampOf(m, g.group)]));
      decisions.push({ group: g.group, decision: g.decision, record: { decision: g.decision, decided_at: new Date().toISOString(), files } });
      continue;
    }
    if (g.remove.length === 0) continue;
    // Never empty a group: at least one of its files must stay where it is.
    if (g.keep.length === 0) throw new Error(`${where}: group ${g.group} removes every file and keeps none`);
    for (const rel of g.remove) {
      if (g.keep.includes(rel)) throw new Error(`${where}: group ${g.group}: ${rel} is both kept and removed`);
      if (seen.has(rel)) continue;
      seen.add(rel);
      removals.push({ relative_path: rel, ...stampOf(rel, g.group), group: g.group });
    }
  }
  return { root, removals, decisions };
}

export type Refusal = { relative_path: string; why: string };

/** Files whose size or mtime differ from the scan's (or that are gone) are refused, not touched. */
export async function checkUnchanged(root: string, removals: PlannedRemoval[]): Promise<{ ok: PlannedRemoval[]; refused: Refusal[] }> {
  const ok: PlannedRemoval[] = [];
  const refused: Refusal[] = [];
  for (const r of removals) {
    let s;
    try {
      s = await stat(join(root, r.relative_path));
    } catch {
      refused.push({ relative_path: r.relative_path, why: 'no longer there' });
      continue;
    }
    if (!s.isFile()) refused.push({ relative_path: r.relative_path, why: 'not a regular file' });
    else if (s.size !== r.bytes || Math.floor(s.mtimeMs) !== Math.floor(r.mtime_ms)) refused.push({ relative_path: r.relative_path, why: `changed since the scan (size ${s.size} vs ${r.bytes}, mtime ${new Date(s.mtimeMs).toISOString()})` });
    else ok.push(r);
  }
  return { ok, refused };
}

/** rename, or copy + keep mtime + unlink across file systems. Never overwrites. */
async function moveFile(from: string, to: string): Promise<void> {
  if (existsSync(to)) throw new Error(`${to} already exists`);
  await mkdir(dirname(to), { recursive: true });
  try {
    await rename(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    const s = await stat(from);
    await copyFile(from, to);
    await utimes(to, s.atime, s.mtime);
    await unlink(from);
  }
}

const writeManifest = (path: string, m: UndoManifest) => writeFile(path, `${JSON.stringify(m, null, 2)}\n`);

/**
 * Moves the checked removals under `quarantine`, keeping their paths relative to the root.
 * The undo manifest is written before the first move and rewritten after each, so an
 * interrupted run can still be undone.
 */
export async function moveToQuarantine(root: string, removals: PlannedRemoval[], quarantine: string, now = new Date()): Promise<{ manifest: string; moved: number; failed: Refusal[] }> {
  const q = resolve(quarantine);
  if (q === root || inside(root, q)) throw new Error(`--move-to ${q} is inside the scanned folder ${root}: the next scan would find the copies again; choose a folder outside it`);
  await mkdir(q, { recursive: true });
  const manifest = join(q, `doppel-${now.toISOString().replace(/[:.]/g, '-')}.undo.json`);
  const m: UndoManifest = {
    kind: UNDO_KIND, version: 1, created_at: now.toISOString(), root, quarantine: q,
    moves: removals.map((r) => ({ relative_path: r.relative_path, bytes: r.bytes, mtime_ms: r.mtime_ms, moved: false })),
  };
  await writeManifest(manifest, m);
  const failed: Refusal[] = [];
  let moved = 0;
  for (const entry of m.moves) {
    try {
      await moveFile(join(root, entry.relative_path), join(q, entry.relative_path));
      entry.moved = true;
      moved += 1;
      await writeManifest(manifest, m);
    } catch (e) {
      failed.push({ relative_path: entry.relative_path, why: (e as Error).message });
    }
  }
  m.moves = m.moves.filter((x) => x.moved);
  await writeManifest(manifest, m);
  return { manifest, moved, failed };
}

export async function deleteFiles(root: string, removals: PlannedRemoval[]): Promise<{ deleted: number; failed: Refusal[] }> {
  const failed: Refusal[] = [];
  let deleted = 0;
  for (const r of removals) {
    try {
      await unlink(join(root, r.relative_path));
      deleted += 1;
    } catch (e) {
      failed.push({ relative_path: r.relative_path, why: (e as Error).message });
    }
  }
  return { deleted, failed };
}

export function readManifest(file: string): UndoManifest {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not a JSON file (${(e as Error).message})`);
  }
  const v = validate(UndoManifest, data);
  if (!v.ok) throw new Error(`${file}: not a doppel undo manifest: ${v.error.message}`);
  return v.value;
}

/** Puts every moved file back; refuses to overwrite a file that took its place. */
export async function undoMoves(m: UndoManifest, dryRun: boolean): Promise<{ restored: string[]; refused: Refusal[] }> {
  const restored: string[] = [];
  const refused: Refusal[] = [];
  for (const e of m.moves.filter((x) => x.moved)) {
    safeRel(m.root, e.relative_path, 'manifest');
    const from = join(m.quarantine, e.relative_path);
    const to = join(m.root, e.relative_path);
    if (!existsSync(from)) { refused.push({ relative_path: e.relative_path, why: `not in the quarantine folder (${from})` }); continue; }
    if (existsSync(to)) { refused.push({ relative_path: e.relative_path, why: 'a file is at its original place again; left in the quarantine' }); continue; }
    if (!dryRun) await moveFile(from, to);
    restored.push(e.relative_path);
  }
  return { restored, refused };
}
