import type { RequestHandler } from 'express';
import { DownstreamHealthResponse, ErrorEnvelope, HealthResponse, ReadyResponse, validate, type RouteDoc, type TSchema } from '@doppel/schemas';
import { errorBody } from './envelope.js';
import type { Logger } from './logger.js';

/** The schemas an answer of one route must match: its response on success, its error shape otherwise. */
interface Expected { ok: TSchema; error: TSchema }

const keyOf = (method: string, path: string) => `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`;

/**
 * Test mode (createServiceApp's `checkResponses`): every JSON answer of a documented route
 * is validated against its schema with the one Ajv of @doppel/schemas. A mismatch becomes a
 * 500 INTERNAL naming the route, the schema and the field, so the test that made the call
 * fails there, not a client in production. Routes without a doc (the 404) are not checked.
 */
export function responseCheck(docs: RouteDoc[], logger: Logger): RequestHandler {
  const expected = new Map<string, Expected>([
    [keyOf('get', '/healthz'), { ok: HealthResponse, error: ErrorEnvelope }],
    [keyOf('get', '/readyz'), { ok: ReadyResponse, error: ErrorEnvelope }],
    [keyOf('get', '/health/downstream'), { ok: DownstreamHealthResponse, error: ErrorEnvelope }],
  ]);
  for (const d of docs) expected.set(keyOf(d.method, d.path), { ok: d.response, error: d.error ?? ErrorEnvelope });
  return (req, res, next) => {
    const json = res.json.bind(res);
    res.json = (body: unknown) => {
      const route = (req.route as { path?: unknown } | undefined)?.path;
      const key = typeof route === 'string' ? keyOf(req.method, `${req.baseUrl}${route}`) : undefined;
      const want = key === undefined ? undefined : expected.get(key);
      if (want) {
        const schema = res.statusCode < 400 ? want.ok : want.error;
        const r = validate(schema, body);
        if (!r.ok) {
          const id = (schema as { $id?: string }).$id ?? 'its schema';
          const message = `response of ${key} (${res.statusCode}) does not match ${id}: ${r.error.message}`;
          logger.error({ route: key, status: res.statusCode, body }, message);
          res.status(500);
          return json(errorBody('INTERNAL', message));
        }
      }
      return json(body);
    };
    next();
  };
}
