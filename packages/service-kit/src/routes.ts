import bytes from 'bytes';
import type { Request, RequestHandler, Response } from 'express';
import { validate, type Static, type TSchema } from '@doppel/schemas';
import { AppError } from './app-error.js';
import { sendOk } from './envelope.js';
import type { Logger } from './logger.js';
import { bodySettingsOf } from './body-settings.js';
import { hasBody, readBody } from './request-body.reader.js';

export interface RouteContext {
  req: Request;
  res: Response;
  log: Logger;
}

/** Nesting deeper than this is refused before parsing: recursion in validators and JSON.stringify would overflow. */
export const MAX_JSON_DEPTH = 64;

/** Depth of the deepest array/object in JSON text, counted outside strings (O(n), no parse). */
export function jsonDepth(buf: Buffer, stopAt = Infinity): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!;
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max && (max = depth) > stopAt) return max;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

/** Strict JSON (an object or array at the top), nesting bounded; errors are AppErrors. */
export function parseJsonBody(buf: Buffer): unknown {
  const first = buf.toString('latin1', 0, Math.min(buf.length, 64)).trimStart()[0];
  if (first !== '{' && first !== '[') throw new AppError('INVALID_JSON', 'request body is not valid JSON (expected an object)');
  if (jsonDepth(buf, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    throw new AppError('INVALID_JSON', `request body nests deeper than ${MAX_JSON_DEPTH} levels`);
  }
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch {
    throw new AppError('INVALID_JSON', 'request body is not valid JSON');
  }
}

function charsetProblem(req: Request): string | undefined {
  const m = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(req.headers['content-type'] ?? '');
  const cs = m?.[1]?.toLowerCase();
  return cs === undefined || cs === 'utf-8' || cs === 'utf8' ? undefined : cs;
}

/**
 * JSON body parser with a per-route size limit (a number of bytes or '1mb'); other media
 * types get 415. The limit, the app's body deadline and its body budget apply while the
 * body is read (see readBody), so nothing over the limit is ever buffered.
 */
export function jsonBody(limit: string | number = '1mb'): RequestHandler {
  const maxBytes = typeof limit === 'number' ? limit : bytes.parse(limit);
  if (maxBytes === null || !Number.isFinite(maxBytes)) throw new Error(`jsonBody: bad limit ${String(limit)}`);
  return (req, res, next) => {
    if (!hasBody(req)) {
      next();
      return;
    }
    if (!req.is('application/json')) {
      next(new AppError('UNSUPPORTED_MEDIA_TYPE', `expected application/json, got ${req.headers['content-type'] ?? 'no content type'}`));
      return;
    }
    const cs = charsetProblem(req);
    if (cs) {
      next(new AppError('UNSUPPORTED_MEDIA_TYPE', `unsupported charset ${JSON.stringify(cs)}: send utf-8`));
      return;
    }
    readBody(req, res, { maxBytes, ...bodySettingsOf(req) }).then((buf) => {
      req.body = parseJsonBody(buf);
      next();
    }).catch(next);
  };
}

/**
 * application/x-www-form-urlencoded bodies through the same reader as JSON (limit counted
 * after decompression, the app's deadline and budget, corrupt gzip a 400); a key given
 * twice becomes an array, as Express's urlencoded parser does.
 */
export function urlencodedBody(limit: string | number, maxFields: number): RequestHandler {
  const maxBytes = typeof limit === 'number' ? limit : bytes.parse(limit);
  if (maxBytes === null || !Number.isFinite(maxBytes)) throw new Error(`urlencodedBody: bad limit ${String(limit)}`);
  return (req, res, next) => {
    if (!hasBody(req)) {
      req.body = {};
      next();
      return;
    }
    readBody(req, res, { maxBytes, ...bodySettingsOf(req) }).then((buf) => {
      const form: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
      let n = 0;
      for (const [k, v] of new URLSearchParams(buf.toString('utf8'))) {
        if (++n > maxFields) throw new AppError('INVALID_REQUEST', `the form has more than ${maxFields} fields`);
        const had = form[k];
        form[k] = had === undefined ? v : Array.isArray(had) ? [...had, v] : [had, v];
      }
      req.body = { ...form };
      next();
    }).catch(next);
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
