import type { Express } from 'express';
import { jsonBody, jsonRoute } from '@doppel/service-kit';
import { MAX_DIMENSION, SearchRequest, SearchResponse, type RouteDoc } from '@doppel/schemas';
import type { Collection } from './collection.service.js';

export const searchDocs: RouteDoc[] = [
  { method: 'post', path: '/search', summary: 'k nearest neighbours of a vector, best first, score in [0, 1] (1 = identical).', request: SearchRequest, response: SearchResponse },
];

/** One vector of at most MAX_DIMENSION numbers written out in full, plus the other fields. */
const SEARCH_BODY_LIMIT = MAX_DIMENSION * 32 + 4096;

export function searchRoutes(app: Express, collection: Collection): void {
  app.post(
    '/search',
    jsonBody(SEARCH_BODY_LIMIT),
    jsonRoute(SearchRequest, async (b) => ({ neighbors: await collection.search(b.vec_features, b.nb_neighbors, b.min_score, b.ef) })),
  );
}
