import type { DistanceType } from '@doppel/schemas';
import { ExactIndex } from './exact.index.js';
import { HnswIndex, type HnswParams, type KnnResult } from './hnsw.index.js';

export type IndexMode = 'auto' | 'hnsw' | 'exact';

export interface EngineOptions {
  distance: DistanceType;
  dimension: number;
  params: HnswParams;
  mode: IndexMode;
  exactMax: number;
}

/**
 * The HNSW graph plus, for small collections, an exact mirror, and which of them answers:
 * in auto mode exact while count <= EXACT_MAX (the measured crossover). The mirror is kept
 * up to 2 x EXACT_MAX so a collection hovering around the threshold does not rebuild it.
 */
export class EngineSwitch {
  private exact: ExactIndex | undefined;

  constructor(
    private readonly opts: EngineOptions,
    public hnsw: HnswIndex = HnswIndex.create(opts.distance, opts.dimension, opts.params),
  ) {}

  /** The engine answering for a collection of `size` vectors. */
  modeFor(size: number): 'hnsw' | 'exact' {
    const { mode, exactMax } = this.opts;
    return mode === 'exact' || (mode === 'auto' && size <= exactMax) ? 'exact' : 'hnsw';
  }

  /** Builds or drops the exact mirror for the current size. */
  sync(size: number, labels: Iterable<number>): void {
    const { mode, exactMax, distance, dimension } = this.opts;
    const wanted = mode === 'exact' || (mode === 'auto' && size <= 2 * exactMax);
    if (!wanted) {
      this.exact = undefined;
      return;
    }
    if (this.exact) return;
    const ex = new ExactIndex(distance, dimension, Math.max(256, size));
    for (const label of labels) ex.set(label, this.hnsw.vector(label));
    this.exact = ex;
  }

  ensureCapacity(extra: number): void {
    this.hnsw.ensureCapacity(extra);
  }

  set(label: number, vector: number[], isNew: boolean): void {
    this.hnsw.add(label, vector, isNew);
    this.exact?.set(label, vector);
  }

  remove(label: number): void {
    this.hnsw.remove(label);
    this.exact?.delete(label);
  }

  vector(label: number): number[] {
    return this.hnsw.vector(label);
  }

  knn(query: number[], k: number, ef: number, size: number): { mode: 'hnsw' | 'exact'; result: KnnResult } {
    if (this.exact && this.modeFor(size) === 'exact') return { mode: 'exact', result: this.exact.search(query, k) };
    return { mode: 'hnsw', result: this.hnsw.search(query, k, ef) };
  }
}
