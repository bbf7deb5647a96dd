import type { DeleteResponse, ListResponse, Neighbor, StatsResponse, UpsertResponse, VectorItem } from '@doppel/schemas';
import { AppError } from '@doppel/service-kit';
import type { IndexMode } from './engine.switch.js';
import { GroupCommit } from './group.commit.js';
import { IndexState } from './index.state.js';
import { recover, type RecoveryOptions, type SeedReport } from './recovery.loader.js';
import type { SearchMetrics } from './search.metrics.js';
import { SnapshotWriter, type SnapshotTiming } from './snapshot.writer.js';
import type { Readiness, StoredVector, VectorBackend } from './vector.backend.js';
import { WalStore, type WalRecovery } from './wal.store.js';

/** What recover() reads (data folder, seeds, index shape) plus what the running backend adds. */
export interface HnswlibOptions extends RecoveryOptions {
  mode: IndexMode;
  exactMax: number;
  /** 0 disables the timer; SNAPSHOT_WAL_RECORDS still triggers snapshots. */
  snapshotIntervalMs: number;
  snapshotWalRecords: number;
  snapshotKeep: number;
  walRecovery: WalRecovery;
  metrics: SearchMetrics;
}

/**
 * The embedded backend: the whole collection in this process (IndexState), made durable
 * by the WAL (GroupCommit) and snapshots (SnapshotWriter), loaded by recover().
 */
export class HnswlibBackend implements VectorBackend {
  readonly name = 'hnswlib';
  private readonly state: IndexState;
  private readonly wal: WalStore;
  private readonly commit: GroupCommit;
  private readonly snapshots: SnapshotWriter;
  /** Requests logged since the last snapshot (one WAL record holds a whole commit round). */
  private walRecords = 0;
  private seedDirty = false;
  private lastPersisted: string | null = null;
  private timer: NodeJS.Timeout | undefined;
  private status: 'loading' | 'ready' | 'failed' | 'closed' = 'loading';
  private progress = 'starting';
  /** What the last JSONL load did. */
  seedReport: SeedReport = { files: 0, added: 0, known: 0, bad: [] };

  constructor(private readonly opts: HnswlibOptions) {
    this.state = new IndexState(opts, opts.metrics);
    this.wal = new WalStore({ dir: opts.dataDir, log: opts.log, recovery: opts.walRecovery, onSync: (s) => opts.metrics.walFsyncSeconds.observe(s) });
    this.commit = new GroupCommit(this.wal, this.state, opts.log, (n) => {
      this.walRecords += n;
      opts.metrics.walRecords.set(this.walRecords);
      if (this.walRecords >= opts.snapshotWalRecords) this.snapshotInBackground();
    });
    this.snapshots = new SnapshotWriter(
      { dataDir: opts.dataDir, distance: opts.distance, dimension: opts.dimension, keep: opts.snapshotKeep, log: opts.log, metrics: opts.metrics },
      this.state,
      this.wal,
      this.commit,
      () => {
        this.walRecords = 0;
        this.seedDirty = false;
      },
    );
  }

  readiness(): Readiness {
    return this.status === 'ready' ? { ok: true } : { ok: false, detail: this.status === 'loading' ? this.progress : this.status };
  }

  async open(): Promise<void> {
    const t0 = performance.now();
    try {
      const r = await recover(this.opts, this.state, this.wal, (s) => (this.progress = s));
      this.walRecords = r.walRecords;
      this.seedDirty = r.seedDirty;
      this.lastPersisted = r.lastPersisted;
      this.seedReport = r.seedReport;
      this.opts.metrics.walRecords.set(this.walRecords);
      this.status = 'ready';
      this.opts.log.info({ count: this.state.size, ms: Math.round(performance.now() - t0), mode: this.state.mode }, 'index ready');
    } catch (err) {
      this.status = 'failed';
      throw err;
    }
    if (this.opts.snapshotIntervalMs > 0) {
      this.timer = setInterval(() => {
        if (this.dirty) this.snapshotInBackground();
      }, this.opts.snapshotIntervalMs);
      this.timer.unref();
    }
    // Seeded lines are not in the WAL: a snapshot makes them part of the persisted state.
    if (this.seedDirty || this.walRecords >= this.opts.snapshotWalRecords) this.snapshotInBackground();
  }

  private assertReady(): void {
    if (this.status !== 'ready') throw new AppError('UNAVAILABLE', `index is ${this.status === 'loading' ? this.progress : this.status}`, { retryAfter: 1 });
  }

  upsert(items: VectorItem[]): Promise<UpsertResponse['response']> {
    this.assertReady();
    return this.commit.upsert(items);
  }

  delete(paths: string[]): Promise<DeleteResponse['response']> {
    this.assertReady();
    return this.commit.delete(paths);
  }

  async search(query: number[], k: number, ef: number): Promise<Neighbor[]> {
    this.assertReady();
    return this.state.search(query, k, ef);
  }

  async lookup(paths: string[]): Promise<Array<StoredVector | undefined>> {
    this.assertReady();
    return this.state.lookup(paths);
  }


  async list(offset: number, limit: number, includeVectors: boolean): Promise<ListResponse['response']> {
    this.assertReady();
    return this.state.list(offset, limit, includeVectors);
  }

  async stats(): Promise<StatsResponse['response']> {
    const hnsw = this.state.engine.hnsw;
    const p = hnsw.params;
    return {
      count: this.state.size,
      dimension: this.opts.dimension,
      distance: this.opts.distance,
      mode: this.state.mode,
      index: { M: p.M, ef_construction: p.efConstruction, ef_search: p.efSearch, capacity: hnsw.capacity },
      last_persisted: this.lastPersisted,
      wal_records: this.walRecords,
      deleted_slots: hnsw.slots - this.state.size,
      tombstones: this.state.maps.tombstones.size,
      ready: this.status === 'ready',
      backend: this.name,
    };
  }

  private get dirty(): boolean {
    return this.walRecords > 0 || this.seedDirty;
  }

  /** Writes a snapshot now (one at a time; a second call joins the running one). */
  async snapshot(): Promise<SnapshotTiming | undefined> {
    if (this.status !== 'ready') return undefined;
    const t = await this.snapshots.take();
    this.lastPersisted = t.created_at;
    return t;
  }

  private snapshotInBackground(): void {
    // Failures are logged by the writer; the WAL still holds every change.
    void this.snapshot().catch(() => undefined);
  }

  /** Drains the queue, snapshots if anything changed, closes the log. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.status !== 'ready') {
      await this.wal.close();
      return;
    }
    await this.commit.idle;
    await this.snapshots.running?.catch(() => undefined);
    if (this.dirty) await this.snapshot().catch(() => undefined);
    this.status = 'closed';
    await this.wal.close();
  }
}
