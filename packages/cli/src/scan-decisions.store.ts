import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * What a person said about a group, remembered in the folder's state directory so the
 * next scan does not ask again: `not-duplicates` (the matcher was wrong) or `keep-all`
 * (they are copies, and all of them stay).
 */
export type GroupDecision = 'not-duplicates' | 'keep-all';
export const GROUP_DECISIONS: readonly GroupDecision[] = ['not-duplicates', 'keep-all'];

export interface FileStampLite { bytes: number; mtime_ms: number }

export interface DecisionRecord {
  decision: GroupDecision;
  decided_at: string;
  /** The group's files as they were when decided: a change to any of them reopens it. */
  files: Record<string, FileStampLite>;
}

interface DecisionFile { version: 1; decisions: DecisionRecord[] }

export const decisionsFile = (stateDir: string) => join(stateDir, 'decisions.json');

export function loadDecisions(stateDir: string): DecisionRecord[] {
  let text: string;
  try {
    text = readFileSync(decisionsFile(stateDir), 'utf8');
  } catch {
    return [];
  }
  const parsed = JSON.parse(text) as Partial<DecisionFile>;
  if (!Array.isArray(parsed.decisions)) throw new Error(`${decisionsFile(stateDir)}: not a decisions file (no "decisions" list)`);
  return parsed.decisions;
}

/**
 * Adds decisions, replacing any earlier one about the same set of files. Written to a
 * temp file and renamed so an interrupted write never loses the earlier decisions.
 */
export function rememberDecisions(stateDir: string, add: DecisionRecord[]): void {
  const key = (r: DecisionRecord) => Object.keys(r.files).sort().join('\n');
  const replaced = new Set(add.map(key));
  const all = [...loadDecisions(stateDir).filter((r) => !replaced.has(key(r))), ...add];
  const file = decisionsFile(stateDir);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, `${JSON.stringify({ version: 1, decisions: all } satisfies DecisionFile, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

/**
 * The decision that still covers a group, if any: every member was part of the decided
 * group and none of them changed (size and mtime). A new member, or a changed file,
 * brings the group back.
 */
export function standingDecision(members: string[], current: (m: string) => FileStampLite | undefined, decisions: DecisionRecord[]): DecisionRecord | undefined {
  return decisions.find((d) => members.every((m) => {
    const then = d.files[m];
    const now = current(m);
    return then !== undefined && now !== undefined && then.bytes === now.bytes && then.mtime_ms === now.mtime_ms;
  }));
}
