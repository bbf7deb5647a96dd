import { mkdir } from 'node:fs/promises';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { DeleteResponse, DistanceType, ListResponse, Neighbor, StatsResponse, UpsertResponse, VectorItem } from '@doppel/schemas';
import { AppError, type Logger } from '@doppel/service-kit';
import { ExactIndex } from './exact.index.js';
import { HnswIndex, scoreOf, type HnswParams, type KnnResult } from './hnsw.index.js';
import { listJsonl, readJsonl } from './jsonl.loader.js';
import type { SearchMetrics } from './search.metrics.js';
import {
  SnapshotCorruptError, commitSnapshot, listSnapshots, pruneSnapshots, readSnapshot, removeTemporaries, setAsideSnapshot, tmpIndexFileOf,
  type SeededFile, type SnapshotContent,
} from './snapshot.store.js';
import { metadataProblem, vectorProblem } from './vector.check.js';
import { WalStore } from './wal.store.js';

export type IndexMode = 'auto' | 'hnsw' | 'exact';

export interface CollectionOptions {
  /** Snapshots and WAL segments. */
  dataDir: string;
  /** Folder of *.jsonl seed files. */
  location: string;
  batchSize: number;
  dimension: number;
  distance: DistanceType;
  params: HnswParams;
  mode: IndexMode;
  exactMax: number;
  /** 0 disables the timer; SNAPSHOT_WAL_RECORDS still triggers snapshots. */
  snapshotIntervalMs: number;
  snapshotWalRecords: number;
  snapshotKeep: number;
  log: Logger;
  metrics: SearchMetrics;
}

type Metadata = Record<string, unknown>;
export interface SnapshotTiming {
  ms: number;
  /** The part during which mutations waited (WAL rotation + hnswlib writeIndex). */
  mutations_blocked_ms: number;
  bytes: number;
}
interface Entry {
  label: number;
  metadata: Metadata | undefined;
}

/** WAL payloads: vectors as base64 float32 (what hnswlib stores), paths and metadata as JSON. */
type WalOp =
  | { op: 'u'; items: Array<{ p: string; v: string; m?: Metadata }> }
  | { op: 'd'; paths: string[] };

type Pending =
  | { op: 'u'; items: VectorItem[]; done: (r: UpsertResponse['response']) => void; fail: (e: unknown) => void }
  | { op: 'd'; paths: string[]; done: (r: DeleteResponse['response']) => void; fail: (e: unknown) => void };

/** A commit round stops taking requests past this many bytes of log (records stay far below the WAL's cap). */
const MAX_GROUP_BYTES = 32 * 1024 * 1024;
/** Vectors + paths waiting for the WAL before new mutations get 429. */
const MAX_QUEUED_ITEMS = 200_000;

const encodeVector = (v: readonly number[]): string => Buffer.from(Float32Array.from(v).buffer).toString('base64');
function decodeVector(b64: string): number[] {
  const buf = Buffer.from(b64, 'base64');
  return Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4));
}

/**
 * The collection: path <-> label maps, metadata and tombstones in memory, the HNSW graph
 * (plus an exact mirror for small collections), and its durability (WAL + snapshots).
 * Mutations go through one queue: each round appends every waiting request to the WAL
 * with one fdatasync (group commit), then applies them in order, then answers. Searches
 * are synchronous on the main thread and never wait for the queue.
 */
export class Collection {
  private index: HnswIndex;
  private exact: ExactIndex | undefined;
  private readonly byPath = new Map<string, Entry>();
  private readonly byLabel = new Map<number, string>();
  private readonly tombstones = new Set<string>();
  private seeded: Record<string, SeededFile> = {};
  private nextLabel = 0;

  private readonly wal: WalStore;
  private queue: Pending[] = [];
  private queuedItems = 0;
  private pumping: Promise<void> | undefined;
  private snapshotting = false;
  private snapshotRun: Promise<SnapshotTiming | undefined> | undefined;
  /** Requests logged since the last snapshot (one WAL record holds a whole commit round). */
  private walRecords = 0;
  private seedDirty = false;
  private lastPersisted: string | null = null;
  private timer: NodeJS.Timeout | undefined;

  private state: 'loading' | 'ready' | 'failed' | 'closed' = 'loading';
  /** What the last JSONL load did; bad lines as `file:line: reason` (first 1000). */
  readonly seedReport = { files: 0, added: 0, known: 0, bad: [] as string[] };
  private progress = 'starting';

