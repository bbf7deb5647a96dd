import { EncoderConfig } from '@doppel/schemas';
import { createLogger, loadConfig, runMain, serveMain } from '@doppel/service-kit';
import { buildService } from './app.js';

await runMain('image-encoder', async () => {
  const config = loadConfig(EncoderConfig, process.env);
  const logger = createLogger('image-encoder', config.LOG_LEVEL);
  await serveMain(await buildService(config, { logger }), config, logger);
});
