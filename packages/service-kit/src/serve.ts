import type { Express } from 'express';
import { createServer, STATUS_CODES, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ErrorCode } from '@doppel/schemas';
import { errorBody } from './envelope.js';
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
  /** The body deadline (BODY_TIMEOUT_MS); Node's own request deadline is set a little past it. */
  bodyTimeoutMs?: number;
}

/** Headers must be whole within this; Node's own check runs every second, not every 30 s. */
const HEADERS_TIMEOUT_MS = 15_000;

/** The status, code and message for an error Node's HTTP parser raised before any route ran. */
function clientErrorReply(err: NodeJS.ErrnoException): [number, ErrorCode, string] {
  if (err.code === 'HPE_HEADER_OVERFLOW') return [431, 'HEADERS_TOO_LARGE', 'request headers are too large'];
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return [408, 'REQUEST_TIMEOUT', 'request did not arrive in time'];
  return [400, 'INVALID_REQUEST', `malformed HTTP request${err.code ? ` (${err.code})` : ''}`];
}

/**
 * Node answers parser errors and its own timeouts itself with a bare 400/408/431; with
 * this listener they get the envelope like every other answer, then the socket closes.
 */
export function envelopeClientErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const pending = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || pending?.headersSent) {
      socket.destroy();
      return;
    }
    const [status, code, message] = clientErrorReply(err);
    const body = JSON.stringify(errorBody(code, message));
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n`
        + `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}

export async function serve(app: Express, opts: ServeOptions): Promise<RunningServer> {
  const server = createServer({
    headersTimeout: HEADERS_TIMEOUT_MS,
    // Backstop behind readBody's own deadline (which answers with the envelope first).
    requestTimeout: (opts.bodyTimeoutMs ?? 30_000) + HEADERS_TIMEOUT_MS,
    connectionsCheckingInterval: 1000,
  }, app);
  envelopeClientErrors(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
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
  readonly BODY_TIMEOUT_MS: number;
}

/** serve() for a service's main.ts: listens where its config says, runs start(), drains on SIGTERM/SIGINT. */
export async function serveMain(service: Service, config: CommonServiceConfig, logger: Logger): Promise<RunningServer> {
  const srv = await serve(service.app, {
    port: config.SERVER_PORT,
    host: config.SERVER_HOST,
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    bodyTimeoutMs: config.BODY_TIMEOUT_MS,
    handleSignals: true,
    onShutdown: () => service.close(),
  });
  await service.start?.();
  return srv;
}
