import type { Express } from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './logger.js';
import type { Service } from './service.js';

export interface RunningServer {
  server: Server;
  port: number;
  /** Stops accepting, waits for in-flight requests, then runs onShutdown. */
  close(): Promise<void>;
}

export interface ServeOptions {
  port: number;
  host?: string;
  logger: Logger;
  shutdownTimeoutMs?: number;
  /** Releases the service's resources after the last request (flush, close workers). */
  onShutdown?: () => Promise<void> | void;
  /** Install SIGTERM/SIGINT handlers that drain and exit (main.ts only, never tests). */
  handleSignals?: boolean;
}

export async function serve(app: Express, opts: ServeOptions): Promise<RunningServer> {
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(opts.port, opts.host ?? '0.0.0.0', (err?: Error) => (err ? reject(err) : resolve(s)));
    s.once('error', reject);
  });
  server.keepAliveTimeout = 65_000;
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await opts.onShutdown?.();
    })());

  if (opts.handleSignals) {
    const onSignal = (signal: string) => {
      opts.logger.info({ signal }, 'draining');
      const timeout = opts.shutdownTimeoutMs ?? 10_000;
      const force = setTimeout(() => {
        opts.logger.warn('drain timed out; closing connections');
        server.closeAllConnections();
      }, timeout);
      force.unref();
      close().then(
        () => { opts.logger.info('stopped'); process.exit(0); },
        (err) => { opts.logger.error({ err }, 'shutdown failed'); process.exit(1); },
      );
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  }
  opts.logger.info({ port, host: opts.host ?? '0.0.0.0' }, 'listening');
  return { server, port, close };
}

/** Entry-point guard: prints a config or start-up error naming its cause, then exits 1. */
export async function runMain(name: string, start: () => Promise<unknown>): Promise<void> {
  try {
    await start();
  } catch (err) {
    process.stderr.write(`${name}: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

/** The env variables every service shares (CommonConfigProps + SERVER_PORT). */
export interface CommonServiceConfig {
  readonly SERVER_PORT: number;
  readonly SERVER_HOST: string;
  readonly SHUTDOWN_TIMEOUT_MS: number;
}

/** serve() for a service's main.ts: listens where its config says, runs start(), drains on SIGTERM/SIGINT. */
export async function serveMain(service: Service, config: CommonServiceConfig, logger: Logger): Promise<RunningServer> {
  const srv = await serve(service.app, {
    port: config.SERVER_PORT,
    host: config.SERVER_HOST,
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    handleSignals: true,
    onShutdown: () => service.close(),
  });
  await service.start?.();
  return srv;
}
