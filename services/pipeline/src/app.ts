import type { Express } from 'express';
import {
  createEncoderClient, createMatchingClient, createSearchClient, type EncoderClient, type MatchingClient, type SearchClient,
} from '@doppel/clients';
import type { PipelineConfig } from '@doppel/schemas';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import {
  admissionFromConfig, ConfigError, createLogger, createServiceApp, Registry,
  type AdmissionConfig, type Logger, type ReadinessCheck, type Service, type ServiceDeps,
} from '@doppel/service-kit';
import { createUrlFetcher, type UrlFetcher } from '@doppel/image-source';
import { BlobStore } from './blob.store.js';
import { ImageRecords } from './image-records.store.js';
import { createIdLock, type ImagesDeps } from './images.logic.js';
import { KnownFiles } from './known-files.store.js';
import { StoredFingerprints } from './stored-fingerprint.logic.js';
import { mountPipelineRoutes, pipelineDocs } from './pipeline.routes.js';

export interface PipelineDeps {
  /** Test mode: answers are checked against their schemas (createServiceApp's checkResponses). */
  checkResponses?: boolean | undefined;
  config: Pick<PipelineConfig, 'IMAGES_ROOT' | 'NB_NEIGHBORS' | 'MIN_SCORE' | 'SEARCH_K' | 'HUBNESS_WEIGHT' | 'ORIENTATION_SEARCH' | 'SEARCH_MIRRORS' | 'INDEX_BATCH_SIZE' | 'INDEX_CONCURRENCY' | 'MAX_IMAGE_BYTES' | 'API_STATE_DIR' | 'COMPAT_ACCURACY'>
    & Partial<AdmissionConfig & Pick<PipelineConfig, 'BODY_TIMEOUT_MS' | 'BODY_BUDGET_BYTES'>>;
  /** Downloads `url` queries (image-source's SSRF-guarded fetcher). */
  urls: UrlFetcher;
  encoder: EncoderClient;
  search: SearchClient;
  matching: MatchingClient;
  registry: Registry;
  logger: Logger;
}

const downstreamReady = (client: { ready: () => Promise<unknown> }): ReadinessCheck => async () => {
  try {
    await client.ready();
    return { ok: true };
  } catch (e) {
    return { ok: false, detail: (e as Error).message };
  }
};

/**
 * API_STATE_DIR relative to the image root (forward slashes): the encoder and the matcher
 * read kept images by that path, so it must stay inside the root.
 */
export function apiStateDir(imagesRoot: string, dir: string): string {
  const rel = relative(imagesRoot, resolve(imagesRoot, dir));
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
    throw new ConfigError('API_STATE_DIR', `must be a folder inside IMAGES_ROOT (${imagesRoot}), got ${dir}`);
  }
  return rel.split(sep).join('/');
}

export function createApp(deps: PipelineDeps): Express {
  const { config, encoder, search, matching, urls } = deps;
  const known = new KnownFiles(search);
  const admit = { ADMIT_CONCURRENCY: config.ADMIT_CONCURRENCY ?? 0, ADMIT_QUEUE: config.ADMIT_QUEUE ?? 64, ADMIT_WAIT_MS: config.ADMIT_WAIT_MS ?? 2000 };
  // A query mostly waits on its three downstreams; indexing a folder is long and runs alone
  // (its own limiter, so its duration does not count against the expected wait of queries).
  const admissions = {
    duplicates: admissionFromConfig(admit, 'duplicates', 8, deps.registry),
    index: admissionFromConfig({ ADMIT_CONCURRENCY: 2, ADMIT_QUEUE: Math.min(admit.ADMIT_QUEUE, 8), ADMIT_WAIT_MS: admit.ADMIT_WAIT_MS * 10 }, 'index', 2, deps.registry),
  };
  const duplicates = {
    imagesRoot: config.IMAGES_ROOT, encoder, search, matching, urls,
    nbNeighbors: config.NB_NEIGHBORS,
    minScore: config.MIN_SCORE,
    searchK: config.SEARCH_K,
    hubnessWeight: config.HUBNESS_WEIGHT,
    orientationSearch: config.ORIENTATION_SEARCH,
    turned: config.SEARCH_MIRRORS ? 'all' as const : 'turns' as const,
    stored: new StoredFingerprints(search),
  };
  const stateDir = apiStateDir(config.IMAGES_ROOT, config.API_STATE_DIR);
  const images: ImagesDeps = {
    imagesRoot: config.IMAGES_ROOT, maxImageBytes: config.MAX_IMAGE_BYTES,
    encoder, search, matching, urls, known, duplicates,
    blobs: new BlobStore(config.IMAGES_ROOT, stateDir),
    records: new ImageRecords(config.IMAGES_ROOT, stateDir),
    ids: createIdLock(),
  };
  return createServiceApp({
    service: 'pipeline',
    body: { timeoutMs: config.BODY_TIMEOUT_MS ?? 30_000, budgetBytes: config.BODY_BUDGET_BYTES ?? 256 * 1024 * 1024 },
    registry: deps.registry,
    logger: deps.logger,
    checkResponses: deps.checkResponses,
    // The pipeline has no state of its own to load: it is ready once it listens. Its three
    // downstreams are reported (/readyz `downstream`, /health/downstream), not required.
    downstream: {
      'image-encoder': downstreamReady(encoder),
      'contextual-search': downstreamReady(search),
      'instance-matching': downstreamReady(matching),
    },
    docs: pipelineDocs,
    routes: (app) => mountPipelineRoutes(app, {
      admissions,
      duplicates,
      images,
      limits: { maxImageBytes: config.MAX_IMAGE_BYTES },
      compatAccuracy: config.COMPAT_ACCURACY,
      indexing: {
        imagesRoot: config.IMAGES_ROOT, encoder, search, known,
        batchSize: config.INDEX_BATCH_SIZE,
        concurrency: config.INDEX_CONCURRENCY,
      },
    }),
  });
}

export interface PipelineServiceDeps extends ServiceDeps {
  /** Clients of the three services; by default built from ENCODER_URL, SEARCH_URL and MATCHING_URL. */
  encoder?: EncoderClient;
  search?: SearchClient;
  matching?: MatchingClient;
  urls?: UrlFetcher;
}

/** The composition root: config -> downstream clients, URL fetcher and app. */
export function buildService(config: PipelineConfig, deps: PipelineServiceDeps = {}): Service {
  const client = { timeoutMs: config.DOWNSTREAM_TIMEOUT_MS };
  const urls = deps.urls ?? createUrlFetcher({
    timeoutMs: config.URL_TIMEOUT_MS, maxBytes: config.MAX_IMAGE_BYTES,
    maxRedirects: config.URL_MAX_REDIRECTS, allowPrivate: config.ALLOW_PRIVATE_URLS,
  });
  const app = createApp({
    urls,
    config: { ...config, IMAGES_ROOT: resolve(config.IMAGES_ROOT) },
    encoder: deps.encoder ?? createEncoderClient({ baseUrl: config.ENCODER_URL, ...client }),
    search: deps.search ?? createSearchClient({ baseUrl: config.SEARCH_URL, ...client }),
    matching: deps.matching ?? createMatchingClient({ baseUrl: config.MATCHING_URL, ...client }),
    registry: deps.registry ?? new Registry(),
    logger: deps.logger ?? createLogger('pipeline', config.LOG_LEVEL),
    checkResponses: deps.checkResponses,
  });
  return { app, close: async () => { if (!deps.urls) await urls.close(); } };
}