  constructor(private readonly opts: CollectionOptions) {
    this.index = HnswIndex.create(opts.distance, opts.dimension, opts.params);
    this.wal = new WalStore({ dir: opts.dataDir, log: opts.log, onSync: (s) => opts.metrics.walFsyncSeconds.observe(s) });
  }

  get ready(): boolean {
    return this.state === 'ready';
  }

  readiness(): { ok: boolean; detail?: string } {
    return this.state === 'ready' ? { ok: true } : { ok: false, detail: this.state === 'loading' ? this.progress : this.state };
  }

  get size(): number {
    return this.byPath.size;
  }

  // ---------------------------------------------------------------- start-up

  /** Snapshot, then WAL, then JSONL seed. Throws (naming the file) on corruption it cannot accept. */
  async open(): Promise<void> {
    const { dataDir, log } = this.opts;
    const t0 = performance.now();
    try {
      await mkdir(dataDir, { recursive: true });
      await removeTemporaries(dataDir);
      const fromSeq = await this.loadSnapshot();
      this.progress = 'replaying the write-ahead log';
      let replayed = 0;
      const replay = await this.wal.replay(fromSeq, (payload) => {
        for (const op of JSON.parse(payload.toString('utf8')) as WalOp[]) {
          this.applyLogged(op);
          replayed++;
        }
      });
      this.walRecords = replayed;
      await this.wal.openSegment(replay.segments.at(-1) ?? fromSeq);
      log.info({ records: replay.records, mutations: replayed, segments: replay.segments.length, count: this.size }, 'write-ahead log replayed');
      await this.loadJsonl();
      this.syncExact();
      this.opts.metrics.indexSize.set(this.size);
      this.opts.metrics.walRecords.set(this.walRecords);
      this.state = 'ready';
      log.info({ count: this.size, ms: Math.round(performance.now() - t0), mode: this.mode }, 'index ready');
    } catch (err) {
      this.state = 'failed';
      throw err;
    }
    if (this.opts.snapshotIntervalMs > 0) {
      this.timer = setInterval(() => {
        if (this.dirty) void this.snapshot().catch(() => undefined);
      }, this.opts.snapshotIntervalMs);
      this.timer.unref();
    }
    // Seeded lines are not in the WAL: a snapshot makes them part of the persisted state.
    if (this.seedDirty || this.walRecords >= this.opts.snapshotWalRecords) void this.snapshot().catch(() => undefined);
  }

  /** Loads the newest valid snapshot, falling back to older ones; returns the first WAL segment to replay. */
  private async loadSnapshot(): Promise<number> {
    const { dataDir, log, dimension, distance } = this.opts;
    const seqs = await listSnapshots(dataDir);
    const failures: string[] = [];
    const failed: number[] = [];
    for (const seq of seqs) {
      this.progress = `loading snapshot ${seq}`;
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
      const params = { ...this.opts.params, M: meta.M, efConstruction: meta.ef_construction };
      if (meta.M !== this.opts.params.M || meta.ef_construction !== this.opts.params.efConstruction) {
        log.warn({ M: meta.M, ef_construction: meta.ef_construction }, 'the snapshot keeps its own M and efConstruction; the configured ones apply to a new index');
      }
      this.index = await HnswIndex.load(snap.indexFile, distance, dimension, params);
      for (const [label, path, metadata] of meta.entries) {
        this.byPath.set(path, { label, metadata: metadata ?? undefined });
        this.byLabel.set(label, path);
      }
      for (const t of meta.tombstones) this.tombstones.add(t);
      this.seeded = { ...meta.seeded };
      this.nextLabel = meta.next_label;
      this.lastPersisted = meta.created_at;
      if (failed.length > 0) {
        // Renamed, not deleted: kept for inspection, and pruning cannot keep them in place of a good one.
        for (const bad of failed) await setAsideSnapshot(dataDir, bad);
        log.warn({ seq, set_aside: failed }, `fell back to the older snapshot ${seq}; the unusable one(s) were renamed to *.corrupt`);
      }
      log.info({ seq, count: this.size, file: snap.indexFile }, 'snapshot loaded');
      return seq;
    }
    if (failures.length > 0) throw new Error(`no usable snapshot in ${dataDir}: ${failures.join('; ')}`);
    const segs = await this.wal.segments();
    if (segs.length > 0 && segs[0] !== 0) {
      throw new Error(`write-ahead log in ${dataDir} starts at segment ${segs[0]} but no snapshot covers the earlier ones`);
    }
    return 0;
  }

