import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { VectorItem, validate, type DistanceType } from '@doppel/schemas';
import { metadataProblem, vectorProblem } from './vector.check.js';

export interface JsonlFile {
  name: string;
  path: string;
  size: number;
  mtime_ms: number;
}

export interface JsonlChunk {
  items: VectorItem[];
  /** Lines that were skipped, as `file:line: reason`. */
  bad: string[];
  /** Lines read so far in this file. */
  lines: number;
}

/** The *.jsonl files directly under `dir`, by name; none when the folder does not exist. */
export async function listJsonl(dir: string): Promise<JsonlFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: JsonlFile[] = [];
  for (const name of names.filter((n) => n.endsWith('.jsonl')).sort()) {
    const path = join(dir, name);
    const st = await stat(path);
    if (st.isFile()) out.push({ name, path, size: st.size, mtime_ms: st.mtimeMs });
  }
  return out;
}

/**
 * Streams one JSONL file in chunks of `batchSize` lines. Each line is checked like an
 * upsert item; a bad line is reported and skipped, never fatal.
 */
export async function* readJsonl(file: JsonlFile, batchSize: number, dimension: number, distance: DistanceType): AsyncGenerator<JsonlChunk> {
  const rl = createInterface({ input: createReadStream(file.path, { encoding: 'utf8' }), crlfDelay: Infinity });
  let chunk: JsonlChunk = { items: [], bad: [], lines: 0 };
  let lineNo = 0;
  for await (const line of rl) {
    lineNo++;
    chunk.lines = lineNo;
    if (line.trim() === '') continue;
    const where = `${file.name}:${lineNo}`;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      chunk.bad.push(`${where}: not valid JSON`);
      continue;
    }
    const r = validate(VectorItem, parsed);
    if (!r.ok) {
      chunk.bad.push(`${where}: ${r.error.message}`);
      continue;
    }
    const problem = vectorProblem(r.value.vec_features, dimension, distance, 'vec_features') ?? metadataProblem(r.value.metadata, 'metadata');
    if (problem) {
      chunk.bad.push(`${where}: ${problem}`);
      continue;
    }
    chunk.items.push(r.value);
    if (chunk.items.length >= batchSize) {
      yield chunk;
      chunk = { items: [], bad: [], lines: lineNo };
    }
  }
  if (chunk.items.length > 0 || chunk.bad.length > 0) yield chunk;
}
