import { createLogger, loadConfig, Registry, runMain, serveMain } from '@doppel/service-kit';
import { MatchingConfig } from '@doppel/schemas';
import { createApp, SERVICE_NAME } from './app.js';
import { WorkerPool } from './worker.pool.js';

await runMain(SERVICE_NAME, async () => {
  const config = loadConfig(MatchingConfig, process.env);
  const logger = createLogger(SERVICE_NAME, config.LOG_LEVEL);
  const pool = WorkerPool.fromConfig(config);
  const { app } = createApp({ config, registry: new Registry(), logger, pool });
  await serveMain(app, config, logger, () => pool.close());
});
