import express, { type Express, type ErrorRequestHandler, type RequestHandler } from 'express';
import { randomUUID } from 'node:crypto';
import type { Registry } from 'prom-client';
import { buildOpenApi, type ReadyBody, type RouteDoc } from '@doppel/schemas';
import { AppError, isAppError } from './app-error.js';
import { sendError, sendOk } from './envelope.js';
import { httpMetrics } from './metrics.js';
import type { Logger } from './logger.js';
import { setBodySettings } from './body-settings.js';
import { BodyBudget } from './request-body.reader.js';

export type ReadinessCheck = () => Promise<{ ok: boolean; detail?: string }> | { ok: boolean; detail?: string };

export interface ServiceAppOptions {
  service: string;
  version?: string;
  registry: Registry;
  logger: Logger;
  /** Named readiness checks; /readyz answers 503 while any is failing. */
  readiness?: Record<string, ReadinessCheck>;
  /**
   * Readiness of the services this one calls. Reported by /readyz (`downstream`) without
   * failing it, and by GET /health/downstream (503 naming the failing ones): a downstream
   * restart must not take every replica of this service out of its load balancer, since
   * each request already answers 502/503 naming the service it could not reach.
   */
  downstream?: Record<string, ReadinessCheck>;
  /** Route documentation for /openapi.json. */
  docs?: RouteDoc[];
  /** Mounts the service's own routes. */
  routes: (app: Express) => void;
  /** Body deadline and in-flight body budget shared by the app's parsers (BODY_TIMEOUT_MS, BODY_BUDGET_BYTES). */
  body?: { timeoutMs: number; budgetBytes: number };
}

const requestContext = (logger: Logger): RequestHandler => (req, res, next) => {
  const header = req.headers['x-request-id'];
  const id = typeof header === 'string' && /^[\w.-]{1,128}$/.test(header) ? header : randomUUID();
  res.setHeader('x-request-id', id);
  const log = logger.child({ req_id: id });
  res.locals.log = log;
  const start = process.hrtime.bigint();
  res.on('finish', () => {
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    log.debug({ method: req.method, url: req.originalUrl, status: res.statusCode, ms: Math.round(ms * 10) / 10 }, 'request');
  });
  next();
};

/** body-parser and multipart errors carry `type`/`code`; map them to the catalogue. */
function fromFrameworkError(err: unknown): AppError | undefined {
  const e = err as { type?: string; status?: number; code?: string; message?: string };
  if (e?.type === 'entity.too.large' || e?.code === 'LIMIT_FILE_SIZE') return new AppError('PAYLOAD_TOO_LARGE', 'request body is too large');
  if (e?.type === 'entity.parse.failed') return new AppError('INVALID_JSON', 'request body is not valid JSON');
  if (e?.type === 'encoding.unsupported' || e?.type === 'charset.unsupported') return new AppError('UNSUPPORTED_MEDIA_TYPE', e.message ?? 'unsupported encoding');
  if (e?.type === 'request.aborted') return new AppError('INVALID_REQUEST', 'request aborted');
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500 && typeof e.type === 'string') {
    return new AppError('INVALID_REQUEST', e.message ?? 'invalid request', { status: e.status });
  }
  return undefined;
}

function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const appErr = isAppError(err) ? err : fromFrameworkError(err);
    const log = (res.locals.log as Logger | undefined) ?? logger;
    // A body left unread (refused by its length, cut at the limit, too slow) is not
    // drained: the connection closes after this answer.
    if (!req.complete && !res.headersSent) res.setHeader('Connection', 'close');
    if (res.headersSent) {
      log.error({ err }, 'error after response started');
      res.destroy();
      return;
    }
    if (appErr) {
      if (appErr.status >= 500) log.warn({ code: appErr.code, msg: appErr.message }, 'request failed');
      sendError(res, appErr.status, appErr.code, appErr.message, appErr.retryAfter);
      return;
    }
    log.error({ err, method: req.method, url: req.originalUrl }, 'unexpected error');
    sendError(res, 500, 'INTERNAL', 'internal error');
  };
}

/** Runs named checks concurrently; a check that throws counts as failing with its message. */
async function runChecks(checks: Record<string, ReadinessCheck> | undefined): Promise<ReadyBody['checks']> {
  const entries = await Promise.all(Object.entries(checks ?? {}).map(async ([name, check]) => {
    try {
      const r = await check();
      return [name, r.detail === undefined ? { ok: r.ok } : r] as const;
    } catch (e) {
      return [name, { ok: false, detail: (e as Error).message }] as const;
    }
  }));
  return Object.fromEntries(entries);
}

const describeFailing = (failing: Array<[string, { detail?: string }]>) =>
  failing.map(([n, c]) => `${n}${c.detail ? ` (${c.detail})` : ''}`).join(', ');

/**
 * The common skeleton of every service: request ids, logs, metrics, health,
 * readiness, OpenAPI, the service's routes, then 404 and the one error middleware.
 */
export function createServiceApp(opts: ServiceAppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  setBodySettings(app.locals, {
    timeoutMs: opts.body?.timeoutMs ?? 30_000,
    budget: new BodyBudget(opts.body?.budgetBytes ?? 256 * 1024 * 1024),
  });
  app.use(requestContext(opts.logger));
  app.use(httpMetrics(opts.registry));

  app.get('/healthz', (_req, res) => sendOk(res, { status: 'ok', service: opts.service }));
  app.get('/readyz', async (_req, res) => {
    const [checks, downstream] = await Promise.all([runChecks(opts.readiness), runChecks(opts.downstream)]);
    const failing = Object.entries(checks).filter(([, c]) => !c.ok);
    const body: ReadyBody = { ready: true, service: opts.service, checks, ...(opts.downstream ? { downstream } : {}) };
    if (failing.length === 0) return sendOk(res, body);
    sendError(res, 503, 'UNAVAILABLE', `not ready: ${describeFailing(failing)}`, 1);
  });
  if (opts.downstream) {
    app.get('/health/downstream', async (_req, res) => {
      const downstream = await runChecks(opts.downstream);
      const failing = Object.entries(downstream).filter(([, c]) => !c.ok);
      if (failing.length === 0) return sendOk(res, { ok: true, service: opts.service, downstream });
      sendError(res, 503, 'UNAVAILABLE', `downstream not ready: ${describeFailing(failing)}`, 1);
    });
  }
  app.get('/metrics', async (_req, res) => {
    res.setHeader('Content-Type', opts.registry.contentType);
    res.send(await opts.registry.metrics());
  });
  const openapi = buildOpenApi({ title: opts.service, version: opts.version ?? '0.1.0' }, opts.docs ?? []);
  app.get('/openapi.json', (_req, res) => res.json(openapi));

  opts.routes(app);

  app.use((req, _res, next) => next(new AppError('NOT_FOUND', `no route for ${req.method} ${req.path}`)));
  app.use(errorHandler(opts.logger));
  return app;
}
