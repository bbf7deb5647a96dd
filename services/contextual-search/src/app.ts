import { join } from 'node:path';
import type { Express } from 'express';
import { admissionFromConfig, createLogger, createServiceApp, Registry, type Logger, type Service, type ServiceDeps } from '@doppel/service-kit';
import type { SearchConfig } from '@doppel/schemas';
import { Collection } from './collection.service.js';
import { ImageIndex } from './image-index.service.js';
import { HnswlibBackend } from './hnswlib.backend.js';
import { PgvectorBackend } from './pgvector.backend.js';
import { createSearchMetrics, type SearchMetrics } from './search.metrics.js';
import { searchDocs, searchRoutes } from './search.routes.js';
import type { VectorBackend } from './vector.backend.js';
import { vectorsDocs, vectorsRoutes } from './vectors.routes.js';

export interface AppDeps {
  /** Test mode: answers are checked against their schemas (createServiceApp's checkResponses). */
  checkResponses?: boolean | undefined;
  config: SearchConfig;
  registry: Registry;
  logger: Logger;
}

export const SERVICE_NAME = 'contextual-search';

/** Where snapshots and the WAL live: DATA_DIR, or LOCATION/.index (skipped by the JSONL scan). */
export const dataDirOf = (config: SearchConfig): string => config.DATA_DIR || join(config.LOCATION, '.index');

/** Where a collection lives: the images' (the defaults) or their regions' (beside them). */
export interface StorePlace { dataDir?: string; location?: string; table?: string }

/** SEARCH_BACKEND picks the store; both get the same parameters from the same variables. */
export function createBackend(config: SearchConfig, logger: Logger, metrics: SearchMetrics, place: StorePlace = {}): VectorBackend {
  const params = { M: config.HNSW_M, efConstruction: config.HNSW_EF_CONSTRUCTION, efSearch: config.HNSW_EF_SEARCH };
  if (config.SEARCH_BACKEND === 'pgvector') {
    return new PgvectorBackend({
      url: config.DATABASE_URL,
      table: place.table ?? config.DATABASE_TABLE,
      poolSize: config.DATABASE_POOL_SIZE,
      dimension: config.DIMENSION,
      distance: config.DISTANCE_TYPE,
      params,
      log: logger,
    });
  }
  return new HnswlibBackend({
    dataDir: place.dataDir ?? dataDirOf(config),
    location: place.location ?? config.LOCATION,
    batchSize: config.BATCH_SIZE,
    dimension: config.DIMENSION,
    distance: config.DISTANCE_TYPE,
    params,
    mode: config.INDEX_MODE,
    exactMax: config.EXACT_MAX,
    snapshotIntervalMs: config.SNAPSHOT_INTERVAL_MS,
    snapshotWalRecords: config.SNAPSHOT_WAL_RECORDS,
    snapshotKeep: config.SNAPSHOT_KEEP,
    walRecovery: config.WAL_RECOVERY,
    log: logger,
    metrics,
  });
}

/**
 * Builds the app (never listens) and its index (the images' collection and their regions'),
 * not yet opened: the caller serves the app, then awaits index.open(); /readyz is 503
 * until that finishes.
 */
export function createApp(deps: AppDeps): { app: Express; collection: Collection; index: ImageIndex } {
  const { config } = deps;
  const opts = { dimension: config.DIMENSION, distance: config.DISTANCE_TYPE, efSearch: config.HNSW_EF_SEARCH, efPerK: config.HNSW_EF_PER_K };
  const metrics = createSearchMetrics(deps.registry);
  const collection = new Collection(createBackend(config, deps.logger, metrics), { ...opts, metrics });
  // Regional fingerprints live in a store of their own beside the images': a folder inside
  // DATA_DIR (same volume, own WAL and snapshots, no JSONL seed: its LOCATION is itself),
  // or a second table.
  const regionsDir = join(dataDirOf(config), 'regions');
  const regionMetrics = createSearchMetrics(deps.registry, 'search_regions');
  const regions = new Collection(createBackend(config, deps.logger, regionMetrics, {
    dataDir: regionsDir, location: regionsDir, table: `${config.DATABASE_TABLE}_regions`,
  }), { ...opts, metrics: regionMetrics });
  const index = new ImageIndex(collection, regions, { dimension: config.DIMENSION, distance: config.DISTANCE_TYPE });
  // hnswlib searches run synchronously on the main thread: one at a time, one per loop
  // turn, so /healthz and sockets are served between them. pgvector waits on the
  // database, so a few may be in flight.
  const admission = admissionFromConfig(config, 'search', config.SEARCH_BACKEND === 'pgvector' ? 4 : 1, deps.registry);
  const app = createServiceApp({
    service: SERVICE_NAME,
    body: { timeoutMs: config.BODY_TIMEOUT_MS, budgetBytes: config.BODY_BUDGET_BYTES },
    registry: deps.registry,
    logger: deps.logger,
    checkResponses: deps.checkResponses,
    docs: [...searchDocs, ...vectorsDocs],
    readiness: { index: () => index.readiness() },
    routes: (a) => {
      searchRoutes(a, index, admission);
      vectorsRoutes(a, index, config.DIMENSION);
    },
  });
  return { app, collection, index };
}

/**
 * The composition root. start() loads the image index (main.ts runs it after listening, so
 * /healthz answers and /readyz says 503 while a large index loads); close() flushes it.
 */
export function buildService(config: SearchConfig, deps: ServiceDeps = {}): Service & { collection: Collection; index: ImageIndex } {
  const logger = deps.logger ?? createLogger(SERVICE_NAME, config.LOG_LEVEL);
  // The image index opens and closes both of its stores (images and regions).
  const { app, collection, index } = createApp({ config, registry: deps.registry ?? new Registry(), logger, checkResponses: deps.checkResponses });
  return { app, collection, index, start: () => index.open(), close: () => index.close() };
}
