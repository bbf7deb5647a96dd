import { DuplicatesResponse, IndexResponse, type DuplicatesRequest, type IndexRequest, type Static } from '@doppel/schemas';
import { ServiceHttp, type ClientOptions } from './http.client.js';
import { readinessOf } from './readiness.client.js';

export type DuplicatesResult = Static<typeof DuplicatesResponse>['response'];
export type IndexResult = Static<typeof IndexResponse>['response'];

/** Client of the pipeline (used by the CLI and the benchmark). */
export function createPipelineClient(opts: ClientOptions) {
  const http = new ServiceHttp('pipeline', opts);
  return {
    baseUrl: http.baseUrl,
    duplicates: (body: DuplicatesRequest) =>
      http.call({ method: 'POST', path: '/duplicates', body, schema: DuplicatesResponse, idempotent: true }),
    // Indexing skips unchanged files, so a replay only re-checks them.
    index: (body: IndexRequest) =>
      http.call({ method: 'POST', path: '/index', body, schema: IndexResponse, idempotent: true }),
    ...readinessOf(http),
  };
}
export type PipelineClient = ReturnType<typeof createPipelineClient>;
