import { mkdir } from 'node:fs/promises';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { DistanceType } from '@doppel/schemas';
import type { Logger } from '@doppel/service-kit';
import { HnswIndex, type HnswParams } from './hnsw.index.js';
import type { IndexState } from './index.state.js';
import { listJsonl, readJsonl } from './jsonl.loader.js';
import { SnapshotCorruptError, listSnapshots, readSnapshot, removeOrphans, removeTemporaries, setAsideSnapshot } from './snapshot.store.js';
import { decodeRecord } from './wal.codec.js';
import type { WalStore } from './wal.store.js';

export interface RecoveryOptions {
  /** Snapshots and WAL segments. */
  dataDir: string;
  /** Folder of *.jsonl seed files. */
  location: string;
  batchSize: number;
  dimension: number;
  distance: DistanceType;
  params: HnswParams;
  log: Logger;
}

export interface SeedReport {
  files: number;
  added: number;
  known: number;
  /** Bad lines as `file:line: reason` (first 1000). */
  bad: string[];
}

export interface Recovered {
  /** Requests replayed from the WAL (they count towards the next snapshot). */
  walRecords: number;
  /** The seed added lines that only a snapshot can persist. */
  seedDirty: boolean;
  lastPersisted: string | null;
  seedReport: SeedReport;
}

/**
 * Start-up of the hnswlib backend: newest valid snapshot (falling back to older ones),
 * then the WAL from that snapshot on, then the JSONL seed for paths never seen.
 * Throws (naming the file) on corruption it cannot accept.
 */
export async function recover(opts: RecoveryOptions, state: IndexState, wal: WalStore, progress: (s: string) => void): Promise<Recovered> {
  const { dataDir, log } = opts;
  await mkdir(dataDir, { recursive: true });
  await removeTemporaries(dataDir);
  const orphans = await removeOrphans(dataDir);
  if (orphans.length > 0) log.warn({ files: orphans }, 'removed snapshot index files without a committed .meta (left by a crash)');
  const snap = await loadSnapshot(opts, state, wal, progress);
  progress('replaying the write-ahead log');
  let replayed = 0;
  const replay = await wal.replay(snap.seq, snap.loaded, (payload) => {
    for (const op of decodeRecord(payload)) {
      state.applyLogged(op);
      replayed++;
    }
  });
  await wal.openSegment(replay.segments.at(-1) ?? snap.seq);
  log.info({ records: replay.records, mutations: replayed, segments: replay.segments.length, count: state.size }, 'write-ahead log replayed');
  const seedReport = await loadJsonl(opts, state, progress);
  state.settle();
  return { walRecords: replayed, seedDirty: seedReport.files > 0, lastPersisted: snap.createdAt, seedReport };
}

/** Loads the newest valid snapshot into `state`; returns the first WAL segment to replay. */
async function loadSnapshot(
  opts: RecoveryOptions,
  state: IndexState,
  wal: WalStore,
  progress: (s: string) => void,
): Promise<{ seq: number; loaded: boolean; createdAt: string | null }> {
  const { dataDir, log, dimension, distance } = opts;
  const failures: string[] = [];
  const failed: number[] = [];
  for (const seq of await listSnapshots(dataDir)) {
    progress(`loading snapshot ${seq}`);
    let snap: Awaited<ReturnType<typeof readSnapshot>>;
    try {
      snap = await readSnapshot(dataDir, seq);
    } catch (err) {
      const msg = err instanceof SnapshotCorruptError ? err.message : `snapshot ${seq}: ${(err as Error).message}`;
      log.error({ seq }, msg);
      failures.push(msg);
      failed.push(seq);
      continue;
    }
    const { meta } = snap;
    if (meta.dimension !== dimension || meta.distance !== distance) {
      throw new Error(
        `snapshot ${snap.indexFile} was built with DIMENSION=${meta.dimension} DISTANCE_TYPE=${meta.distance}, ` +
          `the configuration says DIMENSION=${dimension} DISTANCE_TYPE=${distance}; use another DATA_DIR or re-index`,
      );
    }
    if (meta.M !== opts.params.M || meta.ef_construction !== opts.params.efConstruction) {
      log.warn({ M: meta.M, ef_construction: meta.ef_construction }, 'the snapshot keeps its own M and efConstruction; the configured ones apply to a new index');
    }
    state.useIndex(await HnswIndex.load(snap.indexFile, distance, dimension, { ...opts.params, M: meta.M, efConstruction: meta.ef_construction }));
    state.maps.restore(meta);
    if (failed.length > 0) {
      // Renamed, not deleted: kept for inspection, and pruning cannot keep them in place of a good one.
      for (const bad of failed) await setAsideSnapshot(dataDir, bad);
      log.warn({ seq, set_aside: failed }, `fell back to the older snapshot ${seq}; the unusable one(s) were renamed to *.corrupt`);
    }
    log.info({ seq, count: state.size, file: snap.indexFile }, 'snapshot loaded');
    return { seq, loaded: true, createdAt: meta.created_at };
  }
  if (failures.length > 0) throw new Error(`no usable snapshot in ${dataDir}: ${failures.join('; ')}`);
  const segs = await wal.segments();
  if (segs.length > 0 && segs[0] !== 0) {
    throw new Error(`write-ahead log in ${dataDir} starts at segment ${segs[0]} but no snapshot covers the earlier ones`);
  }
  return { seq: 0, loaded: false, createdAt: null };
}

async function loadJsonl(opts: RecoveryOptions, state: IndexState, progress: (s: string) => void): Promise<SeedReport> {
  const { location, batchSize, dimension, distance, log } = opts;
  const report: SeedReport = { files: 0, added: 0, known: 0, bad: [] };
  for (const file of await listJsonl(location)) {
    const prev = state.maps.seeded[file.name];
    if (prev && prev.size === file.size && prev.mtime_ms === file.mtime_ms) {
      log.info({ file: file.name }, 'embedding file unchanged since the snapshot: skipped');
      continue;
    }
    let added = 0;
    let known = 0;
    let bad = 0;
    for await (const chunk of readJsonl(file, batchSize, dimension, distance)) {
      for (const b of chunk.bad) {
        log.warn({ line: b }, 'bad embedding line skipped');
        if (report.bad.length < 1000) report.bad.push(b);
      }
      bad += chunk.bad.length;
      // The persisted state (snapshot + WAL, tombstones included) is newer than any seed.
      const fresh = chunk.items.filter((it) => !state.maps.seen(it.relative_path));
      known += chunk.items.length - fresh.length;
      state.engine.ensureCapacity(fresh.length);
      state.applyUpsert(fresh);
      added += fresh.length;
      progress(`loading ${file.name}: ${chunk.lines} lines`);
      log.info({ file: file.name, lines: chunk.lines, added, known, bad, count: state.size }, 'loading embeddings');
      // Let /readyz and /metrics answer between chunks.
      await yieldToLoop();
    }
    state.maps.seeded[file.name] = { size: file.size, mtime_ms: file.mtime_ms };
    report.files++;
    report.added += added;
    report.known += known;
    log.info({ file: file.name, added, known, bad }, 'embedding file loaded');
  }
  return report;
}
