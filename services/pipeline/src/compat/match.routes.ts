import type { Express, Request } from 'express';
import {
  MatchAddForm, MatchCompareForm, MatchDeleteForm, MatchEnvelope, MatchListQuery, MatchSearchForm, type RouteDoc,
} from '@doppel/schemas';
import { AppError, isAppError } from '@doppel/service-kit';
import { addImage, compareImages, deleteImage, listImages, searchImage, type ImagesDeps, type ImageSource } from '../images.logic.js';
import { answer, compatRouter, fileOf, formBody, formFields } from './compat.kit.js';

/*
 * /compat/match: the HTTP API of a reverse-image-search server built on Elasticsearch and
 * image signatures (form bodies, envelope {status, error, method, result}). Doppel's
 * scores are in [0,1]; this API's are 0-100 with 100 a perfect match, so they are x100.
 */
export const MATCH_PREFIX = '/compat/match';

const FILE = { type: 'string' as const, format: 'binary' as const };
export const matchDocs: RouteDoc[] = [
  { method: 'post', path: `${MATCH_PREFIX}/add`, summary: 'match: add or overwrite `filepath` from `url` or an uploaded `image`, with optional `metadata` (a JSON object as a string).', form: MatchAddForm, multipart: { image: FILE }, response: MatchEnvelope, error: MatchEnvelope },
  { method: 'delete', path: `${MATCH_PREFIX}/delete`, summary: 'match: delete `filepath`.', form: MatchDeleteForm, response: MatchEnvelope, error: MatchEnvelope },
  { method: 'post', path: `${MATCH_PREFIX}/search`, summary: 'match: verified matches of `url` or `image`: result [{score 0-100, filepath, metadata}].', form: MatchSearchForm, multipart: { image: FILE }, response: MatchEnvelope, error: MatchEnvelope },
  { method: 'post', path: `${MATCH_PREFIX}/compare`, summary: 'match: score (0-100) of `url1`/`image1` against `url2`/`image2`.', form: MatchCompareForm, multipart: { image1: FILE, image2: FILE }, response: MatchEnvelope, error: MatchEnvelope },
  { method: 'get', path: `${MATCH_PREFIX}/count`, summary: 'match: result [number of images].', response: MatchEnvelope, error: MatchEnvelope },
  { method: 'get', path: `${MATCH_PREFIX}/list`, summary: 'match: result [filepaths], `offset` (0), `limit` (20).', query: MatchListQuery, response: MatchEnvelope, error: MatchEnvelope },
  { method: 'get', path: `${MATCH_PREFIX}/ping`, summary: 'match: result [].', response: MatchEnvelope, error: MatchEnvelope },
];

const ok = (method: string, result: unknown[]): MatchEnvelope => ({ status: 'ok', error: [], method, result });

/** `url` or an uploaded file (the url wins when both are given, as in the original). */
function imageFrom(req: Request, url: string | undefined, field: string): ImageSource {
  if (url !== undefined) return { url };
  const file = fileOf(req, field);
  if (!file) throw new AppError('INVALID_REQUEST', `${field}: give a url (${field === 'image' ? 'url' : field.replace('image', 'url')}) or upload a file (${field})`);
  return { image_base64: file.toString('base64') };
}

function parseMetadata(raw: string | undefined): Record<string, unknown> | undefined {
  if (raw === undefined) return undefined;
  let m: unknown;
  try {
    m = JSON.parse(raw);
  } catch {
    throw new AppError('INVALID_REQUEST', 'metadata: must be a JSON object (as a string)');
  }
  if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new AppError('INVALID_REQUEST', 'metadata: must be a JSON object (as a string)');
  return m as Record<string, unknown>;
}

/** `all_orientations` arrives as a string; absent means true. */
const orientationsFlag = (v: string | undefined): boolean => v === undefined || !['false', '0', 'no', 'off'].includes(v.trim().toLowerCase());

const percent = (score: number) => Math.round(score * 100 * 1e4) / 1e4;

export function mountMatchRoutes(app: Express, deps: ImagesDeps): void {
  const { router, seal } = compatRouter((e, req) => ({ status: 'fail', error: [e.message], method: req.path.replace(/^\/+/, '').split('/')[0] ?? '', result: [] }));
  const form = formBody(['image', 'image1', 'image2'], deps.maxImageBytes);

  router.post('/add', form, answer(async (req) => {
    const f = formFields(MatchAddForm, req);
    const metadata = parseMetadata(f.metadata);
    await addImage(deps, { id: f.filepath, ...imageFrom(req, f.url, 'image'), ...(metadata ? { metadata } : {}) });
    return ok('add', []);
  }));
  router.delete('/delete', form, answer(async (req) => {
    const f = formFields(MatchDeleteForm, req);
    try {
      await deleteImage(deps, f.filepath);
    } catch (e) {
      // Deleting a path that is not there is not an error in this API.
      if (!(isAppError(e) && e.code === 'IMAGE_NOT_FOUND')) throw e;
    }
    return ok('delete', []);
  }));
  router.post('/search', form, answer(async (req) => {
    const f = formFields(MatchSearchForm, req);
    const r = await searchImage(deps, { ...imageFrom(req, f.url, 'image'), all_orientations: orientationsFlag(f.all_orientations) });
    return ok('search', r.results.map((h) => ({ score: percent(h.score), filepath: h.id, metadata: Object.keys(h.metadata).length ? h.metadata : null })));
  }));
  router.post('/compare', form, answer(async (req) => {
    const f = formFields(MatchCompareForm, req);
    const r = await compareImages(deps, { image1: imageFrom(req, f.url1, 'image1'), image2: imageFrom(req, f.url2, 'image2') });
    return ok('compare', [{ score: percent(r.score) }]);
  }));
  const count = answer(async () => ok('count', [(await deps.search.stats()).count]));
  router.get('/count', count);
  router.post('/count', form, count);
  const list = answer(async (req) => {
    const q = formFields(MatchListQuery, req);
    const limit = q.limit ?? 20;
    if (limit === 0) return ok('list', []);
    const page = await listImages(deps, { offset: q.offset ?? 0, limit });
    return ok('list', page.items.map((it) => it.id));
  });
  router.get('/list', list);
  router.post('/list', form, list);
  const ping = answer(async () => ok('ping', []));
  router.get('/ping', ping);
  router.post('/ping', form, ping);
  seal();
  app.use(MATCH_PREFIX, router);
}
