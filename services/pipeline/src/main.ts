import { createEncoderClient, createMatchingClient, createSearchClient } from '@doppel/clients';
import { PipelineConfig } from '@doppel/schemas';
import { createLogger, createUrlFetcher, loadConfig, Registry, runMain, serveMain } from '@doppel/service-kit';
import { resolve } from 'node:path';
import { createApp } from './app.js';

await runMain('pipeline', async () => {
  const config = loadConfig(PipelineConfig, process.env);
  const logger = createLogger('pipeline', config.LOG_LEVEL);
  const client = { timeoutMs: config.DOWNSTREAM_TIMEOUT_MS };
  const urls = createUrlFetcher({
    timeoutMs: config.URL_TIMEOUT_MS, maxBytes: config.MAX_IMAGE_BYTES,
    maxRedirects: config.URL_MAX_REDIRECTS, allowPrivate: config.ALLOW_PRIVATE_URLS,
  });
  const app = createApp({
    urls,
    config: { ...config, IMAGES_ROOT: resolve(config.IMAGES_ROOT) },
    encoder: createEncoderClient({ baseUrl: config.ENCODER_URL, ...client }),
    search: createSearchClient({ baseUrl: config.SEARCH_URL, ...client }),
    matching: createMatchingClient({ baseUrl: config.MATCHING_URL, ...client }),
    registry: new Registry(),
    logger,
  });
  await serveMain(app, config, logger, () => urls.close());
});
