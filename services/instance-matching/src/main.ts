import { createLogger, loadConfig, runMain, serveMain } from '@doppel/service-kit';
import { MatchingConfig } from '@doppel/schemas';
import { buildService, SERVICE_NAME } from './app.js';

await runMain(SERVICE_NAME, async () => {
  const config = loadConfig(MatchingConfig, process.env);
  const logger = createLogger(SERVICE_NAME, config.LOG_LEVEL);
  await serveMain(buildService(config, { logger }), config, logger);
});
