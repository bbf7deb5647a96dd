import { PipelineConfig } from '@doppel/schemas';
import { createLogger, loadConfig, runMain, serveMain } from '@doppel/service-kit';
import { buildService } from './app.js';

await runMain('pipeline', async () => {
  const config = loadConfig(PipelineConfig, process.env);
  const logger = createLogger('pipeline', config.LOG_LEVEL);
  await serveMain(buildService(config, { logger }), config, logger);
});
