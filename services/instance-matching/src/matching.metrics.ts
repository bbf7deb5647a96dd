import { Counter, Gauge, type Registry } from 'prom-client';
import type { WorkerPool } from './worker.pool.js';

/** Brings a counter up to running totals kept elsewhere (one per label value). */
function follow<L extends string>(counter: Counter<L>, label: L, totals: Record<string, () => number>): () => void {
  const seen = new Map<string, number>();
  return () => {
    for (const [value, read] of Object.entries(totals)) {
      const now = read();
      const before = seen.get(value) ?? 0;
      if (now > before) counter.inc({ [label]: value } as Partial<Record<L, string>>, now - before);
      seen.set(value, now);
    }
  };
}

/**
 * Pool and cache state, read when /metrics is scraped: the verification path itself
 * records nothing.
 */
export function registerMatchingMetrics(registry: Registry, pool: WorkerPool, cache: { size: number; bytes: number; hits: number; misses: number }): void {
  new Gauge({
    name: 'matching_queue_depth', help: 'Verification tasks waiting for a worker process.', registers: [registry],
    collect() { this.set(pool.queued); },
  });
  new Gauge({
    name: 'matching_workers_busy', help: 'Worker processes running a task.', registers: [registry],
    collect() { this.set(pool.busy); },
  });
  new Gauge({
    name: 'matching_feature_cache_entries', help: 'Target features held by the service.', registers: [registry],
    collect() { this.set(cache.size); },
  });
  new Gauge({
    name: 'matching_feature_cache_bytes', help: 'Bytes of target features held by the service (bounded by CACHE_MAX_MB).', registers: [registry],
    collect() { this.set(cache.bytes); },
  });
  const lookups: Counter<'result'> = new Counter({
    name: 'matching_feature_cache_lookups_total', help: 'Target feature lookups by result (a miss runs SIFT).',
    labelNames: ['result'], registers: [registry],
    collect: () => syncLookups(),
  });
  const syncLookups = follow(lookups, 'result', { hit: () => cache.hits, miss: () => cache.misses });
  const features: Counter<'how'> = new Counter({
    name: 'matching_worker_features_total',
    help: 'Features sent to worker processes: in full, by key only (already held), or resent after a worker missed one.',
    labelNames: ['how'], registers: [registry],
    collect: () => syncFeatures(),
  });
  const syncFeatures = follow(features, 'how', { sent: () => pool.sharing.sent, by_key: () => pool.sharing.byKey, resent: () => pool.sharing.resent });
}
