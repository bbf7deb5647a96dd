import type { Express, RequestHandler } from 'express';
import multer from 'multer';
import {
  EncodeBatchRequest, EncodeBatchResponse, EncodeMultipartFields, EncodeRequest, EncodeResponse, type RouteDoc,
} from '@doppel/schemas';
import { AppError, jsonBody, jsonRoute } from '@doppel/service-kit';
import { encodeBatch, encodeOne, type EncodeDeps } from './encode.service.js';

export interface EncodeRouteLimits {
  maxImageBytes: number;
  maxBatchBodyBytes: number;
}

export const encodeDocs: RouteDoc[] = [
  {
    method: 'post', path: '/encode', summary: 'Fingerprint of one image (JSON with one source, or multipart upload)',
    request: EncodeRequest,
    multipart: { image: { type: 'string', format: 'binary' }, request_id: { type: 'string' }, orientations: { type: 'string' } },
    response: EncodeResponse,
  },
  { method: 'post', path: '/encode/batch', summary: 'Fingerprints of up to 64 images, with per-item errors', request: EncodeBatchRequest, response: EncodeBatchResponse },
];

/** Multer/busboy errors carry their own codes; map them to the catalogue. */
function fromMultipartError(err: unknown): AppError {
  if (err instanceof multer.MulterError) {
    if (err.code === 'LIMIT_FILE_SIZE') return new AppError('PAYLOAD_TOO_LARGE', 'uploaded image is too large');
    if (err.code === 'LIMIT_UNEXPECTED_FILE') return new AppError('INVALID_REQUEST', `unexpected file field ${err.field ?? ''}: send one file named image`.trim());
    return new AppError('INVALID_REQUEST', `multipart: ${err.message}`);
  }
  return new AppError('INVALID_REQUEST', `malformed multipart body: ${(err as Error).message ?? 'error'}`);
}

export function encodeRoutes(app: Express, deps: EncodeDeps, limits: EncodeRouteLimits): void {
  const upload = multer({
    storage: multer.memoryStorage(),
    limits: { fileSize: limits.maxImageBytes, files: 1, fields: 4, fieldSize: 1024, parts: 6 },
  }).single('image');
  // base64 inflates by 4/3; leave room for the other fields.
  const singleJson = jsonBody(Math.ceil((limits.maxImageBytes * 4) / 3) + 64 * 1024);

  const parseBody: RequestHandler = (req, res, next) => {
    if (req.is('multipart/form-data')) upload(req, res, (err?: unknown) => next(err ? fromMultipartError(err) : undefined));
    else singleJson(req, res, next);
  };

  const fromJson = jsonRoute(EncodeRequest, (body) => encodeOne(body, deps));
  const fromMultipart = jsonRoute(EncodeMultipartFields, async (fields, { req }) => {
    if (!req.file) throw new AppError('INVALID_REQUEST', 'image: a file field named image is required');
    return encodeOne({
      upload: req.file.buffer,
      request_id: fields.request_id === undefined ? undefined : Number(fields.request_id),
      orientations: fields.orientations,
    }, deps);
  });

  app.post('/encode', parseBody, (req, res, next) => {
    if (req.is('multipart/form-data')) {
      // multer leaves a null-prototype object; copy it so the schema sees plain data.
      req.body = { ...(req.body ?? {}) };
      return fromMultipart(req, res, next);
    }
    return fromJson(req, res, next);
  });

  app.post('/encode/batch', jsonBody(limits.maxBatchBodyBytes), jsonRoute(EncodeBatchRequest, async (body, { res, log }) => {
    const results = await encodeBatch(body.items, deps, log);
    const overloaded = results.filter((r) => 'error_code' in r && r.error_code === 'OVERLOADED').length;
    if (overloaded === results.length) throw new AppError('OVERLOADED', 'inference queue is full', { retryAfter: 1 });
    if (overloaded > 0) res.setHeader('Retry-After', '1');
    return { results };
  }));
}
