import { chooseWhitening, type Whitening } from './pca-whitening.transform.js';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Express } from 'express';
import sharp from 'sharp';
import type { EncoderConfig } from '@doppel/schemas';
import {
  admissionFromConfig, createLogger, createServiceApp, Registry, type Logger, type Service, type ServiceDeps,
} from '@doppel/service-kit';
import { createUrlFetcher, type UrlFetcher } from '@doppel/image-source';
import { encodeDocs, encodeRoutes } from './encode.routes.js';
import { createEncoderMetrics } from './encoder.metrics.js';
import { rmacWindows } from './feature-output.graph.js';
import { modelPathFrom } from './model-path.config.js';
import { loadOnnxModel, type EncoderModel } from './onnx.model.js';

export interface AppDeps {
  /** Test mode: answers are checked against their schemas (createServiceApp's checkResponses). */
  checkResponses?: boolean | undefined;
  config: Readonly<EncoderConfig>;
  registry: Registry;
  logger: Logger;
  model: EncoderModel;
  /** Downloads `url` sources; owned by the caller, which closes it. */
  urls: UrlFetcher;
  /** Applied to every fingerprint when set (WHITENING_PATH: by default the fit beside the model). */
  whitening?: Whitening;
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
    greyEntry: config.GREY_ENTRY,
    ...(deps.whitening ? { whitening: deps.whitening } : {}),
  };
  // Enough requests at once to fill a micro-batch on every worker while the next ones decode.
  const admission = admissionFromConfig(config, 'encode', Math.max(4, config.NB_WORKERS * 2), deps.registry);
  return createServiceApp({
    service: 'image-encoder',
    body: { timeoutMs: config.BODY_TIMEOUT_MS, budgetBytes: config.BODY_BUDGET_BYTES },
    registry: deps.registry,
    logger: deps.logger,
    checkResponses: deps.checkResponses,
    readiness: { model: () => ({ ok: model.ready(), detail: `${model.name}, ${model.dimension}-d` }) },
    docs: encodeDocs,
    routes: (app) => encodeRoutes(app, encodeDeps, { maxImageBytes: config.MAX_IMAGE_BYTES, maxBatchBodyBytes: config.MAX_BATCH_BODY_BYTES }, admission),
  });
}

export interface EncoderServiceDeps extends ServiceDeps {
  /** A model loaded by the caller (which then closes it); otherwise loaded from the config. */
  model?: EncoderModel;
  urls?: UrlFetcher;
}

/** The composition root: config -> model, URL fetcher and app; close() releases what it created. */
export async function buildService(config: Readonly<EncoderConfig>, deps: EncoderServiceDeps = {}): Promise<Service & { model: EncoderModel }> {
  const logger = deps.logger ?? createLogger('image-encoder', config.LOG_LEVEL);
  // Images are decoded once each: libvips' operation cache would only hold memory.
  sharp.cache(false);
  let model = deps.model;
  const modelPath = modelPathFrom(config);
  if (!model) {
    if (!existsSync(modelPath) && config.MODEL_PRECISION === 'int8') {
      throw new Error(`no quantised model at ${modelPath} (MODEL_PRECISION=int8). Run \`pnpm quantize\` from the repository root to write it `
        + 'beside the float model, or set MODEL_PRECISION=fp32.');
    }
    if (!existsSync(modelPath)) {
      throw new Error(`no model at ${modelPath}. Run \`pnpm models\` from the repository root to install the default model `
        + '(from ../shared/models, or MODEL_URL=... MODEL_SHA256=... pnpm models), or set MODEL_PATH to an ONNX file.');
    }
    model = await loadOnnxModel({
      path: modelPath,
      sha256: config.MODEL_SHA256,
      featureTensor: config.FEATURE_TENSOR,
      inputSize: config.INPUT_SIZE,
      workers: config.NB_WORKERS,
      intraOpThreads: config.INTRA_OP_THREADS,
      spinning: config.INTRA_OP_SPINNING,
      maxBatch: config.MAX_BATCH,
      batchWindowMs: config.BATCH_WINDOW_MS,
      queueLimit: config.QUEUE_LIMIT,
      regions: config.REGIONS === 'rmac' ? rmacWindows() : [],
      pooling: config.POOLING,
    });
    logger.info({ model: modelPath, precision: config.MODEL_PRECISION, dimension: model.dimension, input: model.inputSize, feature: model.layout.featureTensor, why: model.layout.reason }, 'model loaded');
  }
  const urls = deps.urls ?? createUrlFetcher({
    timeoutMs: config.URL_TIMEOUT_MS, maxBytes: config.MAX_IMAGE_BYTES,
    maxRedirects: config.URL_MAX_REDIRECTS, allowPrivate: config.ALLOW_PRIVATE_URLS,
  });
  let whitening: Whitening | undefined;
  try {
    const sha = () => createHash('sha256').update(readFileSync(modelPath)).digest('hex');
    const choice = chooseWhitening(config.WHITENING_PATH, modelPath, model.dimension, sha);
    whitening = choice.whitening;
    if (choice.whitening) logger.info({ whitening: choice.path }, 'fingerprints whitened (model name +pca)');
    else if ('missing' in choice) {
      logger.warn({ whitening: choice.path }, 'no whitening fit beside the model: fingerprints are plain, with lower candidate recall in large collections. '
        + `${config.MODEL_PRECISION === 'int8' ? '`pnpm quantize`' : '`pnpm models`'} writes the fit (or set WHITENING_PATH=none to silence this)`);
    }
  } catch (e) {
    // Its dimension is only known once the model is loaded: release what was loaded for it.
    if (!deps.model) await model.close();
    throw e;
  }
  const app = createApp({ config, registry: deps.registry ?? new Registry(), logger, model, urls, checkResponses: deps.checkResponses, ...(whitening ? { whitening } : {}) });
  const owned = { model: !deps.model, urls: !deps.urls };
  return {
    app,
    model,
    close: async () => {
      if (owned.model) await model.close();
      if (owned.urls) await urls.close();
    },
  };
}
