import type { DistanceType, ListResponse, Neighbor } from '@doppel/schemas';
import type { StoredVector } from './vector.backend.js';
import { EngineSwitch, type EngineOptions } from './engine.switch.js';
import { HnswIndex, scoreOf } from './hnsw.index.js';
import { PathMaps } from './path.maps.js';
import type { SearchMetrics } from './search.metrics.js';
import type { DecodedOp, StoredItem } from './wal.codec.js';

/**
 * The in-memory state of the hnswlib backend: the maps and the engines, changed only
 * through apply*() (by the group commit after the WAL append, by recovery while loading),
 * and the read-only queries over them. Synchronous: a search never waits for writes.
 */
export class IndexState {
  maps = new PathMaps();
  engine: EngineSwitch;

  constructor(
    private readonly opts: EngineOptions,
    private readonly metrics: SearchMetrics,
  ) {
    this.engine = new EngineSwitch(opts);
  }

  get size(): number {
    return this.maps.size;
  }

  get distance(): DistanceType {
    return this.opts.distance;
  }

  get mode(): 'hnsw' | 'exact' {
    return this.engine.modeFor(this.size);
  }

  /** Replaces the graph by one loaded from a snapshot (before anything else is applied). */
  useIndex(hnsw: HnswIndex): void {
    this.engine = new EngineSwitch(this.opts, hnsw);
  }

  /** Items in order; a path given twice ends with its last vector. */
  applyUpsert(items: readonly StoredItem[]): { inserted: number; replaced: number } {
    let inserted = 0;
    let replaced = 0;
    for (const it of items) {
      const e = this.maps.get(it.relative_path);
      if (e) {
        this.engine.set(e.label, it.vec_features, false);
        e.metadata = it.metadata;
        replaced++;
      } else {
        this.engine.set(this.maps.add(it.relative_path, it.metadata), it.vec_features, true);
        inserted++;
      }
    }
    return { inserted, replaced };
  }

  applyDelete(paths: readonly string[]): { deleted: number; not_found: string[] } {
    let deleted = 0;
    const notFound: string[] = [];
    for (const p of paths) {
      const label = this.maps.remove(p);
      if (label === undefined) {
        notFound.push(p);
        continue;
      }
      this.engine.remove(label);
      deleted++;
    }
    return { deleted, not_found: notFound };
  }

  /** One replayed WAL operation. */
  applyLogged(op: DecodedOp): void {
    if (op.op === 'u') {
      this.engine.ensureCapacity(op.items.length);
      this.applyUpsert(op.items);
    } else {
      this.applyDelete(op.paths);
    }
  }

  /** After a batch of changes: the exact mirror follows the size, the gauge the count. */
  settle(): void {
    this.engine.sync(this.size, this.maps.labels());
    this.metrics.indexSize.set(this.size);
  }

  search(query: number[], k: number, ef: number): Neighbor[] {
    const kk = Math.min(k, this.size);
    if (kk === 0) return [];
    const end = this.metrics.searchSeconds.startTimer();
    const { mode, result } = this.engine.knn(query, kk, ef, this.size);
    end({ mode });
    const out: Neighbor[] = [];
    for (let i = 0; i < result.labels.length; i++) {
      const path = this.maps.pathOf(result.labels[i]!);
      if (path === undefined) continue;
      const score = scoreOf(this.opts.distance, result.distances[i]!);
      const metadata = this.maps.get(path)?.metadata;
      out.push(metadata === undefined ? { relative_path: path, score } : { relative_path: path, score, metadata });
    }
    return out;
  }

  lookup(paths: string[]): Array<StoredVector | undefined> {
    return paths.map((p) => {
      const e = this.maps.get(p);
      return e ? { vec_features: this.engine.vector(e.label), ...(e.metadata ? { metadata: e.metadata } : {}) } : undefined;
    });
  }

  list(offset: number, limit: number, includeVectors: boolean): ListResponse['response'] {
    const items: ListResponse['response']['items'] = [];
    let i = 0;
    for (const [path, e] of this.maps.entries()) {
      if (i++ < offset) continue;
      if (items.length >= limit) break;
      items.push({
        relative_path: path,
        ...(e.metadata ? { metadata: e.metadata } : {}),
        ...(includeVectors ? { vec_features: this.engine.vector(e.label) } : {}),
      });
    }
    return { total: this.size, offset, limit, items };
  }
}
