import type { Express } from 'express';
import { admissionFromConfig, createLogger, createServiceApp, Registry, type Logger, type Service, type ServiceDeps } from '@doppel/service-kit';
import type { MatchingConfig } from '@doppel/schemas';
import { createMatcher, type Matcher } from './match.service.js';
import { matchDocs, matchRoutes } from './match.routes.js';
import { registerMatchingMetrics } from './matching.metrics.js';
import { WorkerPool } from './worker.pool.js';

export interface AppDeps {
  /** Test mode: answers are checked against their schemas (createServiceApp's checkResponses). */
  checkResponses?: boolean | undefined;
  config: MatchingConfig;
  registry: Registry;
  logger: Logger;
  pool: WorkerPool;
  /** See MatcherDeps.clock. */
  clock?: { now(): number };
}

export const SERVICE_NAME = 'instance-matching';

/** Builds the app (never listens); the caller owns the pool and closes it. */
export function createApp(deps: AppDeps): { app: Express; matcher: Matcher } {
  const matcher = createMatcher({ config: deps.config, pool: deps.pool, clock: deps.clock });
  registerMatchingMetrics(deps.registry, deps.pool, matcher.cache);
  let siftChecked: Promise<boolean> | undefined;
  // Two requests per worker process keep every worker busy while one answer travels back.
  const admission = admissionFromConfig(deps.config, 'match', deps.config.NB_WORKERS * 2, deps.registry);
  const app = createServiceApp({
    service: SERVICE_NAME,
    body: { timeoutMs: deps.config.BODY_TIMEOUT_MS, budgetBytes: deps.config.BODY_BUDGET_BYTES },
    registry: deps.registry,
    logger: deps.logger,
    checkResponses: deps.checkResponses,
    docs: matchDocs,
    readiness: {
      sift: async () => {
        // Cached once answered; a failed probe (worker could not start) is retried next time.
        siftChecked ??= deps.pool.run({ kind: 'probe' }).then(
          (r) => r.kind === 'probe' && r.sift,
          (e: unknown) => {
            siftChecked = undefined;
            throw e;
          },
        );
        const ok = await siftChecked;
        return ok ? { ok } : { ok, detail: 'cv.SIFTDetector is missing (unpatched @u4/opencv4nodejs?)' };
      },
    },
    routes: (a) => matchRoutes(a, matcher, admission),
  });
  return { app, matcher };
}

export interface MatchingServiceDeps extends ServiceDeps {
  /** A pool owned by the caller (which closes it); otherwise one sized from the config. */
  pool?: WorkerPool;
  /** See MatcherDeps.clock (tests move time forward). */
  clock?: { now(): number };
}

/** The composition root: config -> worker pool, matcher and app; close() stops the pool it created. */
export function buildService(config: MatchingConfig, deps: MatchingServiceDeps = {}): Service & { matcher: Matcher; pool: WorkerPool } {
  const logger = deps.logger ?? createLogger(SERVICE_NAME, config.LOG_LEVEL);
  const pool = deps.pool ?? WorkerPool.fromConfig(config);
  const { app, matcher } = createApp({ config, registry: deps.registry ?? new Registry(), logger, pool, clock: deps.clock, checkResponses: deps.checkResponses });
  return { app, matcher, pool, close: async () => { if (!deps.pool) await pool.close(); } };
}
