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
import { LruCache } from './feature.cache.js';
import { isShared, type WorkerReply, type WorkerResult, type WorkerTask } from './verify.protocol.js';

interface Job {
  task: WorkerTask;
  resolve: (r: WorkerResult) => void;
  reject: (e: Error) => void;
  /** Set once the job has been re-queued after its worker died. */
  retried?: boolean;
  /** Send every Shared value, held or not (after a worker reported one missing). */
  resend?: boolean;
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
  held: LruCache<true>;
}

export interface PoolOptions {
  size: number;
  /** Tasks waiting (not running) before run() answers 429. */
  queueLimit: number;
  /** Shared values each worker keeps (0: always sent). */
  sharedEntries?: number;
}

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

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;
  /** Shared values sent in full, sent by key only, and tasks resent after a worker missed one. */
  readonly sharing = { sent: 0, byKey: 0, resent: 0 };

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
    const entries = this.opts.sharedEntries ?? 0;
    const slot: Slot = { channel: processChannel(entries), held: new LruCache<true>(entries) };
    const w = slot.channel;
    let answered = false;
    w.onMessage((reply: WorkerReply) => {
      answered = true;
      const job = slot.job;
      slot.job = undefined;
      if (job && !reply.ok && reply.missing && !job.resend) {
        // The mirror was wrong about this worker: forget it and send everything again.
        slot.held = new LruCache<true>(entries);
        this.sharing.resent++;
        this.queue.unshift({ ...job, resend: true });
      } else if (job) {
        if (reply.ok) job.resolve(reply.result);
        else job.reject(new Error(reply.message));
      }
      this.pump();
    });
    w.onFailure((err) => {
      if (this.closed || slot.dead || !this.slots.includes(slot)) return;
      slot.dead = true;
      const job = slot.job;
      slot.job = undefined;
      // Tasks are pure, so a job whose process died (a native abort) gets one more try on
      // a fresh worker; a second death is the job's own fault and is reported.
      if (job && !job.retried) this.queue.unshift({ ...job, retried: true });
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
      if (answered) respawn();
      else setTimeout(respawn, 2000).unref();
    });
    return slot;
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (slot.job || slot.dead) continue;
      const job = this.queue.shift();
      if (!job) return;
      slot.job = job;
      const id = this.nextId++;
      slot.channel.post({ id, task: this.forSlot(job, slot) });
    }
  }

  /** The task as this worker needs it: Shared values it already holds go by key only. */
  private forSlot(job: Job, slot: Slot): WorkerTask {
    let out: Record<string, unknown> | undefined;
    for (const [field, v] of Object.entries(job.task)) {
      if (!isShared(v) || v.value === undefined) continue;
      if (!job.resend && slot.held.get(v.key)) {
        out ??= { ...job.task };
        out[field] = { key: v.key };
        this.sharing.byKey++;
      } else {
        slot.held.set(v.key, true);
        this.sharing.sent++;
      }
    }
    return (out ?? job.task) as WorkerTask;
  }

  run(task: WorkerTask): Promise<WorkerResult> {
    if (this.closed) return Promise.reject(new AppError('UNAVAILABLE', 'shutting down', { retryAfter: 1 }));
    const idle = this.slots.some((s) => !s.job && !s.dead);
    if (!idle && this.queue.length >= this.opts.queueLimit) {
      return Promise.reject(new AppError('OVERLOADED', 'verification queue is full', { retryAfter: 1 }));
    }
    return new Promise<WorkerResult>((resolve, reject) => {
      this.queue.push({ task, resolve, reject });
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new AppError('UNAVAILABLE', 'shutting down'));
    await Promise.all(this.slots.map((s) => s.channel.stop()));
  }
}
