import { createReadStream } from 'node:fs';
import { open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { DistanceType } from '@doppel/schemas';
import { fsyncDir, fsyncFile } from './fs.util.js';

/**
 * Snapshot `seq` = the hnswlib index file `snap-<seq>.hnsw` plus `snap-<seq>.meta`
 * (paths, metadata, tombstones, checksum of the index file). It holds every mutation
 * logged in WAL segments < seq. The .meta is renamed into place last, so it is the
 * commit point: a snapshot without a valid .meta does not exist.
 * Meta file: `DOPPEL-SNAPSHOT 1 <crc32 of body> <body bytes>\n<JSON body>`.
 */

export interface SeededFile {
  size: number;
  mtime_ms: number;
}

export interface SnapshotMeta {
  version: 1;
  seq: number;
  created_at: string;
  distance: DistanceType;
  dimension: number;
  M: number;
  ef_construction: number;
  index_bytes: number;
  index_crc32: number;
  next_label: number;
  /** [label, relative_path, metadata | null] */
  entries: Array<[number, string, Record<string, unknown> | null]>;
  tombstones: string[];
  /** JSONL files whose lines are all reflected in this snapshot, by name. */
  seeded: Record<string, SeededFile>;
}

export type SnapshotContent = Omit<SnapshotMeta, 'version' | 'created_at' | 'index_bytes' | 'index_crc32'>;

const HEAD = 'DOPPEL-SNAPSHOT 1';
const META = /^snap-(\d{10})\.meta$/;
const base = (seq: number) => `snap-${String(seq).padStart(10, '0')}`;
export const indexFileOf = (dir: string, seq: number): string => join(dir, `${base(seq)}.hnsw`);
export const metaFileOf = (dir: string, seq: number): string => join(dir, `${base(seq)}.meta`);
/** Where the index is written before it is checksummed and renamed. */
export const tmpIndexFileOf = (dir: string, seq: number): string => `${indexFileOf(dir, seq)}.tmp`;

export class SnapshotCorruptError extends Error {
  constructor(readonly file: string, reason: string) {
    super(`snapshot ${file} is unusable: ${reason}`);
    this.name = 'SnapshotCorruptError';
  }
}

async function fileCrc(file: string): Promise<number> {
  let c = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) c = crc32(chunk as Buffer, c);
  return c;
}

/** Snapshot seqs present on disk (by their .meta), newest first. */
export async function listSnapshots(dir: string): Promise<number[]> {
  return (await readdir(dir))
    .map((n) => META.exec(n)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number)
    .sort((a, b) => b - a);
}

/** Removes leftovers of a snapshot interrupted by a crash. */
export async function removeTemporaries(dir: string): Promise<void> {
  for (const n of await readdir(dir)) if (n.endsWith('.tmp')) await rm(join(dir, n), { force: true });
}

/**
 * Removes `snap-<seq>.hnsw` files whose `.meta` never got renamed into place (a crash
 * between the two renames): without the commit point they are not a snapshot. Called at
 * start only, when no snapshot is being written. Returns the removed names.
 */
export async function removeOrphans(dir: string): Promise<string[]> {
  const names = new Set(await readdir(dir));
  const orphans = [...names].filter((n) => /^snap-\d{10}\.hnsw$/.test(n) && !names.has(n.replace(/\.hnsw$/, '.meta')));
  for (const n of orphans) await rm(join(dir, n), { force: true });
  if (orphans.length > 0) await fsyncDir(dir);
  return orphans;
}

/**
 * Completes a snapshot whose index was written to tmpIndexFileOf(dir, seq): fsync,
 * checksum, write the meta (tmp, fsync), rename both into place, fsync the directory.
 */
export async function commitSnapshot(dir: string, content: SnapshotContent): Promise<SnapshotMeta> {
  const seq = content.seq;
  const tmpIndex = tmpIndexFileOf(dir, seq);
  await fsyncFile(tmpIndex);
  const meta: SnapshotMeta = {
    version: 1,
    created_at: new Date().toISOString(),
    ...content,
    index_bytes: (await stat(tmpIndex)).size,
    index_crc32: await fileCrc(tmpIndex),
  };
  const body = Buffer.from(JSON.stringify(meta));
  const tmpMeta = `${metaFileOf(dir, seq)}.tmp`;
  const fh = await open(tmpMeta, 'w');
  try {
    await fh.writeFile(Buffer.concat([Buffer.from(`${HEAD} ${crc32(body)} ${body.length}\n`), body]));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmpIndex, indexFileOf(dir, seq));
  await rename(tmpMeta, metaFileOf(dir, seq));
  await fsyncDir(dir);
  return meta;
}

/** Reads and verifies snapshot `seq` (meta checksum, index size and checksum). */
export async function readSnapshot(dir: string, seq: number): Promise<{ meta: SnapshotMeta; indexFile: string }> {
  const metaFile = metaFileOf(dir, seq);
  const indexFile = indexFileOf(dir, seq);
  const raw = await readFile(metaFile);
  const nl = raw.indexOf(0x0a);
  const head = nl < 0 ? '' : raw.subarray(0, nl).toString('latin1');
  const m = /^DOPPEL-SNAPSHOT 1 (\d+) (\d+)$/.exec(head);
  if (!m) throw new SnapshotCorruptError(metaFile, 'bad header');
  const body = raw.subarray(nl + 1);
  if (body.length !== Number(m[2])) throw new SnapshotCorruptError(metaFile, `truncated (${body.length} of ${m[2]} bytes)`);
  if (crc32(body) !== Number(m[1])) throw new SnapshotCorruptError(metaFile, 'checksum mismatch');
  const meta = JSON.parse(body.toString('utf8')) as SnapshotMeta;
  if (meta.version !== 1 || meta.seq !== seq) throw new SnapshotCorruptError(metaFile, 'unexpected version or sequence');
  let size: number;
  try {
    size = (await stat(indexFile)).size;
  } catch {
    throw new SnapshotCorruptError(indexFile, 'index file is missing');
  }
  if (size !== meta.index_bytes) throw new SnapshotCorruptError(indexFile, `size ${size} differs from the recorded ${meta.index_bytes}`);
  if ((await fileCrc(indexFile)) !== meta.index_crc32) throw new SnapshotCorruptError(indexFile, 'checksum mismatch');
  return { meta, indexFile };
}

/** Keeps the `keep` newest snapshots; returns the oldest kept seq (WAL before it is not needed). */
export async function pruneSnapshots(dir: string, keep: number): Promise<number | undefined> {
  const seqs = await listSnapshots(dir);
  const kept = seqs.slice(0, keep);
  for (const s of seqs.slice(keep)) {
    await rm(metaFileOf(dir, s), { force: true });
    await rm(indexFileOf(dir, s), { force: true });
  }
  return kept[kept.length - 1];
}

/** Moves an unusable snapshot out of the way (`*.corrupt`), keeping it for inspection. */
export async function setAsideSnapshot(dir: string, seq: number): Promise<void> {
  for (const f of [metaFileOf(dir, seq), indexFileOf(dir, seq)]) await rename(f, `${f}.corrupt`).catch(() => undefined);
  await fsyncDir(dir);
}
