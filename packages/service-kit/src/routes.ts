import express, { type Request, type RequestHandler, type Response } from 'express';
import { validate, type Static, type TSchema } from '@doppel/schemas';
import { AppError } from './app-error.js';
import { sendOk } from './envelope.js';
import type { Logger } from './logger.js';

export interface RouteContext {
  req: Request;
  res: Response;
  log: Logger;
}

/** JSON body parser with a per-route size limit; other media types get 415. */
export function jsonBody(limit: string | number = '1mb'): RequestHandler {
  const parse = express.json({ limit, strict: true });
  return (req, res, next) => {
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (hasBody && !req.is('application/json')) {
      next(new AppError('UNSUPPORTED_MEDIA_TYPE', `expected application/json, got ${req.headers['content-type'] ?? 'no content type'}`));
      return;
    }
    parse(req, res, next);
  };
}

export function validateOrThrow<S extends TSchema>(schema: S, data: unknown): Static<S> {
  if (data === undefined) throw new AppError('INVALID_REQUEST', 'request body must be a JSON object');
  const r = validate(schema, data);
  if (!r.ok) throw new AppError('INVALID_REQUEST', r.error.message);
  return r.value;
}

const logOf = (res: Response): Logger => res.locals.log as Logger;

/**
 * A JSON route: validates the body against its schema, runs a plain function and
 * wraps its result in the success envelope. Errors go to the error middleware.
 */
export function jsonRoute<S extends TSchema, R>(
  schema: S,
  fn: (body: Static<S>, ctx: RouteContext) => Promise<R> | R,
): RequestHandler {
  return async (req, res) => {
    const body = validateOrThrow(schema, req.body);
    const result = await fn(body, { req, res, log: logOf(res) });
    if (!res.headersSent) sendOk(res, result);
  };
}

interface LeafSchema { type?: string }

/** Query strings are strings: coerce declared integer/number/boolean params, then validate. */
export function parseQuery<S extends TSchema>(schema: S, query: unknown): Static<S> {
  const props = (schema as unknown as { properties?: Record<string, LeafSchema> }).properties ?? {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries((query ?? {}) as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new AppError('INVALID_REQUEST', `${k}: must be given once`);
    const t = props[k]?.type;
    if (t === 'integer' || t === 'number') out[k] = v.trim() === '' ? NaN : Number(v);
    else if (t === 'boolean') out[k] = v === 'true' || v === '1' ? true : v === 'false' || v === '0' ? false : v;
    else out[k] = v;
  }
  const r = validate(schema, out);
  if (!r.ok) throw new AppError('INVALID_REQUEST', r.error.message.replace('must be integer', 'must be an integer'));
  return r.value;
}

/** A GET route with validated query parameters. */
export function queryRoute<S extends TSchema, R>(
  schema: S,
  fn: (query: Static<S>, ctx: RouteContext) => Promise<R> | R,
): RequestHandler {
  return async (req, res) => {
    const q = parseQuery(schema, req.query);
    const result = await fn(q, { req, res, log: logOf(res) });
    if (!res.headersSent) sendOk(res, result);
  };
}

/** A route with no body to validate (GET /stats and the like). */
export function plainRoute<R>(fn: (ctx: RouteContext) => Promise<R> | R): RequestHandler {
  return async (req, res) => {
    const result = await fn({ req, res, log: logOf(res) });
    if (!res.headersSent) sendOk(res, result);
  };
}
