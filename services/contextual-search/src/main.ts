import { createLogger, loadConfig, Registry, runMain, serveMain } from '@doppel/service-kit';
import { SearchConfig } from '@doppel/schemas';
import { createApp, SERVICE_NAME } from './app.js';

await runMain(SERVICE_NAME, async () => {
  const config = loadConfig(SearchConfig, process.env);
  const logger = createLogger(SERVICE_NAME, config.LOG_LEVEL);
  const { app, index } = createApp({ config, registry: new Registry(), logger });
  // Listen first so /healthz and /readyz answer while the index loads.
  await serveMain(app, config, logger, () => index.close());
  await index.open();
});
