import busboy from 'busboy';
import type { Request, RequestHandler } from 'express';
import { AppError } from './app-error.js';
import { bodySettingsOf } from './body-settings.js';
import { hasBody, readBody } from './request-body.reader.js';

export interface UploadedFile {
  field: string;
  buffer: Buffer;
  filename: string;
  mimetype: string;
}

export interface MultipartOptions {
  /** The one file field accepted. */
  fileField: string;
  maxFileBytes: number;
  maxFields?: number;
  maxFieldBytes?: number;
}

const files = new WeakMap<Request, UploadedFile>();

/** The file a multipartBody parser took from this request, if any. */
export const uploadedFile = (req: Request): UploadedFile | undefined => files.get(req);

/** Parses an already-read multipart body (busboy over the buffer). */
function parseMultipart(body: Buffer, headers: Request['headers'], opts: MultipartOptions): Promise<{ fields: Record<string, string>; file?: UploadedFile }> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers,
        limits: { files: 1, fileSize: opts.maxFileBytes, fields: opts.maxFields ?? 8, fieldSize: opts.maxFieldBytes ?? 1024, parts: (opts.maxFields ?? 8) + 1 },
      });
    } catch (e) {
      reject(new AppError('INVALID_REQUEST', `malformed multipart request: ${(e as Error).message}`));
      return;
    }
    const fields: Record<string, string> = {};
    let file: UploadedFile | undefined;
    let failure: AppError | undefined;
    const fail = (e: AppError) => { failure ??= e; };
    bb.on('field', (name, value, info) => {
      if (info.valueTruncated) fail(new AppError('PAYLOAD_TOO_LARGE', `multipart field ${name} is too large`));
      else fields[name] = value;
    });
    bb.on('file', (name, stream, info) => {
      if (name !== opts.fileField) {
        fail(new AppError('INVALID_REQUEST', `unexpected file field ${name}: send one file named ${opts.fileField}`));
        stream.resume();
        return;
      }
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('limit', () => fail(new AppError('PAYLOAD_TOO_LARGE', `uploaded ${name} is over the ${opts.maxFileBytes} bytes allowed`)));
      stream.on('close', () => {
        file = { field: name, buffer: Buffer.concat(chunks), filename: info.filename ?? '', mimetype: info.mimeType };
      });
    });
    bb.on('filesLimit', () => fail(new AppError('INVALID_REQUEST', `multipart: send one file named ${opts.fileField}`)));
    bb.on('fieldsLimit', () => fail(new AppError('INVALID_REQUEST', 'multipart: too many fields')));
    bb.on('partsLimit', () => fail(new AppError('INVALID_REQUEST', 'multipart: too many parts')));
    bb.on('error', (e: Error) => reject(new AppError('INVALID_REQUEST', `malformed multipart body: ${e.message}`)));
    bb.on('close', () => (failure ? reject(failure) : resolve({ fields, ...(file ? { file } : {}) })));
    bb.end(body);
  });
}

/**
 * multipart/form-data parser: the body is read by readBody (declared length, limit while
 * inflating, deadline, budget), then split; fields land in req.body, the file in
 * uploadedFile(req).
 */
export function multipartBody(opts: MultipartOptions): RequestHandler {
  // The whole form: the file plus its fields and part headers.
  const maxBytes = opts.maxFileBytes + (opts.maxFields ?? 8) * ((opts.maxFieldBytes ?? 1024) + 512) + 4096;
  return (req, res, next) => {
    if (!hasBody(req)) {
      next(new AppError('INVALID_REQUEST', 'multipart body is empty'));
      return;
    }
    readBody(req, res, { maxBytes, ...bodySettingsOf(req) })
      .then((buf) => parseMultipart(buf, req.headers, opts))
      .then(({ fields, file }) => {
        req.body = fields;
        if (file) files.set(req, file);
        next();
      })
      .catch(next);
  };
}
