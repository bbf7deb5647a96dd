import type { Express, Request } from 'express';
import {
  AddImageRequest, AddImageResponse, CompareImagesRequest, CompareImagesResponse, DeleteImageResponse, EncodeResponse,
  FingerprintRequest, IMAGE_MULTIPART, ImageResponse, ListImagesQuery, ListImagesResponse, MAX_ID_LENGTH, PingResponse,
  PipelineStatsResponse, SearchImageRequest, SearchImageResponse, SearchVectorRequest, SearchVectorResponse, type RouteDoc,
} from '@doppel/schemas';
import { admitted, AppError, jsonBody, jsonRoute, plainRoute, queryRoute, type Admission } from '@doppel/service-kit';
import { IMAGE_FILE, imageRoute, type BodyLimits, type FileMapping } from './image-request.parser.js';
import {
  addImage, compareImages, deleteImage, fingerprint, getImage, imageStats, listImages, searchImage, searchVector, type ImagesDeps,
} from './images.logic.js';

const COMPARE_MULTIPART = {
  image1: { type: 'string' as const, format: 'binary' as const },
  image2: { type: 'string' as const, format: 'binary' as const },
};

export const imagesDocs: RouteDoc[] = [
  { method: 'get', path: '/ping', summary: 'Liveness in one cheap call (no downstream is asked).', response: PingResponse },
  {
    method: 'post', path: '/images', summary: 'Add or replace one image under an id, with optional metadata (JSON source or multipart `image` + fields `id`, `metadata` as a JSON string).',
    request: AddImageRequest, multipart: { ...IMAGE_MULTIPART, id: { type: 'string' }, metadata: { type: 'string' } }, response: AddImageResponse,
  },
  { method: 'get', path: '/images', summary: 'Ids with their metadata, in insertion order.', query: ListImagesQuery, response: ListImagesResponse },
  { method: 'get', path: '/images/:id', summary: 'One id: metadata, fingerprint dimension, where its bytes are.', response: ImageResponse },
  { method: 'delete', path: '/images/:id', summary: 'Delete one id; its kept blob goes when no other id uses it.', response: DeleteImageResponse },
  { method: 'get', path: '/stats', summary: 'Count, dimension, model, search backend.', response: PipelineStatsResponse },
  {
    method: 'post', path: '/search', summary: 'The verified duplicates of an image (any of the four forms), with ids and metadata.',
    request: SearchImageRequest, multipart: IMAGE_MULTIPART, response: SearchImageResponse,
  },
  { method: 'post', path: '/search/vector', summary: 'Nearest neighbours of a fingerprint (not verified: there is no image).', request: SearchVectorRequest, response: SearchVectorResponse },
  {
    method: 'post', path: '/compare', summary: 'Verify two images against each other (JSON image1/image2 sources, or multipart files image1/image2).',
    request: CompareImagesRequest, multipart: COMPARE_MULTIPART, response: CompareImagesResponse,
  },
  {
    method: 'post', path: '/fingerprint', summary: "The fingerprint of an image (the encoder's answer, passed through).",
    request: FingerprintRequest, multipart: IMAGE_MULTIPART, response: EncodeResponse,
  },
];

/** Multipart compare: files image1/image2, or text fields image1_url, image2_relative_path, ... for the other forms. */
const COMPARE_FILES: FileMapping = {
  image1: (body, file) => { body.image1_image_base64 = file.toString('base64'); },
  image2: (body, file) => { body.image2_image_base64 = file.toString('base64'); },
};
function nestCompareFields(body: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) {
    const m = /^(image[12])_(relative_path|image_base64|url)$/.exec(k);
    if (!m) {
      out[k] = v;
      continue;
    }
    const image = (out[m[1]!] ??= {});
    // A field `image1` (a JSON value) beside `image1_url` or the file image1: not one image any more.
    if (typeof image !== 'object' || Array.isArray(image)) throw new AppError('INVALID_REQUEST', `${m[1]}: give it as fields or files, or as one JSON object, not both`);
    (image as Record<string, unknown>)[m[2]!] = v;
  }
  return out;
}

/** `/images/*id`: ids may hold slashes (a relative path is the default id). */
function idParam(req: Request): string {
  const raw = (req.params as { id?: string | string[] }).id;
  const id = Array.isArray(raw) ? raw.join('/') : (raw ?? '');
  if (id.length === 0 || id.length > MAX_ID_LENGTH) throw new AppError('INVALID_REQUEST', `id: must be 1 to ${MAX_ID_LENGTH} characters`);
  return id;
}

/** `queries`: the admission limiter of /duplicates, shared by the routes that run a search. */
export function mountImagesRoutes(app: Express, deps: ImagesDeps, limits: BodyLimits, queries?: Admission): void {
  app.get('/ping', plainRoute(() => ({ status: 'ok' as const, service: 'pipeline' })));
  app.post('/images', ...imageRoute(AddImageRequest, limits, IMAGE_FILE, (b) => addImage(deps, b)));
  app.get('/images', queryRoute(ListImagesQuery, (q) => listImages(deps, q)));
  app.get('/images/*id', plainRoute(({ req }) => getImage(deps, idParam(req))));
  app.delete('/images/*id', plainRoute(({ req }) => deleteImage(deps, idParam(req))));
  app.get('/stats', plainRoute(() => imageStats(deps)));
  app.post('/search', ...imageRoute(SearchImageRequest, limits, IMAGE_FILE, admitted(queries, (b) => searchImage(deps, b))));
  app.post('/search/vector', jsonBody('1mb'), jsonRoute(SearchVectorRequest, admitted(queries, (b) => searchVector(deps, b))));
  app.post('/compare', ...imageRoute(CompareImagesRequest, limits, COMPARE_FILES, admitted(queries, (b) => compareImages(deps, b)), nestCompareFields));
  app.post('/fingerprint', ...imageRoute(FingerprintRequest, limits, IMAGE_FILE, (b) => fingerprint(deps, b)));
}
