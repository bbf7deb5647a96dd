import { existsSync } from 'node:fs';
import sharp from 'sharp';
import { EncoderConfig } from '@doppel/schemas';
import { Registry, createLogger, loadConfig, runMain, serveMain } from '@doppel/service-kit';
import { createApp } from './app.js';
import { loadOnnxModel } from './onnx.model.js';
import { rmacWindows } from './feature-output.graph.js';
import { modelPathFrom } from './model-path.config.js';
import { createUrlFetcher } from '@doppel/service-kit';

await runMain('image-encoder', async () => {
  const config = loadConfig(EncoderConfig, process.env);
  const logger = createLogger('image-encoder', config.LOG_LEVEL);
  const modelPath = modelPathFrom(config);
  if (!existsSync(modelPath) && config.MODEL_PRECISION === 'int8') {
    throw new Error(`no quantised model at ${modelPath} (MODEL_PRECISION=int8). Run \`pnpm quantize\` from the repository root to write it `
      + 'beside the float model, or set MODEL_PRECISION=fp32.');
  }
  if (!existsSync(modelPath)) {
    throw new Error(`no model at ${modelPath}. Run \`pnpm models\` from the repository root to install the default model `
      + '(from ../shared/models, or MODEL_URL=... MODEL_SHA256=... pnpm models), or set MODEL_PATH to an ONNX file.');
  }
  // Images are decoded once each: libvips' operation cache would only hold memory.
  sharp.cache(false);
  const model = await loadOnnxModel({
    path: modelPath,
    sha256: config.MODEL_SHA256,
    featureTensor: config.FEATURE_TENSOR,
    inputSize: config.INPUT_SIZE,
    workers: config.NB_WORKERS,
    intraOpThreads: config.INTRA_OP_THREADS,
    maxBatch: config.MAX_BATCH,
    batchWindowMs: config.BATCH_WINDOW_MS,
    queueLimit: config.QUEUE_LIMIT,
    regions: config.REGIONS === 'rmac' ? rmacWindows() : [],
    pooling: config.POOLING,
  });
  logger.info({ model: modelPath, precision: config.MODEL_PRECISION, dimension: model.dimension, input: model.inputSize, feature: model.layout.featureTensor, why: model.layout.reason }, 'model loaded');
  const urls = createUrlFetcher({
    timeoutMs: config.URL_TIMEOUT_MS, maxBytes: config.MAX_IMAGE_BYTES,
    maxRedirects: config.URL_MAX_REDIRECTS, allowPrivate: config.ALLOW_PRIVATE_URLS,
  });
  const app = createApp({ config, registry: new Registry(), logger, model, urls });
  await serveMain(app, config, logger, async () => {
    await model.close();
    await urls.close();
  });
});
