/**
 * A fixed pool of verification child processes with one bounded FIFO queue.
 * Not worker threads: opencv4nodejs keeps its V8 class templates in process-wide
 * statics, so a second isolate loading it aborts the process ("Check failed:
 * is_clonable_js_type"), measured with 3 threads running SIFT. Processes are safe.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppError } from '@doppel/service-kit';
import type { MatchingConfig } from '@doppel/schemas';
import { ByteLru } from './feature.cache.js';
import { isShared, sharedBytes, type WorkerReply, type WorkerResult, type WorkerTask } from './verify.protocol.js';

interface Job {
  task: WorkerTask;
  resolve: (r: WorkerResult) => void;
  reject: (e: Error) => void;
  /** Set once the job has been re-queued after its worker died. */
  retried?: boolean;
  /** Send every Shared value, held or not (after a worker reported one missing). */
  resend?: boolean;
  /** The caller is gone: a queued job is dropped, a running one's answer is ignored. */
  signal?: AbortSignal;
}

export interface RunOptions {
  /** Aborted when the caller no longer wants the answer (its client disconnected). */
  signal?: AbortSignal;
}

/** One worker process, behind the few operations the pool needs. */
interface Channel {
  post(msg: unknown): void;
  onMessage(cb: (reply: WorkerReply) => void): void;
  onFailure(cb: (err: Error) => void): void;
  stop(): Promise<void>;
}

interface Slot {
  channel: Channel;
  job?: Job;
  /** Exited; waiting to be replaced. */
  dead?: boolean;
  /** Mirror of the worker's LRU of Shared values: the same sets and gets in the same order. */
  held: ByteLru<true>;
  /** Fires when the running job has taken longer than taskTimeoutMs. */
  timer?: NodeJS.Timeout;
  /** Marks the process failed: its job is retried or rejected, the process replaced. */
  failure?: (err: Error) => void;
  /** Has replied at least once (so it has loaded OpenCV). */
  answered?: boolean;
}

/** Extra time a fresh process gets for its first task: loading OpenCV takes seconds on a busy machine. */
const STARTUP_ALLOWANCE_MS = 30_000;

export interface PoolOptions {
  size: number;
  /** Tasks waiting (not running) before run() answers 429. */
  queueLimit: number;
  /** Bytes of Shared values each worker keeps (0: always sent). */
  sharedBytes?: number;
  /**
   * A task running longer than this is failed and its process replaced (0: no limit). A
   * pair normally takes milliseconds; a task that hangs in native code would otherwise
   * hold its worker, and every request queued behind it, forever.
   */
  taskTimeoutMs?: number;
}

/** A task that ran past taskTimeoutMs: its process was replaced and the task is not retried. */
export class TaskTimeoutError extends Error {}

// Same extension as this module: .ts under tsx (source condition), .js once built.
const workerFile = new URL(`./verify.worker${path.extname(new URL(import.meta.url).pathname)}`, import.meta.url);

