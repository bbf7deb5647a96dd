import type { DeleteResponse, DistanceType, ListResponse, Neighbor, StatsResponse, UpsertResponse, VectorItem } from '@doppel/schemas';
import { AppError } from '@doppel/service-kit';
import { metadataProblem, vectorProblem } from './vector.check.js';
import type { Readiness, StoredVector, VectorBackend } from './vector.backend.js';

export interface CollectionOptions {
  dimension: number;
  distance: DistanceType;
  /** ef when the request gives none. */
  efSearch: number;
}

/**
 * The one place where requests become backend calls, whichever backend stores the
 * vectors: every batch is checked completely before the backend sees it, ef is at least
 * k, and min_score is applied to the backend's best-first answer.
 */
export class Collection {
  constructor(
    readonly backend: VectorBackend,
    private readonly opts: CollectionOptions,
  ) {}

  open(): Promise<void> {
    return this.backend.open();
  }

  readiness(): Promise<Readiness> | Readiness {
    return this.backend.readiness();
  }

  upsert(items: VectorItem[]): Promise<UpsertResponse['response']> {
    items.forEach((it, i) => {
      const problem =
        vectorProblem(it.vec_features, this.opts.dimension, this.opts.distance, `items[${i}].vec_features`) ??
        metadataProblem(it.metadata, `items[${i}].metadata`);
      if (problem) throw new AppError('INVALID_REQUEST', problem);
    });
    return this.backend.upsert(items);
  }

  delete(paths: string[]): Promise<DeleteResponse['response']> {
    return this.backend.delete(paths);
  }

  async search(query: number[], k: number, minScore = 0, ef?: number): Promise<Neighbor[]> {
    const problem = vectorProblem(query, this.opts.dimension, this.opts.distance, 'vec_features');
    if (problem) throw new AppError('INVALID_REQUEST', problem);
    // ef below k would return fewer than k candidates.
    const hits = await this.backend.search(query, k, Math.max(ef ?? this.opts.efSearch, k));
    // Sorted best first: everything after the first score below the bar is below it too.
    const cut = hits.findIndex((h) => h.score < minScore);
    return cut < 0 ? hits : hits.slice(0, cut);
  }

  list(offset: number, limit: number, includeVectors: boolean): Promise<ListResponse['response']> {
    return this.backend.list(offset, limit, includeVectors);
  }

  lookup(paths: string[]): Promise<Array<StoredVector | undefined>> {
    return this.backend.lookup(paths);
  }

  stats(): Promise<StatsResponse['response']> {
    return this.backend.stats();
  }

  close(): Promise<void> {
    return this.backend.close();
  }
}
