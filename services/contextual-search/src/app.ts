import { join } from 'node:path';
import type { Express } from 'express';
import { admissionFromConfig, createServiceApp, type Logger, type Registry } from '@doppel/service-kit';
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
  // Searches run synchronously on the main thread: one at a time, one per loop turn, so
  // /healthz and sockets are served between them.
  const admission = admissionFromConfig(config, 'search', 1, deps.registry);
  const app = createServiceApp({
    service: SERVICE_NAME,
    body: { timeoutMs: config.BODY_TIMEOUT_MS, budgetBytes: config.BODY_BUDGET_BYTES },
    registry: deps.registry,
    logger: deps.logger,
    docs: [...searchDocs, ...vectorsDocs],
    readiness: { index: () => collection.readiness() },
    routes: (a) => {
      searchRoutes(a, collection, admission);
      vectorsRoutes(a, collection, config.DIMENSION);
    },
  });
  return { app, collection };
}
