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
  /** The file field accepted, or several (one file each: compare takes image1 and image2). */
  fileField: string | string[];
  maxFileBytes: number;
  maxFields?: number;
  maxFieldBytes?: number;
}

const files = new WeakMap<Request, Map<string, UploadedFile>>();

/** The file a multipartBody parser took from this request (from `field`, or the first one), if any. */
export const uploadedFile = (req: Request, field?: string): UploadedFile | undefined => {
  const got = files.get(req);
  return field === undefined ? got?.values().next().value : got?.get(field);
};

/** Parses an already-read multipart body (busboy over the buffer). */
function parseMultipart(body: Buffer, headers: Request['headers'], opts: MultipartOptions): Promise<{ fields: Record<string, string>; files: Map<string, UploadedFile> }> {
  const accepted = Array.isArray(opts.fileField) ? opts.fileField : [opts.fileField];
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers,
        limits: { files: accepted.length, fileSize: opts.maxFileBytes, fields: opts.maxFields ?? 8, fieldSize: opts.maxFieldBytes ?? 1024, parts: (opts.maxFields ?? 8) + accepted.length },
      });
    } catch (e) {
      reject(new AppError('INVALID_REQUEST', `malformed multipart request: ${(e as Error).message}`));
      return;
    }
    const fields: Record<string, string> = {};
    const got = new Map<string, UploadedFile>();
    let failure: AppError | undefined;
    const fail = (e: AppError) => { failure ??= e; };
    bb.on('field', (name, value, info) => {
      if (info.valueTruncated) fail(new AppError('PAYLOAD_TOO_LARGE', `multipart field ${name} is too large`));
      else fields[name] = value;
    });
    bb.on('file', (name, stream, info) => {
      // A body cut inside a file part errors the file's stream too: unhandled, it would end the process.
      stream.on('error', (e: Error) => fail(new AppError('INVALID_REQUEST', `malformed multipart body: ${e.message}`)));
      if (!accepted.includes(name) || got.has(name)) {
        fail(new AppError('INVALID_REQUEST', `unexpected file field ${name}: send one file named ${accepted.join(' or ')}`));
        stream.resume();
        return;
      }
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('limit', () => fail(new AppError('PAYLOAD_TOO_LARGE', `uploaded ${name} is over the ${opts.maxFileBytes} bytes allowed`)));
      stream.on('close', () => {
        got.set(name, { field: name, buffer: Buffer.concat(chunks), filename: info.filename ?? '', mimetype: info.mimeType });
      });
    });
    bb.on('filesLimit', () => fail(new AppError('INVALID_REQUEST', `multipart: send one file named ${accepted.join(' or ')}`)));
    bb.on('fieldsLimit', () => fail(new AppError('INVALID_REQUEST', 'multipart: too many fields')));
    bb.on('partsLimit', () => fail(new AppError('INVALID_REQUEST', 'multipart: too many parts')));
    bb.on('error', (e: Error) => reject(new AppError('INVALID_REQUEST', `malformed multipart body: ${e.message}`)));
    bb.on('close', () => (failure ? reject(failure) : resolve({ fields, files: got })));
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
  const nFiles = Array.isArray(opts.fileField) ? opts.fileField.length : 1;
  const maxBytes = opts.maxFileBytes * nFiles + (opts.maxFields ?? 8) * ((opts.maxFieldBytes ?? 1024) + 512) + 4096;
  return (req, res, next) => {
    if (!hasBody(req)) {
      next(new AppError('INVALID_REQUEST', 'multipart body is empty'));
      return;
    }
    readBody(req, res, { maxBytes, ...bodySettingsOf(req) })
      .then((buf) => parseMultipart(buf, req.headers, opts))
      .then(({ fields, files: got }) => {
        req.body = fields;
        if (got.size > 0) files.set(req, got);
        next();
      })
      .catch(next);
  };
}
