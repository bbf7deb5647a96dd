import type { DeleteResponse, ListResponse, Neighbor, StatsResponse, UpsertResponse, VectorItem } from '@doppel/schemas';

export type Readiness = { ok: boolean; detail?: string };
export type StoredVector = { vec_features: number[]; metadata?: Record<string, unknown> };

/**
 * What a store of vectors must do for the HTTP contract. Two implementations: the embedded
 * hnswlib index (hnswlib.backend.ts: WAL + snapshots in this process) and PostgreSQL +
 * pgvector (pgvector.backend.ts: no state in this process). Input has already been checked
 * by Collection (dimension, finite values, metadata bounds); `search` gets k >= 1 and
 * ef >= k and answers best first with scores in [0, 1]. Errors are AppErrors: UNAVAILABLE
 * (with Retry-After) while the store cannot answer, INVALID_REQUEST for what only the store
 * can refuse.
 */
export interface VectorBackend {
  readonly name: 'hnswlib' | 'pgvector';
  /** Loads or connects; rejects (naming the reason) when the store cannot be used at all. */
  open(): Promise<void>;
  readiness(): Promise<Readiness> | Readiness;
  upsert(items: VectorItem[]): Promise<UpsertResponse['response']>;
  delete(paths: string[]): Promise<DeleteResponse['response']>;
  search(query: number[], k: number, ef: number): Promise<Neighbor[]>;
  list(offset: number, limit: number, includeVectors: boolean): Promise<ListResponse['response']>;
  /** The stored vector and metadata of each path, in order (undefined for a path not stored). */
  lookup(paths: string[]): Promise<Array<StoredVector | undefined>>;
  stats(): Promise<StatsResponse['response']>;
  /** Drains pending writes and releases the store. */
  close(): Promise<void>;
}
