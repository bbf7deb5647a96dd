import type { Express } from 'express';
import type { EncoderClient, MatchingClient, SearchClient } from '@doppel/clients';
import type { PipelineConfig } from '@doppel/schemas';
import { createServiceApp, type Logger, type ReadinessCheck, type Registry, type UrlFetcher } from '@doppel/service-kit';
import { KnownFiles } from './known-files.store.js';
import { mountPipelineRoutes, pipelineDocs } from './pipeline.routes.js';

export interface PipelineDeps {
  config: Pick<PipelineConfig, 'IMAGES_ROOT' | 'NB_NEIGHBORS' | 'MIN_SCORE' | 'INDEX_BATCH_SIZE' | 'INDEX_CONCURRENCY'>;
  /** Downloads `url` queries (the kit's SSRF-guarded fetcher). */
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

export function createApp(deps: PipelineDeps): Express {
  const { config, encoder, search, matching, urls } = deps;
  const known = new KnownFiles(search);
  return createServiceApp({
    service: 'pipeline',
    registry: deps.registry,
    logger: deps.logger,
    readiness: {
      'image-encoder': downstreamReady(encoder),
      'contextual-search': downstreamReady(search),
      'instance-matching': downstreamReady(matching),
    },
    docs: pipelineDocs,
    routes: (app) => mountPipelineRoutes(app, {
      duplicates: {
        encoder, search, matching, urls,
        nbNeighbors: config.NB_NEIGHBORS,
        minScore: config.MIN_SCORE,
      },
      indexing: {
        imagesRoot: config.IMAGES_ROOT, encoder, search, known,
        batchSize: config.INDEX_BATCH_SIZE,
        concurrency: config.INDEX_CONCURRENCY,
      },
    }),
  });
}
