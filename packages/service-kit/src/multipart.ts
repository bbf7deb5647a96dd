import multer from 'multer';
import type { Request, RequestHandler } from 'express';
import { AppError } from './app-error.js';

/** Multer/busboy errors carry their own codes; map them to the catalogue. */
export function fromMultipartError(err: unknown): AppError {
  if (err instanceof multer.MulterError) {
    if (err.code === 'LIMIT_FILE_SIZE') return new AppError('PAYLOAD_TOO_LARGE', 'uploaded image is too large');
    if (err.code === 'LIMIT_FIELD_VALUE') return new AppError('PAYLOAD_TOO_LARGE', `form field ${err.field ?? ''} is too large`.replace('  ', ' '));
    if (err.code === 'LIMIT_UNEXPECTED_FILE') return new AppError('INVALID_REQUEST', `unexpected file field ${err.field ?? ''}`.trim());
    return new AppError('INVALID_REQUEST', `multipart: ${err.message}`);
  }
  return new AppError('INVALID_REQUEST', `malformed multipart body: ${(err as Error).message ?? 'error'}`);
}

export interface MultipartOptions {
  /** File fields accepted (one file each). */
  files: string[];
  maxFileBytes: number;
  /** Largest text field (a base64 image or a JSON metadata string may ride in one). */
  maxFieldBytes: number;
  maxFields?: number;
}

/**
 * multipart/form-data parsed in memory: text fields become `req.body` (a plain object),
 * files are read with `uploadedFile(req, name)`. Limits are enforced while streaming.
 */
export function multipartBody(opts: MultipartOptions): RequestHandler {
  const maxFields = opts.maxFields ?? 32;
  const upload = multer({
    storage: multer.memoryStorage(),
    limits: { fileSize: opts.maxFileBytes, files: opts.files.length, fields: maxFields, fieldSize: opts.maxFieldBytes, parts: maxFields + opts.files.length },
  }).fields(opts.files.map((name) => ({ name, maxCount: 1 })));
  return (req, res, next) => {
    upload(req, res, (err?: unknown) => {
      if (err) return next(fromMultipartError(err));
      // multer leaves a null-prototype object; copy it so schemas see plain data.
      req.body = { ...(req.body ?? {}) };
      next();
    });
  };
}

export function uploadedFile(req: Request, name: string): Buffer | undefined {
  const files = req.files as Record<string, Array<{ buffer: Buffer }>> | undefined;
  return files?.[name]?.[0]?.buffer;
}