  private async loadJsonl(): Promise<void> {
    const { location, batchSize, dimension, distance, log } = this.opts;
    const files = await listJsonl(location);
    for (const file of files) {
      const prev = this.seeded[file.name];
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
          if (this.seedReport.bad.length < 1000) this.seedReport.bad.push(b);
        }
        bad += chunk.bad.length;
        // The persisted state (snapshot + WAL, tombstones included) is newer than any seed.
        const fresh = chunk.items.filter((it) => !this.byPath.has(it.relative_path) && !this.tombstones.has(it.relative_path));
        known += chunk.items.length - fresh.length;
        this.index.ensureCapacity(fresh.length);
        this.applyUpsert(fresh);
        added += fresh.length;
        this.progress = `loading ${file.name}: ${chunk.lines} lines`;
        log.info({ file: file.name, lines: chunk.lines, added, known, bad, count: this.size }, 'loading embeddings');
        // Let /readyz and /metrics answer between chunks.
        await yieldToLoop();
      }
      this.seeded[file.name] = { size: file.size, mtime_ms: file.mtime_ms };
      this.seedDirty = true;
      this.seedReport.files++;
      this.seedReport.added += added;
      this.seedReport.known += known;
      log.info({ file: file.name, added, known, bad }, 'embedding file loaded');
    }
  }

  // ---------------------------------------------------------------- mutations

  private assertReady(): void {
    if (this.state !== 'ready') throw new AppError('UNAVAILABLE', `index is ${this.state === 'loading' ? this.progress : this.state}`, { retryAfter: 1 });
  }

  /** Checks the whole batch before anything is logged or applied. */
  upsert(items: VectorItem[]): Promise<UpsertResponse['response']> {
    this.assertReady();
    items.forEach((it, i) => {
      const problem =
        vectorProblem(it.vec_features, this.opts.dimension, this.opts.distance, `items[${i}].vec_features`) ??
        metadataProblem(it.metadata, `items[${i}].metadata`);
      if (problem) throw new AppError('INVALID_REQUEST', problem);
    });
    return new Promise((done, fail) => this.enqueue({ op: 'u', items, done, fail }));
  }

  delete(paths: string[]): Promise<DeleteResponse['response']> {
    this.assertReady();
    return new Promise((done, fail) => this.enqueue({ op: 'd', paths, done, fail }));
  }

  private enqueue(p: Pending): void {
    const items = p.op === 'u' ? p.items.length : p.paths.length;
    // Back-pressure: parsed batches wait in memory while the disk is slow (or a snapshot runs).
    if (this.queuedItems + items > MAX_QUEUED_ITEMS) {
      p.fail(new AppError('OVERLOADED', 'too many changes are waiting to be written; retry shortly', { retryAfter: 1 }));
      return;
    }
    this.queuedItems += items;
    this.queue.push(p);
    this.kick();
  }

  /** Starts the writer unless it runs already or a snapshot holds mutations back. */
  private kick(): void {
    if (this.pumping || this.snapshotting || this.queue.length === 0) return;
    this.pumping = this.pump().finally(() => {
      this.pumping = undefined;
      this.kick();
    });
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0 && !this.snapshotting) {
      // One WAL record per round (JSON array of ops): a crash can then tear only the one
      // unacknowledged record at the tail, and a valid record after a bad one is real corruption.
      const group: Pending[] = [];
      const ops: string[] = [];
      let bytes = 0;
      while (this.queue.length > 0 && (group.length === 0 || bytes < MAX_GROUP_BYTES)) {
        const p = this.queue.shift()!;
        this.queuedItems -= p.op === 'u' ? p.items.length : p.paths.length;
        const op: WalOp =
          p.op === 'u'
            ? { op: 'u', items: p.items.map((it) => ({ p: it.relative_path, v: encodeVector(it.vec_features), ...(it.metadata ? { m: it.metadata } : {}) })) }
            : { op: 'd', paths: p.paths };
        const json = JSON.stringify(op);
        group.push(p);
        ops.push(json);
        bytes += json.length;
      }
      const payloads = [Buffer.from(`[${ops.join(',')}]`)];
      try {
        await this.wal.append(payloads);
      } catch (err) {
        this.opts.log.error({ err }, 'write-ahead log append failed');
        const e = new AppError('UNAVAILABLE', 'the change could not be made durable; it was not applied', { retryAfter: 1, cause: err });
        for (const p of group) p.fail(e);
        continue;
      }
      // Grow once for the whole group: resizeIndex copies the graph.
      this.index.ensureCapacity(group.reduce((n, p) => n + (p.op === 'u' ? p.items.length : 0), 0));
      for (const p of group) {
        try {
          if (p.op === 'u') p.done({ ...this.applyUpsert(p.items), count: this.size });
          else p.done({ ...this.applyDelete(p.paths), count: this.size });
        } catch (err) {
          // Logged but not applied: the same record would fail again on replay. Only a bug gets here.
          this.opts.log.error({ err }, 'applying a logged mutation failed');
          p.fail(err);
        }
      }
      this.walRecords += group.length;
      this.syncExact();
      this.opts.metrics.indexSize.set(this.size);
      this.opts.metrics.walRecords.set(this.walRecords);
      if (this.walRecords >= this.opts.snapshotWalRecords) void this.snapshot().catch(() => undefined);
    }
  }

  private applyLogged(op: WalOp): void {
    if (op.op === 'u') {
      const items = op.items.map((it) => ({ relative_path: it.p, vec_features: decodeVector(it.v), metadata: it.m }));
      this.index.ensureCapacity(items.length);
      this.applyUpsert(items);
    } else {
      this.applyDelete(op.paths);
    }
  }

  /** Items in order; a path given twice ends with its last vector. */
  private applyUpsert(items: ReadonlyArray<{ relative_path: string; vec_features: number[]; metadata?: Metadata | undefined }>): { inserted: number; replaced: number } {
    let inserted = 0;
    let replaced = 0;
    for (const it of items) {
      const e = this.byPath.get(it.relative_path);
      if (e) {
        this.index.add(e.label, it.vec_features, false);
        this.exact?.set(e.label, it.vec_features);
        e.metadata = it.metadata;
        replaced++;
      } else {
        const label = this.nextLabel++;
        this.index.add(label, it.vec_features, true);
        this.exact?.set(label, it.vec_features);
        this.byPath.set(it.relative_path, { label, metadata: it.metadata });
        this.byLabel.set(label, it.relative_path);
        this.tombstones.delete(it.relative_path);
        inserted++;
      }
    }
    return { inserted, replaced };
  }

  private applyDelete(paths: readonly string[]): { deleted: number; not_found: string[] } {
    let deleted = 0;
    const notFound: string[] = [];
    for (const p of paths) {
      const e = this.byPath.get(p);
      if (!e) {
        notFound.push(p);
        continue;
      }
      this.index.remove(e.label);
      this.exact?.delete(e.label);
      this.byPath.delete(p);
      this.byLabel.delete(e.label);
      this.tombstones.add(p);
      deleted++;
    }
    return { deleted, not_found: notFound };
  }

  // ---------------------------------------------------------------- search

  /** The engine answering now: exact below EXACT_MAX in auto mode. */
  get mode(): 'hnsw' | 'exact' {
    const { mode, exactMax } = this.opts;
    return mode === 'exact' || (mode === 'auto' && this.size <= exactMax) ? 'exact' : 'hnsw';
  }

  /** Keeps the exact mirror while it may be used (with 2x hysteresis so it is not rebuilt on every flip). */
  private syncExact(): void {
    const { mode, exactMax, distance, dimension } = this.opts;
    const wanted = mode === 'exact' || (mode === 'auto' && this.size <= 2 * exactMax);
    if (!wanted) {
      this.exact = undefined;
      return;
    }
    if (this.exact) return;
    const ex = new ExactIndex(distance, dimension, Math.max(256, this.size));
    for (const label of this.byLabel.keys()) ex.set(label, this.index.vector(label));
    this.exact = ex;
  }

  search(query: number[], k: number, minScore = 0, ef?: number): Neighbor[] {
    this.assertReady();
    const problem = vectorProblem(query, this.opts.dimension, this.opts.distance, 'vec_features');
    if (problem) throw new AppError('INVALID_REQUEST', problem);
    const kk = Math.min(k, this.size);
    if (kk === 0) return [];
    const mode = this.exact && this.mode === 'exact' ? 'exact' : 'hnsw';
    const end = this.opts.metrics.searchSeconds.startTimer({ mode });
    let r: KnnResult;
    if (mode === 'exact' && this.exact) r = this.exact.search(query, kk);
    // ef below k would return fewer than k candidates.
    else r = this.index.search(query, kk, Math.max(ef ?? this.opts.params.efSearch, kk));
    end();
    const out: Neighbor[] = [];
    for (let i = 0; i < r.labels.length; i++) {
      const d = r.distances[i]!;
      const path = this.byLabel.get(r.labels[i]!);
      if (path === undefined) continue;
      const score = scoreOf(this.opts.distance, d);
      // Sorted best first: everything after the first score below the bar is below it too.
      if (score < minScore) break;
      const metadata = this.byPath.get(path)?.metadata;
      out.push(metadata === undefined ? { relative_path: path, score } : { relative_path: path, score, metadata });
    }
    return out;
  }

  list(offset: number, limit: number, includeVectors: boolean): ListResponse['response'] {
    this.assertReady();
    const items: ListResponse['response']['items'] = [];
    let i = 0;
    for (const [path, e] of this.byPath) {
      if (i++ < offset) continue;
      if (items.length >= limit) break;
      items.push({
        relative_path: path,
        ...(e.metadata ? { metadata: e.metadata } : {}),
        ...(includeVectors ? { vec_features: this.index.vector(e.label) } : {}),
      });
    }
    return { total: this.size, offset, limit, items };
  }

  stats(): StatsResponse['response'] {
    const p = this.index.params;
    return {
      count: this.size,
      dimension: this.opts.dimension,
      distance: this.opts.distance,
      mode: this.mode,
      index: { M: p.M, ef_construction: p.efConstruction, ef_search: p.efSearch, capacity: this.index.capacity },
      last_persisted: this.lastPersisted,
      wal_records: this.walRecords,
      deleted_slots: this.index.slots - this.size,
      tombstones: this.tombstones.size,
      ready: this.ready,
    };
  }

  // ---------------------------------------------------------------- persistence

  private get dirty(): boolean {
    return this.walRecords > 0 || this.seedDirty;
  }

  /**
   * Writes a snapshot. Mutations wait only while the WAL rotates and hnswlib writes the
   * index (it must not change under writeIndex); searches go on. Checksumming, the
   * renames and pruning happen after mutations have resumed.
   */
  snapshot(): Promise<SnapshotTiming | undefined> {
    this.snapshotRun ??= this.runSnapshot().finally(() => {
      this.snapshotRun = undefined;
    });
    return this.snapshotRun;
  }

  private async runSnapshot(): Promise<SnapshotTiming | undefined> {
    if (this.state !== 'ready') return undefined;
    const { dataDir, log, metrics } = this.opts;
    const end = metrics.snapshotSeconds.startTimer();
    const t0 = performance.now();
    let content: SnapshotContent;
    let blockedMs: number;
    this.snapshotting = true;
    try {
      await this.pumping;
      const seq = await this.wal.rotate();
      this.walRecords = 0;
      this.seedDirty = false;
      content = {
        seq,
        distance: this.opts.distance,
        dimension: this.opts.dimension,
        M: this.index.params.M,
        ef_construction: this.index.params.efConstruction,
        next_label: this.nextLabel,
        entries: Array.from(this.byPath, ([path, e]) => [e.label, path, e.metadata ?? null]),
        tombstones: Array.from(this.tombstones),
        seeded: { ...this.seeded },
      };
      await this.index.write(tmpIndexFileOf(dataDir, seq));
      blockedMs = performance.now() - t0;
    } catch (err) {
      log.error({ err }, 'snapshot failed; the write-ahead log still holds every change');
      throw err;
    } finally {
      this.snapshotting = false;
      this.kick();
    }
    try {
      const meta = await commitSnapshot(dataDir, content);
      this.lastPersisted = meta.created_at;
      const oldest = await pruneSnapshots(dataDir, this.opts.snapshotKeep);
      if (oldest !== undefined) await this.wal.removeBefore(oldest);
      const ms = performance.now() - t0;
      end();
      log.info({ seq: meta.seq, count: meta.entries.length, bytes: meta.index_bytes, ms: Math.round(ms), mutations_blocked_ms: Math.round(blockedMs) }, 'snapshot written');
      return { ms, mutations_blocked_ms: blockedMs, bytes: meta.index_bytes };
    } catch (err) {
      log.error({ err }, 'snapshot failed; the write-ahead log still holds every change');
      throw err;
    }
  }

  /** Drains the queue, snapshots if anything changed, closes the log. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.state !== 'ready') {
      await this.wal.close();
      return;
    }
    await this.pumping;
    await this.snapshotRun?.catch(() => undefined);
    if (this.dirty) await this.snapshot().catch(() => undefined);
    this.state = 'closed';
    await this.wal.close();
  }
}
