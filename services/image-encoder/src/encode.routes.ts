import type { Express, RequestHandler } from 'express';
import {
  EncodeBatchRequest, EncodeBatchResponse, EncodeMultipartFields, EncodeRequest, EncodeResponse, type RouteDoc,
} from '@doppel/schemas';
import { AppError, admitted, jsonBody, jsonRoute, multipartBody, uploadedFile, type Admission } from '@doppel/service-kit';
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

export function encodeRoutes(app: Express, deps: EncodeDeps, limits: EncodeRouteLimits, admission?: Admission): void {
  const upload = multipartBody({ fileField: 'image', maxFileBytes: limits.maxImageBytes, maxFields: 4, maxFieldBytes: 1024 });
  // base64 inflates by 4/3; leave room for the other fields.
  const singleJson = jsonBody(Math.ceil((limits.maxImageBytes * 4) / 3) + 64 * 1024);

  const parseBody: RequestHandler = (req, res, next) => {
    if (req.is('multipart/form-data')) upload(req, res, next);
    else singleJson(req, res, next);
  };

  const fromJson = jsonRoute(EncodeRequest, admitted(admission, (body) => encodeOne(body, deps)));
  const fromMultipart = jsonRoute(EncodeMultipartFields, admitted(admission, async (fields, { req }) => {
    const file = uploadedFile(req);
    if (!file) throw new AppError('INVALID_REQUEST', 'image: a file field named image is required');
    return encodeOne({
      upload: file.buffer,
      request_id: fields.request_id === undefined ? undefined : Number(fields.request_id),
      orientations: fields.orientations,
    }, deps);
  }));

  app.post('/encode', parseBody, (req, res, next) => {
    if (req.is('multipart/form-data')) {
      return fromMultipart(req, res, next);
    }
    return fromJson(req, res, next);
  });

  app.post('/encode/batch', jsonBody(limits.maxBatchBodyBytes), jsonRoute(EncodeBatchRequest, admitted(admission, async (body, { res, log }) => {
    const results = await encodeBatch(body.items, deps, log);
    const overloaded = results.filter((r) => 'error_code' in r && r.error_code === 'OVERLOADED').length;
    if (overloaded === results.length) throw new AppError('OVERLOADED', 'inference queue is full', { retryAfter: 1 });
    if (overloaded > 0) res.setHeader('Retry-After', '1');
    return { results };
  })));
}
