import { CompareResponse, MatchResponse, PrepareResponse, type CompareRequest, type MatchRequest, type PrepareRequest, type Static } from '@doppel/schemas';
import { ServiceHttp, type ClientOptions } from './http.client.js';
import { readinessOf } from './readiness.client.js';

export type MatchResult = Static<typeof MatchResponse>['response'];

/** Client of instance-matching. Verification is read-only: every call is idempotent. */
export function createMatchingClient(opts: ClientOptions) {
  const http = new ServiceHttp('instance-matching', opts);
  return {
    baseUrl: http.baseUrl,
    match: (body: MatchRequest) =>
      http.call({ method: 'POST', path: '/match', body, schema: MatchResponse, idempotent: true }),
    /** Extracts the query's features ahead of `match`; the handle lives PREPARED_TTL_MS. */
    prepare: (body: PrepareRequest) =>
      http.call({ method: 'POST', path: '/prepare', body, schema: PrepareResponse, idempotent: true }),
    compare: (body: CompareRequest) =>
      http.call({ method: 'POST', path: '/compare', body, schema: CompareResponse, idempotent: true }),
    ...readinessOf(http),
  };
}
export type MatchingClient = ReturnType<typeof createMatchingClient>;
