import hnswlib from 'hnswlib-node';
import type { DistanceType } from '@doppel/schemas';

/**
 * The hnswlib runtime behind one small typed module. Everything here is synchronous and
 * runs on the main thread except write(), which hnswlib runs on the libuv pool: callers
 * must not mutate the index until write() settles (searches are read-only and safe).
 */

const SPACE: Record<DistanceType, 'cosine' | 'l2' | 'ip'> = { Cosine: 'cosine', L2: 'l2', InnerProduct: 'ip' };

export interface HnswParams {
  M: number;
  efConstruction: number;
  efSearch: number;
}

export interface KnnResult {
  labels: number[];
  distances: number[];
}

/**
 * hnswlib distance -> score in [0, 1], 1 = identical. Monotone decreasing in the distance,
 * so "best first" by distance is "best first" by score.
 * - Cosine: d = 1 - cos  in [0, 2]   -> score = 1 - d / 2 = (1 + cos) / 2
 * - InnerProduct: d = 1 - dot         -> score = clamp((1 + dot) / 2): the Cosine score for
 *   unit vectors (the intended use); unnormalised vectors saturate at 0 or 1.
 * - L2: d = squared euclidean distance -> score = 1 / (1 + sqrt(d))
 */
export function scoreOf(distance: DistanceType, d: number): number {
  let s: number;
  if (distance === 'L2') s = 1 / (1 + Math.sqrt(Math.max(0, d)));
  else s = 1 - d / 2;
  // float32 rounding can step just outside the range (e.g. 1 - 1.0000001).
  return s < 0 ? 0 : s > 1 ? 1 : s;
}

export class HnswIndex {
  private idx: hnswlib.HierarchicalNSW;
  private ef: number;

  private constructor(
    readonly distance: DistanceType,
    readonly dimension: number,
    readonly params: HnswParams,
    idx: hnswlib.HierarchicalNSW,
  ) {
    this.idx = idx;
    this.ef = params.efSearch;
    idx.setEf(params.efSearch);
  }

  /** A new empty index. Deleted slots are reused by later inserts (allowReplaceDeleted). */
  static create(distance: DistanceType, dimension: number, params: HnswParams, capacity = 1024, seed = 100): HnswIndex {
    const idx = new hnswlib.HierarchicalNSW(SPACE[distance], dimension);
    idx.initIndex(Math.max(1, capacity), params.M, params.efConstruction, seed, true);
    return new HnswIndex(distance, dimension, params, idx);
  }

  /** Loads a file written by write(); M and efConstruction come from the file. */
  static async load(file: string, distance: DistanceType, dimension: number, params: HnswParams): Promise<HnswIndex> {
    const idx = new hnswlib.HierarchicalNSW(SPACE[distance], dimension);
    await idx.readIndex(file, true);
    return new HnswIndex(distance, dimension, params, idx);
  }

  get capacity(): number {
    return this.idx.getMaxElements();
  }

  /** Slots in use, deleted ones included (they are reused before the index grows). */
  get slots(): number {
    return this.idx.getCurrentCount();
  }

  /**
   * Grows the index ahead of need (doubling) so that `extra` more inserts cannot fail for
   * capacity. resizeIndex copies the whole graph, hence doubling rather than +n.
   */
  ensureCapacity(extra: number): void {
    const need = this.slots + extra;
    const cap = this.capacity;
    if (need <= cap) return;
    this.idx.resizeIndex(Math.max(need, cap * 2));
  }

  /** Inserts a new label (reusing a deleted slot if any) or replaces a live label's vector. */
  add(label: number, vector: number[], isNew: boolean): void {
    if (isNew) this.ensureCapacity(1);
    // replaceDeleted must be false when updating a live label: with a vacancy hnswlib
    // would otherwise move the label to the vacant slot and orphan the old one.
    this.idx.addPoint(vector, label, isNew);
  }

  remove(label: number): void {
    this.idx.markDelete(label);
  }

  vector(label: number): number[] {
    return this.idx.getPoint(label);
  }

  search(query: number[], k: number, ef: number): KnnResult {
    if (ef !== this.ef) {
      this.idx.setEf(ef);
      this.ef = ef;
    }
    // hnswlib refuses k above its capacity; it returns fewer results when there are fewer live points.
    const r = this.idx.searchKnn(query, Math.min(k, this.capacity));
    return { labels: r.neighbors, distances: r.distances };
  }

  /** Serialises the index to `file` on the libuv pool; do not mutate until it settles. */
  async write(file: string): Promise<void> {
    await this.idx.writeIndex(file);
  }
}
