import type { Express } from 'express';
import { ImageMatchingRequest, ImageMatchingResponse, type RouteDoc } from '@doppel/schemas';
import { AppError, jsonBody } from '@doppel/service-kit';
import { fingerprint, searchImage, searchVector, type ImagesDeps, type ImageSource } from '../images.logic.js';
import { answer, compatRouter, validJson } from './compat.kit.js';

/*
 * /compat/image-matching: a Flask feature/match API, one POST with a JSON body
 * {type, image, accuracy?}. Features travel as a JSON array inside a string; a feature
 * string may also be the whole get_feature answer (as the original's match_feature takes).
 */
export const IMAGE_MATCHING_PREFIX = '/compat/image-matching';
/** The original serves the same handler here; both paths answer. */
const PATHS = ['/', '/image_service/v1.0'];

export const imageMatchingDocs: RouteDoc[] = PATHS.map((p) => ({
  method: 'post' as const,
  path: `${IMAGE_MATCHING_PREFIX}${p === '/' ? '' : p}`,
  summary: 'image-matching: get_feature_{filename,base64,link} -> {result: {feature: "[...]"}}; match_{filename,base64,link,feature} -> {result: {match: [{filename, score}]}}.',
  request: ImageMatchingRequest,
  response: ImageMatchingResponse,
  error: ImageMatchingResponse,
}));

/** The fingerprint as the original prints a Python list: "[0.13205051, 0.16701862, ...]". */
const featureString = (v: number[]) => `[${v.join(', ')}]`;

export function parseFeature(text: string): number[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new AppError('INVALID_REQUEST', 'image: a feature string must be a JSON array of numbers, or a get_feature answer');
  }
  const inner = (data as { result?: { feature?: unknown } })?.result?.feature;
  if (typeof inner === 'string') return parseFeature(inner);
  if (!Array.isArray(data) || data.length === 0 || !data.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw new AppError('INVALID_REQUEST', 'image: a feature string must be a JSON array of finite numbers');
  }
  return data as number[];
}

export function mountImageMatchingRoutes(app: Express, deps: ImagesDeps, defaultAccuracy: number): void {
  const { router, seal } = compatRouter((e) => ({ result: {}, error: e.message }));
  const body = jsonBody(Math.ceil((deps.maxImageBytes * 4) / 3) + 64 * 1024);
  const source = (type: string, image: string): ImageSource =>
    type.endsWith('_filename') ? { relative_path: image } : type.endsWith('_base64') ? { image_base64: image } : { url: image };

  const handle = answer(async (req) => {
    const r = validJson(ImageMatchingRequest, req.body);
    const accuracy = r.accuracy === undefined ? defaultAccuracy : Number(r.accuracy);
    if (r.type.startsWith('get_feature_')) {
      const enc = await fingerprint(deps, { ...source(r.type, r.image), orientations: 'none' });
      return { result: { feature: featureString(enc.fingerprint) } };
    }
    if (r.type === 'match_feature') {
      // No image to verify: the score is the search similarity.
      const { results } = await searchVector(deps, { vec_features: parseFeature(r.image), min_score: accuracy });
      return { result: { match: results.map((h) => ({ filename: h.id, score: h.score, metadata: h.metadata })) } };
    }
    const { results } = await searchImage(deps, { ...source(r.type, r.image), threshold: accuracy });
    return { result: { match: results.map((h) => ({ filename: h.id, score: h.score, metadata: h.metadata })) } };
  });
  for (const p of PATHS) router.post(p, body, handle);
  seal();
  app.use(IMAGE_MATCHING_PREFIX, router);
}
