import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, normalize } from 'node:path';
import { TruthFile, validate } from '@doppel/schemas';

export interface TruthEntry { query: string; expected: string | null }

const badPath = (p: string) => isAbsolute(p) || p.includes('\0') || normalize(p).split(/[\\/]/).includes('..');

/**
 * Reads a truth file (`{"truth": {"<query>": "<indexed file>" | null}}`, paths relative to
 * the queries and index folders) and checks every entry against the two folders. Anything
 * wrong is refused with a message naming the entry.
 */
export function parseTruth(text: string, where: string, dirs: { index: string; queries: string }): TruthEntry[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new Error(`${where}: not JSON (${(e as Error).message})`);
  }
  const v = validate(TruthFile, data);
  if (!v.ok) {
    const field = v.error.field.replace(/^truth\./, '');
    throw new Error(v.error.field.startsWith('truth.') ? `${where}: entry ${JSON.stringify(field)}: must be a file name (string) or null` : `${where}: ${v.error.message} (expected {"truth": {"<query>": "<indexed file>" | null}})`);
  }
  const entries = Object.entries(v.value.truth);
  if (entries.length === 0) throw new Error(`${where}: "truth" has no entry`);
  return entries.map(([query, expected]) => {
    const name = `${where}: entry ${JSON.stringify(query)}`;
    if (badPath(query)) throw new Error(`${name}: the query must be a path inside the queries folder`);
    if (!isFile(join(dirs.queries, query))) throw new Error(`${name}: no such file in the queries folder ${dirs.queries}`);
    if (expected !== null) {
      if (badPath(expected)) throw new Error(`${name}: ${JSON.stringify(expected)} must be a path inside the index folder`);
      if (!isFile(join(dirs.index, expected))) throw new Error(`${name}: its original ${JSON.stringify(expected)} is not in the index folder ${dirs.index}`);
    }
    return { query, expected };
  }).sort((a, b) => a.query.localeCompare(b.query));
}

export function readTruth(file: string, dirs: { index: string; queries: string }): TruthEntry[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`--truth ${file}: cannot be read (${(e as Error).message})`);
  }
  return parseTruth(text, file, dirs);
}

const isFile = (p: string) => existsSync(p) && statSync(p).isFile();
