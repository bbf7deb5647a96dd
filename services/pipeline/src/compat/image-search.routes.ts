import type { Express } from 'express';
import { isAbsolute, join, relative } from 'node:path';
import {
  ImageSearchAddQuery, ImageSearchAddResponse, ImageSearchError, ImageSearchSearchQuery, ImageSearchSearchResponse,
  ImageSearchStatsResponse, MAX_INDEX_PATHS, type RouteDoc,
} from '@doppel/schemas';
import { AppError, parseQuery, type Logger } from '@doppel/service-kit';
import { canonicalId, collectFiles } from '@doppel/image-source';
import { fingerprint, type ImagesDeps } from '../images.logic.js';
import { indexImages, type IndexingDeps } from '../indexing.logic.js';
import { answer, compatRouter } from './compat.kit.js';

/*
 * /compat/image-search: a local CNN image search server driven by GET requests with
 * paths. Paths may be relative to the image root or absolute inside it; results give
 * absolute paths, as the original does. distance = 1 - search similarity (0 = same).
 */
export const IMAGE_SEARCH_PREFIX = '/compat/image-search';

export const imageSearchDocs: RouteDoc[] = [
  { method: 'get', path: `${IMAGE_SEARCH_PREFIX}/add`, summary: 'image-search: index one file or every image of a folder (not recursive, as the original); answers when done.', query: ImageSearchAddQuery, response: ImageSearchAddResponse, error: ImageSearchError },
  { method: 'get', path: `${IMAGE_SEARCH_PREFIX}/search`, summary: 'image-search: the `limit` (10) nearest images: {results: [{image, distance}]}, smaller is closer.', query: ImageSearchSearchQuery, response: ImageSearchSearchResponse, error: ImageSearchError },
  { method: 'get', path: `${IMAGE_SEARCH_PREFIX}/stats`, summary: 'image-search: {images: count}.', response: ImageSearchStatsResponse, error: ImageSearchError },
];

/**
 * A path as the original takes it (absolute on its machine) or relative to the image root,
 * as an id; where it really lands (symlinks) is checked where it is read (collectFiles, materialise).
 */
function underRoot(root: string, p: string): string {
  const rel = isAbsolute(p) ? relative(root, p) : p;
  if (rel.startsWith('..') || isAbsolute(rel)) throw new AppError('FORBIDDEN_PATH', `${p}: outside the image root`);
  return canonicalId(rel === '' ? '.' : rel);
}

export function mountImageSearchRoutes(app: Express, deps: ImagesDeps, indexing: IndexingDeps): void {
  const { router, seal } = compatRouter((e) => ({ error: e.message }));
  const root = deps.imagesRoot;

  router.get('/add', answer(async (req, res) => {
    const q = parseQuery(ImageSearchAddQuery, req.query);
    const rel = underRoot(root, q.image);
    const files = (await collectFiles(root, rel, false)).map((f) => f.relative_path).slice(0, q.limit ?? Number.MAX_SAFE_INTEGER);
    const log = res.locals.log as Logger;
    let added = 0;
    let skipped = 0;
    for (let i = 0; i < files.length; i += MAX_INDEX_PATHS) {
      const r = await indexImages(indexing, { relative_paths: files.slice(i, i + MAX_INDEX_PATHS) });
      added += r.indexed;
      skipped += r.skipped;
      log.info({ done: Math.min(i + MAX_INDEX_PATHS, files.length), total: files.length, added, skipped, failed: r.failed.length }, 'image-search /add progress');
    }
    return { message: 'Extracted features from images', added, skipped };
  }));

  router.get('/search', answer(async (req) => {
    // `compare` (the original's optional re-rankers, repeatable) is accepted and ignored.
    const { compare: _ignored, ...params } = req.query as Record<string, unknown>;
    const q = parseQuery(ImageSearchSearchQuery, params);
    const rel = underRoot(root, q.image);
    const enc = await fingerprint(deps, { relative_path: rel, orientations: 'none' });
    const { neighbors } = await deps.search.search({ nb_neighbors: q.limit ?? 10, vec_features: enc.fingerprint });
    return {
      results: neighbors.map((n) => ({
        image: typeof n.metadata?.source_path === 'string' ? n.relative_path : join(root, n.relative_path),
        distance: Math.max(0, 1 - n.score),
      })),
    };
  }));

  router.get('/stats', answer(async () => ({ images: (await deps.search.stats()).count })));
  seal();
  app.use(IMAGE_SEARCH_PREFIX, router);
}
