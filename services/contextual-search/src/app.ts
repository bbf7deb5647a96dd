import { join } from 'node:path';
import type { Express } from 'express';
import { createServiceApp, type Logger, type Registry } from '@doppel/service-kit';
import type { SearchConfig } from '@doppel/schemas';
import { Collection, type CollectionOptions } from './collection.service.js';
import { ImageIndex } from './image-index.service.js';
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
 * Builds the app (never listens) and its index (the images' collection and their regions'),
 * not yet loaded: the caller serves the app, then awaits index.open(); /readyz is 503
 * until that finishes.
 */
export function createApp(deps: AppDeps): { app: Express; collection: Collection; index: ImageIndex } {
  const { config } = deps;
  const options = (dataDir: string, location: string, metricsPrefix: string): CollectionOptions => ({
    dataDir,
    location,
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
    metrics: createSearchMetrics(deps.registry, metricsPrefix),
  });
  const collection = new Collection(options(dataDirOf(config), config.LOCATION, 'search'));
  // Regional fingerprints live in their own store inside DATA_DIR (same volume, own WAL
  // and snapshots); it has no JSONL seed (its LOCATION is its own folder, holding none).
  const regionsDir = join(dataDirOf(config), 'regions');
  const regions = new Collection(options(regionsDir, regionsDir, 'search_regions'));
  const index = new ImageIndex(collection, regions, { dimension: config.DIMENSION, distance: config.DISTANCE_TYPE });
  const app = createServiceApp({
    service: SERVICE_NAME,
    registry: deps.registry,
    logger: deps.logger,
    docs: [...searchDocs, ...vectorsDocs],
    readiness: { index: () => index.readiness() },
    routes: (a) => {
      searchRoutes(a, index);
      vectorsRoutes(a, index, config.DIMENSION);
    },
  });
  return { app, collection, index };
}
