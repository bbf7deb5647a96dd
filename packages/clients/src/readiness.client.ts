import { HealthResponse, ReadyResponse } from '@doppel/schemas';
import type { ServiceHttp } from './http.client.js';

/** /healthz and /readyz, identical on every service. Short deadline: a probe must not hang. */
export function readinessOf(http: ServiceHttp, timeoutMs = 2000) {
  return {
    health: () => http.call({ method: 'GET', path: '/healthz', schema: HealthResponse, idempotent: true, timeoutMs, retries: 0 }),
    ready: () => http.call({ method: 'GET', path: '/readyz', schema: ReadyResponse, idempotent: true, timeoutMs, retries: 0 }),
  };
}
