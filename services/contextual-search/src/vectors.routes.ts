import type { Express } from 'express';
import { jsonBody, jsonRoute, plainRoute, queryRoute } from '@doppel/service-kit';
import {
  DeleteRequest, DeleteResponse, ListQuery, ListResponse, LookupRequest, LookupResponse, MAX_DELETE_ITEMS, MAX_METADATA_BYTES, MAX_REGIONS, MAX_UPSERT_ITEMS, StatsResponse,
  UpsertRequest, UpsertResponse, type RouteDoc,
} from '@doppel/schemas';
import type { ImageIndex } from './image-index.service.js';

export const vectorsDocs: RouteDoc[] = [
  { method: 'post', path: '/vectors', summary: 'Upsert vectors by relative_path (a known path gets its vector, metadata and regions replaced).', request: UpsertRequest, response: UpsertResponse },
  { method: 'delete', path: '/vectors', summary: 'Delete vectors (and their regions) by relative_path; unknown paths are listed in not_found.', request: DeleteRequest, response: DeleteResponse },
  { method: 'get', path: '/vectors', summary: 'List stored paths (insertion order), optionally with their stored vectors.', query: ListQuery, response: ListResponse },
  { method: 'post', path: '/vectors/lookup', summary: 'The stored vector and metadata of each path asked (in that order); unknown paths are listed in not_found.', request: LookupRequest, response: LookupResponse },
  { method: 'get', path: '/stats', summary: 'Count, dimension, distance, index parameters and persistence state.', response: StatsResponse },
];

/** Body caps derived from the batch limits, so an oversized batch is refused before parsing. */
export function upsertBodyLimit(dimension: number): number {
  return MAX_UPSERT_ITEMS * ((1 + MAX_REGIONS) * dimension * 32 + MAX_METADATA_BYTES + 4200) + 4096;
}
const PATHS_BODY_LIMIT = MAX_DELETE_ITEMS * 4200 + 4096;

export function vectorsRoutes(app: Express, index: ImageIndex, dimension: number): void {
  app.post('/vectors', jsonBody(upsertBodyLimit(dimension)), jsonRoute(UpsertRequest, (b) => index.upsert(b.items)));
  app.delete('/vectors', jsonBody(PATHS_BODY_LIMIT), jsonRoute(DeleteRequest, (b) => index.delete(b.relative_paths)));
  app.get('/vectors', queryRoute(ListQuery, (q) => index.images.list(q.offset ?? 0, q.limit ?? 100, q.include_vectors ?? false)));
  app.post('/vectors/lookup', jsonBody(PATHS_BODY_LIMIT), jsonRoute(LookupRequest, (b) => index.lookup(b.relative_paths)));
  app.get('/stats', plainRoute(() => index.stats()));
}