function processChannel(sharedEntries: number): Channel {
  // 'advanced' serialisation is structured clone: typed arrays cross without JSON.
  const child: ChildProcess = fork(fileURLToPath(workerFile), [String(sharedEntries)], {
    serialization: 'advanced',
    // stdout ignored: the binding's loader prints build-info lines on every start.
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  let stopping = false;
  return {
    post: (msg) => child.send(msg as object),
    onMessage: (cb) => child.on('message', (m) => cb(m as WorkerReply)),
    onFailure: (cb) => {
      child.on('error', cb);
      child.on('exit', (code, signal) => {
        if (!stopping) cb(new Error(`verification process exited (${signal ?? code})`));
      });
    },
    stop: () =>
      new Promise<void>((resolve) => {
        stopping = true;
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill();
      }),
  };
}

const abortError = () => new DOMException('the caller is gone', 'AbortError');

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;
  /** Shared values sent in full, sent by key only, and tasks resent after a worker missed one. */
  readonly sharing = { sent: 0, byKey: 0, resent: 0 };

  /** The pool the service config describes. */
  static fromConfig(config: MatchingConfig): WorkerPool {
    return new WorkerPool({
      size: config.NB_WORKERS,
      queueLimit: config.QUEUE_LIMIT,
      sharedBytes: config.WORKER_CACHE_MB * 2 ** 20,
      taskTimeoutMs: config.TASK_TIMEOUT_MS,
    });
  }

  constructor(private readonly opts: PoolOptions) {
    for (let i = 0; i < opts.size; i++) this.slots.push(this.spawn());
  }

  get queued(): number {
    return this.queue.length;
  }

  get busy(): number {
    return this.slots.filter((s) => s.job).length;
  }

  private spawn(): Slot {
    const entries = this.opts.sharedBytes ?? 0;
    const slot: Slot = { channel: processChannel(entries), held: new ByteLru<true>(entries) };
    const w = slot.channel;
    w.onMessage((reply: WorkerReply) => {
      slot.answered = true;
      const job = slot.job;
      slot.job = undefined;
      clearTimeout(slot.timer);
      if (job && !reply.ok && reply.missing && !job.resend) {
        // The mirror was wrong about this worker: forget it and send everything again.
        slot.held = new ByteLru<true>(entries);
        this.sharing.resent++;
        this.queue.unshift({ ...job, resend: true });
      } else if (job) {
        if (reply.ok) job.resolve(reply.result);
        else job.reject(new Error(reply.message));
      }
      this.pump();
    });
    slot.failure = (err) => {
      if (this.closed || slot.dead || !this.slots.includes(slot)) return;
      slot.dead = true;
      const job = slot.job;
      slot.job = undefined;
      clearTimeout(slot.timer);
      // Tasks are pure, so a job whose process died (a native abort) gets one more try on
      // a fresh worker; a second death, or a timeout, is the job's own fault and is reported.
      if (job && !job.retried && !(err instanceof TaskTimeoutError) && !job.signal?.aborted) this.queue.unshift({ ...job, retried: true });
      else job?.reject(err);
      void w.stop();
      const respawn = () => {
        if (this.closed) return;
        const i = this.slots.indexOf(slot);
        if (i >= 0) this.slots[i] = this.spawn();
        this.pump();
      };
      // A worker that dies before its first reply cannot load OpenCV (e.g. missing
      // OPENCV_* env): retry slowly instead of a tight fork loop.
      if (slot.answered) respawn();
      else setTimeout(respawn, 2000).unref();
    };
    w.onFailure(slot.failure);
    return slot;
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (slot.job || slot.dead) continue;
      let job = this.queue.shift();
      // Jobs whose caller left while they waited are dropped here, never run.
      while (job?.signal?.aborted) {
        job.reject(abortError());
        job = this.queue.shift();
      }
      if (!job) return;
      slot.job = job;
      const id = this.nextId++;
      slot.channel.post({ id, task: this.forSlot(job, slot) });
      const limit = this.opts.taskTimeoutMs ?? 0;
      if (limit > 0) {
        const allowed = limit + (slot.answered ? 0 : STARTUP_ALLOWANCE_MS);
        slot.timer = setTimeout(() => {
          if (slot.job !== job) return;
          // The process is stuck in native code: only replacing it frees the slot.
          slot.failure?.(new TaskTimeoutError(`verification task took longer than ${limit} ms`));
        }, allowed);
        slot.timer.unref();
      }
    }
  }

  /**
   * The task as this worker needs it: Shared values it already holds go by key only. The
   * fields are walked in their order, and so are the objects of an array field (the pairs
   * of `verify-many`): the order in which the worker resolves them.
   */
  private forSlot(job: Job, slot: Slot): WorkerTask {
    const byKey = (o: object): object => {
      let out: Record<string, unknown> | undefined;
      for (const [field, v] of Object.entries(o)) {
        if (Array.isArray(v) && v.some((x) => typeof x === 'object' && x !== null && Object.values(x).some(isShared))) {
          const items = v.map((x: object) => byKey(x));
          if (items.some((x, i) => x !== v[i])) (out ??= { ...o })[field] = items;
          continue;
        }
        if (!isShared(v) || v.value === undefined) continue;
        if (!job.resend && slot.held.get(v.key)) {
          (out ??= { ...o })[field] = { key: v.key };
          this.sharing.byKey++;
        } else {
          slot.held.set(v.key, true, sharedBytes(v.value));
          this.sharing.sent++;
        }
      }
      return out ?? o;
    };
    return byKey(job.task) as WorkerTask;
  }

  run(task: WorkerTask, opts: RunOptions = {}): Promise<WorkerResult> {
    if (this.closed) return Promise.reject(new AppError('UNAVAILABLE', 'shutting down', { retryAfter: 1 }));
    if (opts.signal?.aborted) return Promise.reject(abortError());
    const idle = this.slots.some((s) => !s.job && !s.dead);
    if (!idle && this.queue.length >= this.opts.queueLimit) {
      return Promise.reject(new AppError('OVERLOADED', 'verification queue is full', { retryAfter: 1 }));
    }
    return new Promise<WorkerResult>((resolve, reject) => {
      const signal = opts.signal;
      // Leave the queue as soon as the caller is gone, so a long queue does not keep work for nobody.
      const onAbort = () => {
        const i = this.queue.indexOf(job);
        if (i >= 0) {
          this.queue.splice(i, 1);
          reject(abortError());
        }
      };
      const settle = <A>(fn: (a: A) => void) => (a: A) => {
        signal?.removeEventListener('abort', onAbort);
        fn(a);
      };
      const job: Job = { task, resolve: settle(resolve), reject: settle(reject), signal };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(job);
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new AppError('UNAVAILABLE', 'shutting down'));
    await Promise.all(this.slots.map((s) => s.channel.stop()));
  }
}
