import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SearchConfig, type StatsResponse } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { call, listen } from '@doppel/service-kit/testing';
import { buildService } from '../src/app.js';
import type { Collection } from '../src/collection.service.js';
import { HnswlibBackend } from '../src/hnswlib.backend.js';
import { pgvectorEnv } from './pglite.fixture.js';
import { postgresEnv, postgresMissing } from './postgres.fixture.js';

export interface Running {
  base: string;
  collection: Collection;
  /** The hnswlib backend (snapshots, seed report); throws on another backend. */
  readonly hnsw: HnswlibBackend;
  close(): Promise<void>;
  /** Stops serving but skips the shutdown snapshot, leaving state as a crash would (WAL only). */
  abandon(): Promise<void>;
}

/**
 * The shared API suite runs on each: hnswlib; pgvector against PGlite + pgvector over the
 * wire protocol; pgvector on a real PostgreSQL server (`postgres`, skipped with the reason
 * when the server is not installed).
 */
export const BACKENDS = ['hnswlib', 'pgvector', 'postgres'] as const;
export type BackendName = (typeof BACKENDS)[number];
/** The SEARCH_BACKEND a test setting runs (both database settings are the pgvector backend). */
export const engineOf = (backend: BackendName): 'hnswlib' | 'pgvector' => (backend === 'hnswlib' ? 'hnswlib' : 'pgvector');
/** Options of a suite on `backend`: a skip, with its reason, where its database is missing. */
export const suiteOptions = (backend: BackendName): { skip?: string } => (backend === 'postgres' && postgresMissing ? { skip: postgresMissing } : {});
/** Environment selecting `backend` (for the databases: the shared server and a table of its own). */
export const backendEnv = async (backend: BackendName): Promise<Record<string, string>> =>
  backend === 'pgvector' ? pgvectorEnv() : backend === 'postgres' ? postgresEnv() : {};

export const tempDir = (): Promise<string> => mkdtemp(join(tmpdir(), 'doppel-search-'));
export const removeDir = (dir: string): Promise<void> => rm(dir, { recursive: true, force: true });

/** The service as main.ts builds it, on port 0 over `dir` (LOCATION; data in dir/.index), loaded and ready. */
export async function start(dir: string, env: Record<string, string> = {}): Promise<Running> {
  const config = loadConfig(SearchConfig, { LOCATION: dir, DIMENSION: '4', LOG_LEVEL: 'silent', SNAPSHOT_INTERVAL_MS: '0', ...env });
  const service = buildService(config, { checkResponses: true });
  const { collection } = service;
  return {
    ...(await listen(service)),
    collection,
    get hnsw() {
      if (!(collection.backend instanceof HnswlibBackend)) throw new Error(`the ${collection.backend.name} backend has no snapshots`);
      return collection.backend;
    },
  };
}

export const upsert = (base: string, items: unknown[]) => call(base, 'POST', '/vectors', { items });
export const remove = (base: string, paths: string[]) => call(base, 'DELETE', '/vectors', { relative_paths: paths });
export const search = (base: string, vec: unknown[], k = 10, extra: Record<string, unknown> = {}) =>
  call(base, 'POST', '/search', { nb_neighbors: k, vec_features: vec, ...extra });
export const stats = async (base: string): Promise<StatsResponse['response']> => (await call(base, 'GET', '/stats')).body.response;

/** Paths and metadata of the whole collection, in list order. */
export async function listAll(base: string): Promise<Array<{ relative_path: string; metadata?: unknown; vec_features?: number[] }>> {
  const r = await call(base, 'GET', '/vectors?limit=1000&include_vectors=true');
  return r.body.response.items;
}
