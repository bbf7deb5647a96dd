import PQueue from 'p-queue';
import { setImmediate as nextLoopTurn } from 'node:timers/promises';
import { Counter, Gauge, type Registry } from 'prom-client';
import { AppError } from './app-error.js';

export interface AdmissionOptions {
  /** Label of this limiter in metrics and messages (e.g. 'search'). */
  name: string;
  /** Requests worked on at once. */
  concurrency: number;
  /** Requests waiting for a slot before 429. */
  maxQueue: number;
  /**
   * Longest wait for a slot. A request whose expected wait (queue ahead of it x the
   * measured time per request / concurrency) is longer is refused at once with 429; one
   * still waiting after this long gets 503. Both carry Retry-After.
   */
  maxWaitMs: number;
  registry?: Registry;
}

export interface Admission {
  /**
   * Runs fn once a slot is free. fn starts on a later turn of the event loop, so between
   * two pieces of synchronous work (an HNSW search) Node answers /healthz and reads sockets.
   * The signal (the client went away) removes a waiting request from the queue.
   */
  run<T>(fn: () => Promise<T> | T, signal?: AbortSignal): Promise<T>;
  readonly inFlight: number;
  readonly waiting: number;
  /** Smoothed time per request in ms (0 before the first one). */
  readonly serviceMs: number;
}

interface AdmissionMetrics {
  inFlight: Gauge;
  waiting: Gauge;
  rejected: Counter;
}

function metricsOf(registry: Registry): AdmissionMetrics {
  const get = <M>(name: string, make: () => M): M => (registry.getSingleMetric(name) as M | undefined) ?? make();
  return {
    inFlight: get('admission_in_flight', () => new Gauge({ name: 'admission_in_flight', help: 'Requests being worked on, by limiter.', labelNames: ['limiter'], registers: [registry] })),
    waiting: get('admission_waiting', () => new Gauge({ name: 'admission_waiting', help: 'Requests waiting for a slot, by limiter.', labelNames: ['limiter'], registers: [registry] })),
    rejected: get('admission_rejected_total', () => new Counter({
      name: 'admission_rejected_total', help: 'Requests refused (reason: queue_full, expected_wait, waited_too_long), by limiter.',
      labelNames: ['limiter', 'reason'], registers: [registry],
    })),
  };
}

/** Smoothing of the per-request time: recent requests count most, one outlier does not rule. */
const EWMA_ALPHA = 0.2;

/** A bounded work queue whose bound is the expected wait, not only its length (p-queue underneath). */
export function createAdmission(opts: AdmissionOptions): Admission {
  const queue = new PQueue({ concurrency: Math.max(1, opts.concurrency) });
  const metrics = opts.registry ? metricsOf(opts.registry) : undefined;
  const labels = { limiter: opts.name };
  let waiting = 0;
  let running = 0;
  let serviceMs = 0;

  const show = () => {
    metrics?.waiting.set(labels, waiting);
    metrics?.inFlight.set(labels, running);
  };
  const refuse = (reason: string, err: AppError): never => {
    metrics?.rejected.inc({ ...labels, reason });
    throw err;
  };
  const expectedWaitMs = () => (running < queue.concurrency ? 0 : Math.ceil((waiting + 1) / queue.concurrency) * serviceMs);

  async function run<T>(fn: () => Promise<T> | T, signal?: AbortSignal): Promise<T> {
    if (waiting >= opts.maxQueue && running >= queue.concurrency) {
      refuse('queue_full', new AppError('OVERLOADED', `${opts.name}: ${waiting} requests are already waiting`, {
        retryAfter: Math.max(1, expectedWaitMs() / 1000),
      }));
    }
    const expected = expectedWaitMs();
    if (expected > opts.maxWaitMs) {
      refuse('expected_wait', new AppError('OVERLOADED', `${opts.name}: busy, the expected wait is ${Math.round(expected)} ms (over ${opts.maxWaitMs})`, {
        retryAfter: Math.max(1, expected / 1000),
      }));
    }
    const gone = new AbortController();
    waiting++;
    show();
    let started = false;
    let timer: NodeJS.Timeout | undefined;
    const leaveQueue = (reason: AppError | Error) => {
      if (started || gone.signal.aborted) return;
      waiting--;
      show();
      gone.abort(reason);
    };
    const onClientGone = () => leaveQueue(new AppError('INVALID_REQUEST', 'client went away'));
    signal?.addEventListener('abort', onClientGone, { once: true });
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        if (started) return;
        metrics?.rejected.inc({ ...labels, reason: 'waited_too_long' });
        const err = new AppError('UNAVAILABLE', `${opts.name}: no slot within ${opts.maxWaitMs} ms`, { retryAfter: Math.max(1, expectedWaitMs() / 1000) });
        leaveQueue(err);
        reject(err);
      }, opts.maxWaitMs);
      gone.signal.addEventListener('abort', () => reject(gone.signal.reason as Error), { once: true });
    });
    expired.catch(() => undefined);
    const task = queue.add(async () => {
      // Aborted while waiting: p-queue throws here without running fn.
      gone.signal.throwIfAborted();
      started = true;
      clearTimeout(timer);
      waiting--;
      running++;
      show();
      const t0 = performance.now();
      try {
        await nextLoopTurn();
        return await fn();
      } finally {
        const ms = performance.now() - t0;
        serviceMs = serviceMs === 0 ? ms : serviceMs + EWMA_ALPHA * (ms - serviceMs);
        running--;
        show();
      }
    }, { signal: gone.signal }) as Promise<T>;
    try {
      return await Promise.race([task, expired]);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onClientGone);
      task.catch(() => undefined);
    }
  }

  return {
    run,
    get inFlight() { return running; },
    get waiting() { return waiting; },
    get serviceMs() { return serviceMs; },
  };
}

/** An AbortSignal that fires when the client's connection closes before its answer was sent. */
export function clientGoneSignal(res: { once(event: 'close', fn: () => void): unknown; writableFinished: boolean }): AbortSignal {
  const ac = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) ac.abort();
  });
  return ac.signal;
}

/**
 * A jsonRoute/queryRoute handler that runs behind an admission limiter; a client that
 * disconnects while waiting gives its place up.
 */
export function admitted<B, C extends { res: { once(event: 'close', fn: () => void): unknown; writableFinished: boolean } }, R>(
  admission: Admission | undefined,
  fn: (body: B, ctx: C) => Promise<R> | R,
): (body: B, ctx: C) => Promise<R> | R {
  if (!admission) return fn;
  return (body, ctx) => admission.run(() => fn(body, ctx), clientGoneSignal(ctx.res));
}

/** The shared ADMIT_* variables of a service config. */
export interface AdmissionConfig {
  readonly ADMIT_CONCURRENCY: number;
  readonly ADMIT_QUEUE: number;
  readonly ADMIT_WAIT_MS: number;
}

/** A limiter from the ADMIT_* config; ADMIT_CONCURRENCY 0 means the service's own default. */
export function admissionFromConfig(config: AdmissionConfig, name: string, defaultConcurrency: number, registry?: Registry): Admission {
  return createAdmission({
    name,
    concurrency: config.ADMIT_CONCURRENCY || defaultConcurrency,
    maxQueue: config.ADMIT_QUEUE,
    maxWaitMs: config.ADMIT_WAIT_MS,
    ...(registry ? { registry } : {}),
  });
}
