import type { Express } from 'express';
import { admitted, jsonBody, jsonRoute, type Admission } from '@doppel/service-kit';
import {
  MAX_BATCH_QUERIES, MAX_DIMENSION, SearchBatchRequest, SearchBatchResponse, SearchRequest, SearchResponse, type RouteDoc,
} from '@doppel/schemas';
import type { ImageIndex } from './image-index.service.js';

export const searchDocs: RouteDoc[] = [
  { method: 'post', path: '/search', summary: 'k nearest images of a vector, best first, score in [0, 1] (1 = identical): the best of the image\'s own vector and its regions, each image once.', request: SearchRequest, response: SearchResponse },
  {
    method: 'post', path: '/search/batch',
    summary: 'k nearest neighbours of each of several vectors (a query\'s orientations), merged: each path once with its best score and the vector that gave it, best first.',
    request: SearchBatchRequest, response: SearchBatchResponse,
  },
];

/** One vector of at most MAX_DIMENSION numbers written out in full, plus the other fields. */
const SEARCH_BODY_LIMIT = MAX_DIMENSION * 32 + 4096;

export function searchRoutes(app: Express, index: ImageIndex, admission?: Admission): void {
  app.post(
    '/search',
    jsonBody(SEARCH_BODY_LIMIT),
    jsonRoute(SearchRequest, admitted(admission, async (b) => ({ neighbors: await index.search(b.vec_features, b.nb_neighbors, b.min_score, b.ef) }))),
  );
  app.post(
    '/search/batch',
    jsonBody(MAX_BATCH_QUERIES * SEARCH_BODY_LIMIT),
    // Every vector is checked (by the collection) before any result is merged: one bad
    // vector fails the whole request with its 400, as /search would.
    jsonRoute(SearchBatchRequest, admitted(admission, async (b) => ({
      neighbors: await index.searchBatch(b.queries.map((q) => q.vec_features), b.nb_neighbors, b.min_score, b.ef, b.limit, b.hubness_k),
    }))),
  );
}
