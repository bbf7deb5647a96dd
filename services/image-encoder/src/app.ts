import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Express } from 'express';
import type { EncoderConfig } from '@doppel/schemas';
import { admissionFromConfig, createServiceApp, type Logger, type Registry } from '@doppel/service-kit';
import { encodeDocs, encodeRoutes } from './encode.routes.js';
import { createEncoderMetrics } from './encoder.metrics.js';
import type { EncoderModel } from './onnx.model.js';
import type { UrlFetcher } from '@doppel/service-kit';

export interface AppDeps {
  config: Readonly<EncoderConfig>;
  registry: Registry;
  logger: Logger;
  model: EncoderModel;
  /** Downloads `url` sources; owned by the caller, which closes it. */
  urls: UrlFetcher;
}

function realRoot(root: string): string {
  try {
    return realpathSync(root);
  } catch {
    return resolve(root);
  }
}

export function createApp(deps: AppDeps): Express {
  const { config, model } = deps;
  const metrics = createEncoderMetrics(deps.registry);
  model.observe({
    onBatch: (size, seconds) => {
      metrics.batchSize.observe(size);
      metrics.inferenceSeconds.observe(seconds);
    },
    onQueueDepth: (d) => metrics.queueDepth.set(d),
  });
  const encodeDeps = {
    model,
    metrics,
    sources: { imagesRoot: realRoot(config.IMAGES_ROOT), maxImageBytes: config.MAX_IMAGE_BYTES, urls: deps.urls },
    preprocess: { size: model.inputSize, mode: config.RESIZE_MODE, maxPixels: config.MAX_PIXELS, trim: config.TRIM_BORDERS },
    decodeConcurrency: config.DECODE_CONCURRENCY,
  };
  // Enough requests at once to fill a micro-batch on every worker while the next ones decode.
  const admission = admissionFromConfig(config, 'encode', Math.max(4, config.NB_WORKERS * 2), deps.registry);
  return createServiceApp({
    service: 'image-encoder',
    body: { timeoutMs: config.BODY_TIMEOUT_MS, budgetBytes: config.BODY_BUDGET_BYTES },
    registry: deps.registry,
    logger: deps.logger,
    readiness: { model: () => ({ ok: model.ready(), detail: `${model.name}, ${model.dimension}-d` }) },
    docs: encodeDocs,
    routes: (app) => encodeRoutes(app, encodeDeps, { maxImageBytes: config.MAX_IMAGE_BYTES, maxBatchBodyBytes: config.MAX_BATCH_BODY_BYTES }, admission),
  });
}
