import { existsSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  checkUnchanged, deleteFiles, moveToQuarantine, planActions, readActions, readManifest, undoMoves, type Refusal,
} from './apply.logic.js';
import { rememberDecisions } from './scan-decisions.store.js';
import { formatBytes } from './scan-report.model.js';
import { stateDirFor } from './workspace.config.js';

export interface ApplyFlags { moveTo?: string; delete?: boolean; yes?: boolean; home: string }

const out = (s: string) => process.stdout.write(`${s}\n`);

function printRefused(refused: Refusal[], verb: string) {
  for (const r of refused) out(`  refused: ${r.relative_path}: ${r.why}`);
  if (refused.length) out(`${refused.length} file${refused.length === 1 ? '' : 's'} not ${verb}`);
}

/**
 * `doppel apply FILE.json --move-to DIR [--yes]` / `--delete --yes`. Without --yes it only
 * prints the plan. Returns the exit code: 0, or 2 when a file was refused.
 */
export async function cmdApply(file: string | undefined, f: ApplyFlags): Promise<number> {
  if (!file) throw new Error('apply: FILE.json is required (the scan report, or actions exported from the page)');
  if (f.delete && f.moveTo) throw new Error('apply: --delete and --move-to exclude each other');
  if (!f.delete && !f.moveTo) throw new Error('apply: say where the copies go with --move-to DIR (or, to delete them for good, --delete)');
  const actions = readActions(file);
  if (!existsSync(actions.root)) throw new Error(`apply: the scanned folder's root ${actions.root} does not exist`);
  const root = realpathSync(actions.root);
  const plan = planActions({ ...actions, root }, file);
  const { ok, refused } = await checkUnchanged(root, plan.removals);
  const bytes = ok.reduce((n, r) => n + r.bytes, 0);
  const dest = f.moveTo ? resolve(f.moveTo) : undefined;
  const dry = !f.yes;
  const verb = f.delete ? 'delete' : 'move';
  out(`${dry ? 'dry run: would ' : ''}${verb} ${ok.length} file${ok.length === 1 ? '' : 's'} (${formatBytes(bytes)}) from ${root}${dest ? ` to ${dest}` : ''}`);
  for (const r of ok) out(`  ${verb} ${r.relative_path}${dest ? ` -> ${join(dest, r.relative_path)}` : ''}`);
  for (const d of plan.decisions) out(`  ${dry ? 'would remember' : 'remember'}: group ${d.group} is ${d.decision} (${Object.keys(d.record.files).length} files)`);
  printRefused(refused, f.delete ? 'deleted' : 'moved');
  if (dry) {
    out(`nothing was touched; add --yes to ${verb} them`);
    return refused.length ? 2 : 0;
  }
  if (plan.decisions.length) rememberDecisions(stateDirFor(f.home, root), plan.decisions.map((d) => d.record));
  if (f.delete) {
    const r = await deleteFiles(root, ok);
    out(`deleted ${r.deleted} file${r.deleted === 1 ? '' : 's'} (no undo)`);
    printRefused(r.failed, 'deleted');
    return refused.length || r.failed.length ? 2 : 0;
  }
  const r = await moveToQuarantine(root, ok, dest!);
  out(`moved ${r.moved} file${r.moved === 1 ? '' : 's'} to ${dest}`);
  printRefused(r.failed, 'moved');
  out(`undo manifest: ${r.manifest}\n  put them back with: doppel undo ${r.manifest}`);
  return refused.length || r.failed.length ? 2 : 0;
}

/** `doppel undo MANIFEST [--dry-run]`: puts the moved files back. */
export async function cmdUndo(file: string | undefined, dryRun: boolean): Promise<number> {
  if (!file) throw new Error('undo: MANIFEST (the *.undo.json that apply printed) is required');
  const m = readManifest(file);
  const r = await undoMoves(m, dryRun);
  out(`${dryRun ? 'dry run: would restore' : 'restored'} ${r.restored.length} file${r.restored.length === 1 ? '' : 's'} to ${m.root}`);
  for (const p of r.restored) out(`  ${p}`);
  printRefused(r.refused, 'restored');
  return r.refused.length ? 2 : 0;
}
