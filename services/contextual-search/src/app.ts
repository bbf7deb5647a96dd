import { join } from 'node:path';
import type { Express } from 'express';
import { createLogger, createServiceApp, Registry, type Logger, type Service, type ServiceDeps } from '@doppel/service-kit';
import type { SearchConfig } from '@doppel/schemas';
import { Collection } from './collection.service.js';
import { createSearchMetrics } from './search.metrics.js';
import { searchDocs, searchRoutes } from './search.routes.js';
import { vectorsDocs, vectorsRoutes } from './vectors.routes.js';

export interface AppDeps {
  config: SearchConfig;
  registry: Registry;
  logger: Logger;
}

export const SERVICE_NAME = 'contextual-search';

/** Where snapshots and the WAL live: DATA_DIR, or LOCATION/.index (skipped by the JSONL scan). */
export const dataDirOf = (config: SearchConfig): string => config.DATA_DIR || join(config.LOCATION, '.index');

/**
 * Builds the app (never listens) and its collection, not yet loaded: the caller serves
 * the app, then awaits collection.open(); /readyz is 503 until that finishes.
 */
export function createApp(deps: AppDeps): { app: Express; collection: Collection } {
  const { config } = deps;
  const collection = new Collection({
    dataDir: dataDirOf(config),
    location: config.LOCATION,
    batchSize: config.BATCH_SIZE,
    dimension: config.DIMENSION,
    distance: config.DISTANCE_TYPE,
    params: { M: config.HNSW_M, efConstruction: config.HNSW_EF_CONSTRUCTION, efSearch: config.HNSW_EF_SEARCH },
    mode: config.INDEX_MODE,
    exactMax: config.EXACT_MAX,
    snapshotIntervalMs: config.SNAPSHOT_INTERVAL_MS,
    snapshotWalRecords: config.SNAPSHOT_WAL_RECORDS,
    snapshotKeep: config.SNAPSHOT_KEEP,
    log: deps.logger,
    metrics: createSearchMetrics(deps.registry),
  });
  const app = createServiceApp({
    service: SERVICE_NAME,
    registry: deps.registry,
    logger: deps.logger,
    docs: [...searchDocs, ...vectorsDocs],
    readiness: { index: () => collection.readiness() },
    routes: (a) => {
      searchRoutes(a, collection);
      vectorsRoutes(a, collection, config.DIMENSION);
    },
  });
  return { app, collection };
}

/**
 * The composition root. start() loads the collection (main.ts runs it after listening, so
 * /healthz answers and /readyz says 503 while a large index loads); close() flushes it.
 */
export function buildService(config: SearchConfig, deps: ServiceDeps = {}): Service & { collection: Collection } {
  const logger = deps.logger ?? createLogger(SERVICE_NAME, config.LOG_LEVEL);
  const { app, collection } = createApp({ config, registry: deps.registry ?? new Registry(), logger });
  return { app, collection, start: () => collection.open(), close: () => collection.close() };
}
