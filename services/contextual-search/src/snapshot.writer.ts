import type { DistanceType } from '@doppel/schemas';
import type { Logger } from '@doppel/service-kit';
import type { GroupCommit } from './group.commit.js';
import type { IndexState } from './index.state.js';
import type { SearchMetrics } from './search.metrics.js';
import { commitSnapshot, pruneSnapshots, tmpIndexFileOf, type SnapshotContent } from './snapshot.store.js';
import type { WalStore } from './wal.store.js';

export interface SnapshotTiming {
  ms: number;
  /** The part during which mutations waited (WAL rotation + hnswlib writeIndex). */
  mutations_blocked_ms: number;
  bytes: number;
  created_at: string;
}

export interface SnapshotWriterOptions {
  dataDir: string;
  distance: DistanceType;
  dimension: number;
  keep: number;
  log: Logger;
  metrics: SearchMetrics;
}

/**
 * Writes snapshots of the hnswlib backend, one at a time. Mutations wait only while the
 * WAL rotates and hnswlib writes the index (it must not change under writeIndex);
 * searches go on. Checksumming, the renames and pruning happen after mutations resumed.
 */
export class SnapshotWriter {
  private run: Promise<SnapshotTiming> | undefined;

  constructor(
    private readonly opts: SnapshotWriterOptions,
    private readonly state: IndexState,
    private readonly wal: WalStore,
    private readonly commit: GroupCommit,
    /** Called once the WAL has rotated: what was logged before is now in the snapshot. */
    private readonly onRotated: () => void,
  ) {}

  get running(): Promise<SnapshotTiming> | undefined {
    return this.run;
  }

  take(): Promise<SnapshotTiming> {
    this.run ??= this.write().finally(() => {
      this.run = undefined;
    });
    return this.run;
  }

  private async write(): Promise<SnapshotTiming> {
    const { dataDir, log, metrics } = this.opts;
    const end = metrics.snapshotSeconds.startTimer();
    const t0 = performance.now();
    let content: SnapshotContent;
    let blockedMs: number;
    try {
      await this.commit.pause();
      const seq = await this.wal.rotate();
      this.onRotated();
      const p = this.state.engine.hnsw.params;
      content = { seq, distance: this.opts.distance, dimension: this.opts.dimension, M: p.M, ef_construction: p.efConstruction, ...this.state.maps.capture() };
      await this.state.engine.hnsw.write(tmpIndexFileOf(dataDir, seq));
      blockedMs = performance.now() - t0;
    } catch (err) {
      log.error({ err }, 'snapshot failed; the write-ahead log still holds every change');
      throw err;
    } finally {
      this.commit.resume();
    }
    try {
      const meta = await commitSnapshot(dataDir, content);
      const oldest = await pruneSnapshots(dataDir, this.opts.keep);
      if (oldest !== undefined) await this.wal.removeBefore(oldest);
      const ms = performance.now() - t0;
      end();
      log.info({ seq: meta.seq, count: meta.entries.length, bytes: meta.index_bytes, ms: Math.round(ms), mutations_blocked_ms: Math.round(blockedMs) }, 'snapshot written');
      return { ms, mutations_blocked_ms: blockedMs, bytes: meta.index_bytes, created_at: meta.created_at };
    } catch (err) {
      log.error({ err }, 'snapshot failed; the write-ahead log still holds every change');
      throw err;
    }
  }
}
