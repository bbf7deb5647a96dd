import { Router, type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import { validate, type Static, type TSchema } from '@doppel/schemas';
import { AppError, isAppError, multipartBody, parseQuery, uploadedFile, urlencodedBody, type Logger } from '@doppel/service-kit';

/**
 * The shared skeleton of a drop-in prefix: its own router, whose unknown routes and
 * errors are answered in that system's error shape (never the Doppel envelope), always
 * with a 4xx for bad input and a generic 500 for a bug.
 */
export interface CompatErrorShape {
  (err: AppError, req: Request): unknown;
}

function toAppError(err: unknown): AppError | undefined {
  if (isAppError(err)) return err;
  const e = err as { type?: string; status?: number; message?: string };
  if (e?.type === 'entity.too.large') return new AppError('PAYLOAD_TOO_LARGE', 'request body is too large');
  if (e?.type === 'entity.parse.failed') return new AppError('INVALID_JSON', 'request body is not valid JSON');
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500 && typeof e.type === 'string') {
    return new AppError('INVALID_REQUEST', e.message ?? 'invalid request', { status: e.status });
  }
  return undefined;
}

export function compatRouter(errorBody: CompatErrorShape): { router: Router; seal: () => void } {
  const router = Router();
  const onError: ErrorRequestHandler = (err, req, res, _next) => {
    const log = res.locals.log as Logger | undefined;
    let e = toAppError(err);
    if (!e) {
      log?.error({ err, url: req.originalUrl }, 'unexpected error');
      e = new AppError('INTERNAL', 'internal error');
    } else if (e.status >= 500) log?.warn({ code: e.code, msg: e.message }, 'request failed');
    if (res.headersSent) return void res.destroy();
    if (e.retryAfter !== undefined) res.setHeader('Retry-After', String(Math.max(1, Math.ceil(e.retryAfter))));
    res.status(e.status).json(errorBody(e, req));
  };
  return {
    router,
    seal: () => {
      router.use((req, _res, next) => next(new AppError('NOT_FOUND', `no route for ${req.method} ${req.baseUrl}${req.path}`)));
      router.use(onError);
    },
  };
}

/** A compat handler: runs `fn` and sends what it returns as JSON (or as text when it is a string). */
export function answer(fn: (req: Request, res: Response) => Promise<unknown>): RequestHandler {
  return async (req, res) => {
    const out = await fn(req, res);
    if (res.headersSent) return;
    if (typeof out === 'string') res.type('text/html').send(out);
    else res.json(out);
  };
}

/** Form bodies (urlencoded or multipart with the given file fields), as the Flask originals read request.form. */
export function formBody(files: string[], maxImageBytes: number): RequestHandler {
  const urlencoded = urlencodedBody('1mb', 64);
  const multipart = multipartBody({ fileField: files, maxFileBytes: maxImageBytes, maxFields: 16, maxFieldBytes: 128 * 1024 });
  return (req, res, next) => {
    if (req.is('multipart/form-data')) return multipart(req, res, next);
    if (req.is('application/x-www-form-urlencoded')) return urlencoded(req, res, next);
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (hasBody) return next(new AppError('UNSUPPORTED_MEDIA_TYPE', `expected a form (application/x-www-form-urlencoded or multipart/form-data), got ${req.headers['content-type'] ?? 'no content type'}`));
    req.body = {};
    next();
  };
}

/** The form's fields (query parameters fill in what the form lacks), coerced and validated by `schema`. */
export function formFields<S extends TSchema>(schema: S, req: Request): Static<S> {
  const form = { ...(req.query as Record<string, unknown>), ...(req.body as Record<string, unknown> | undefined) };
  return parseQuery(schema, form);
}

export const fileOf = (req: Request, field: string): Buffer | undefined => uploadedFile(req, field)?.buffer;

export function validJson<S extends TSchema>(schema: S, data: unknown): Static<S> {
  if (data === undefined || data === null || typeof data !== 'object') throw new AppError('INVALID_REQUEST', 'request body must be a JSON object');
  const r = validate(schema, data);
  if (!r.ok) throw new AppError('INVALID_REQUEST', r.error.message);
  return r.value;
}
