import { CompareResponse, MatchResponse, type CompareRequest, type MatchRequest, type Static } from '@doppel/schemas';
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
    compare: (body: CompareRequest) =>
      http.call({ method: 'POST', path: '/compare', body, schema: CompareResponse, idempotent: true }),
    ...readinessOf(http),
  };
}
export type MatchingClient = ReturnType<typeof createMatchingClient>;
