import type { RequestHandler } from 'express';
import type { Static, TSchema } from '@doppel/schemas';
import { AppError, jsonBody, multipartBody, sendOk, uploadedFile, validateOrThrow, type RouteContext } from '@doppel/service-kit';
import type { Logger } from '@doppel/service-kit';

export interface BodyLimits {
  maxImageBytes: number;
}

/** How an uploaded file enters the JSON shape of the route (e.g. `image` -> `image_base64`). */
export type FileMapping = Record<string, (body: Record<string, unknown>, file: Buffer) => void>;
export const IMAGE_FILE: FileMapping = { image: (body, file) => { body.image_base64 = file.toString('base64'); } };

interface Leaf { type?: string }

/** Form fields are strings: turn them into what the JSON schema declares (numbers, booleans, JSON objects). */
export function coerceFormFields(schema: TSchema, fields: Record<string, unknown>): Record<string, unknown> {
  const props = (schema as unknown as { properties?: Record<string, Leaf> }).properties ?? {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v !== 'string') throw new AppError('INVALID_REQUEST', `${k}: must be given once`);
    const t = props[k]?.type;
    if (t === 'integer' || t === 'number') out[k] = v.trim() === '' ? NaN : Number(v);
    else if (t === 'boolean') out[k] = v === 'true' || v === '1' ? true : v === 'false' || v === '0' ? false : v;
    else if (t === 'object') {
      try {
        out[k] = JSON.parse(v);
      } catch {
        throw new AppError('INVALID_REQUEST', `${k}: must be a JSON object`);
      }
    } else out[k] = v;
  }
  return out;
}

/**
 * A route that takes its image(s) as JSON (`relative_path`, `image_base64`, `url`) or as a
 * multipart upload: the form is turned into the same JSON shape and validated by the
 * same schema, so every form gets the same checks and the same messages.
 */
export function imageRoute<S extends TSchema, R>(
  schema: S,
  limits: BodyLimits,
  files: FileMapping,
  fn: (body: Static<S>, ctx: RouteContext) => Promise<R> | R,
  /** Turns the flat form into the JSON shape when they differ (compare's image1_url -> image1.url). */
  reshape: (form: Record<string, unknown>) => Record<string, unknown> = (form) => form,
): RequestHandler[] {
  // base64 inflates by 4/3; leave room for the other fields (metadata up to 64 KB).
  const json = jsonBody(Math.ceil((limits.maxImageBytes * 4) / 3) * Object.keys(files).length + 256 * 1024);
  const multipart = multipartBody({
    fileField: Object.keys(files),
    maxFileBytes: limits.maxImageBytes,
    maxFields: 16,
    maxFieldBytes: Math.ceil((limits.maxImageBytes * 4) / 3) + 1024,
  });
  const parse: RequestHandler = (req, res, next) => (req.is('multipart/form-data') ? multipart(req, res, next) : json(req, res, next));
  const handle: RequestHandler = async (req, res) => {
    let data: unknown = req.body;
    if (req.is('multipart/form-data')) {
      const body = coerceFormFields(schema, req.body as Record<string, unknown>);
      for (const [name, put] of Object.entries(files)) {
        const file = uploadedFile(req, name);
        if (file) put(body, file.buffer);
      }
      data = reshape(body);
    }
    const result = await fn(validateOrThrow(schema, data), { req, res, log: res.locals.log as Logger });
    if (!res.headersSent) sendOk(res, result);
  };
  return [parse, handle];
}
