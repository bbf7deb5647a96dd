import { createLogger, loadConfig, Registry, runMain, serve } from '@doppel/service-kit';
import { SearchConfig } from '@doppel/schemas';
import { createApp, SERVICE_NAME } from './app.js';

await runMain(SERVICE_NAME, async () => {
  const config = loadConfig(SearchConfig, process.env);
  const logger = createLogger(SERVICE_NAME, config.LOG_LEVEL);
  const { app, collection } = createApp({ config, registry: new Registry(), logger });
  // Listen first so /healthz and /readyz answer while the index loads.
  await serve(app, {
    port: config.SERVER_PORT,
    host: config.SERVER_HOST,
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    handleSignals: true,
    onShutdown: () => collection.close(),
  });
  await collection.open();
});
