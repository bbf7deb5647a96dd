import {
  DeleteResponse, ListResponse, LookupResponse, SearchBatchResponse, SearchResponse, StatsResponse, UpsertResponse,
  type DeleteRequest, type ListQuery, type LookupRequest, type SearchBatchRequest, type SearchRequest, type UpsertRequest,
} from '@doppel/schemas';
import { ServiceHttp, type ClientOptions } from './http.client.js';
import { readinessOf } from './readiness.client.js';

/**
 * Client of contextual-search. Upserts and deletes are keyed by relative_path, so
 * replaying one leaves the same state: they count as idempotent for retries.
 */
export function createSearchClient(opts: ClientOptions) {
  const http = new ServiceHttp('contextual-search', opts);
  return {
    baseUrl: http.baseUrl,
    search: (body: SearchRequest) =>
      http.call({ method: 'POST', path: '/search', body, schema: SearchResponse, idempotent: true }),
    searchBatch: (body: SearchBatchRequest) =>
      http.call({ method: 'POST', path: '/search/batch', body, schema: SearchBatchResponse, idempotent: true }),
    upsert: (body: UpsertRequest) =>
      http.call({ method: 'POST', path: '/vectors', body, schema: UpsertResponse, idempotent: true }),
    remove: (body: DeleteRequest) =>
      http.call({ method: 'DELETE', path: '/vectors', body, schema: DeleteResponse, idempotent: true }),
    list: (query: ListQuery = {}) =>
      http.call({ method: 'GET', path: '/vectors', params: query, schema: ListResponse, idempotent: true }),
    lookup: (body: LookupRequest) =>
      http.call({ method: 'POST', path: '/vectors/lookup', body, schema: LookupResponse, idempotent: true }),
    stats: () => http.call({ method: 'GET', path: '/stats', schema: StatsResponse, idempotent: true }),
    ...readinessOf(http),
  };
}
export type SearchClient = ReturnType<typeof createSearchClient>;
