import {
  AddImageResponse, CompareImagesResponse, DeleteImageResponse, DuplicatesResponse, EncodeResponse, ImageResponse, IndexResponse,
  ListImagesResponse, PingResponse, PipelineStatsResponse, SearchImageResponse, SearchVectorResponse,
  type AddImageRequest, type CompareImagesRequest, type DuplicatesRequest, type FingerprintRequest, type IndexRequest,
  type ListImagesQuery, type SearchImageRequest, type SearchVectorRequest, type Static,
} from '@doppel/schemas';
import { ServiceHttp, type ClientOptions } from './http.client.js';
import { readinessOf } from './readiness.client.js';

export type DuplicatesResult = Static<typeof DuplicatesResponse>['response'];
export type IndexResult = Static<typeof IndexResponse>['response'];

/** Ids may hold `/` and any character: each segment is escaped, the slashes kept. */
const idPath = (id: string) => `/images/${id.split('/').map(encodeURIComponent).join('/')}`;

/** Client of the pipeline (the CLI, the benchmark, platforms in TypeScript). JSON forms only. */
export function createPipelineClient(opts: ClientOptions) {
  const http = new ServiceHttp('pipeline', opts);
  return {
    baseUrl: http.baseUrl,
    duplicates: (body: DuplicatesRequest) =>
      http.call({ method: 'POST', path: '/duplicates', body, schema: DuplicatesResponse, idempotent: true }),
    // Indexing skips unchanged files, so a replay only re-checks them.
    index: (body: IndexRequest) =>
      http.call({ method: 'POST', path: '/index', body, schema: IndexResponse, idempotent: true }),
    // An add is keyed by id: a replay leaves the same state.
    addImage: (body: AddImageRequest) =>
      http.call({ method: 'POST', path: '/images', body, schema: AddImageResponse, idempotent: true }),
    // Not idempotent: a replayed delete answers 404.
    deleteImage: (id: string) =>
      http.call({ method: 'DELETE', path: idPath(id), schema: DeleteImageResponse, idempotent: false }),
    image: (id: string) => http.call({ method: 'GET', path: idPath(id), schema: ImageResponse, idempotent: true }),
    images: (query: ListImagesQuery = {}) =>
      http.call({ method: 'GET', path: '/images', params: query, schema: ListImagesResponse, idempotent: true }),
    stats: () => http.call({ method: 'GET', path: '/stats', schema: PipelineStatsResponse, idempotent: true }),
    search: (body: SearchImageRequest) =>
      http.call({ method: 'POST', path: '/search', body, schema: SearchImageResponse, idempotent: true }),
    searchVector: (body: SearchVectorRequest) =>
      http.call({ method: 'POST', path: '/search/vector', body, schema: SearchVectorResponse, idempotent: true }),
    compare: (body: CompareImagesRequest) =>
      http.call({ method: 'POST', path: '/compare', body, schema: CompareImagesResponse, idempotent: true }),
    fingerprint: (body: FingerprintRequest) =>
      http.call({ method: 'POST', path: '/fingerprint', body, schema: EncodeResponse, idempotent: true }),
    ping: () => http.call({ method: 'GET', path: '/ping', schema: PingResponse, idempotent: true, retries: 0, timeoutMs: 2000 }),
    ...readinessOf(http),
  };
}
export type PipelineClient = ReturnType<typeof createPipelineClient>;
