import { AppError } from '@doppel/service-kit';
import type { WorkerPool } from './inference-worker.pool.js';

/** Observers for metrics; the model itself knows nothing about prom-client. */
export interface ModelObserver {
  onBatch?: (size: number, seconds: number) => void;
  onQueueDepth?: (depth: number) => void;
}

export interface BatchOptions {
  maxBatch: number;
  windowMs: number;
  queueLimit: number;
  /** Bytes of one image at the model input size (RGB). */
  pixelBytes: number;
}

interface Job {
  /** RGB bytes (HWC) of one image at the model input size. */
  pixels: Uint8Array;
  /** Orientations wanted: 1 (its own), 4 (quarter turns) or 8 (and their mirrors). */
  rows: number;
  resolve: (out: Float32Array[]) => void;
  reject: (e: unknown) => void;
}

/** Takes queued jobs from the front until the next would overflow `maxBatch` (a job is never split). */
function takeBatch(queue: Job[], maxBatch: number): { jobs: Job[]; count: number } {
  const jobs: Job[] = [];
  let count = 0;
  while (queue.length > 0) {
    const n = queue[0]!.rows;
    if (jobs.length > 0 && count + n > maxBatch) break;
    jobs.push(queue.shift()!);
    count += n;
  }
  return { jobs, count };
}

/** Packs the jobs' pixels back to back, with the per-image row counts the worker reads. */
function packBatch(jobs: Job[], pixelBytes: number): { pixels: Uint8Array<ArrayBuffer>; orient: Uint8Array<ArrayBuffer> } {
  const pixels = new Uint8Array(jobs.length * pixelBytes);
  const orient = new Uint8Array(jobs.length);
  jobs.forEach((j, i) => {
    pixels.set(j.pixels, i * pixelBytes);
    orient[i] = j.rows;
  });
  return { pixels, orient };
}

/** Hands each job its rows of the batch output. */
function splitRows(jobs: Job[], output: Float32Array, dimension: number): void {
  let row = 0;
  for (const j of jobs) {
    const fps: Float32Array[] = [];
    for (let k = 0; k < j.rows; k++, row++) fps.push(output.subarray(dimension * row, dimension * (row + 1)));
    j.resolve(fps);
  }
}

/**
 * Micro-batching of inference: images from concurrent requests that wait less than
 * `windowMs` go through one session.run, which is what makes throughput on 2 cores
 * (a batch amortises per-run overhead).
 */
export class MicroBatchQueue {
  private readonly queue: Job[] = [];
  private queued = 0;
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;
  private closed = false;
  /** Recent images/s, to tell a 429'd client when to come back. */
  private rate = 50;
  private observer: ModelObserver = {};
  private pool!: WorkerPool;

  constructor(private readonly opts: BatchOptions) {}

  /** Set once the pool exists (the pool calls `schedule` when a worker frees up). */
  bind(pool: WorkerPool): void { this.pool = pool; }

  get depth(): number { return this.queued; }

  observe(o: ModelObserver): void { this.observer = o; }

  /** Admission is synchronous: a full queue rejects with OVERLOADED before this returns. */
  submit(pixels: Uint8Array, rows: number): Promise<Float32Array[]> {
    if (this.closed) return Promise.reject(new AppError('UNAVAILABLE', 'the encoder is shutting down', { retryAfter: 1 }));
    if (pixels.length !== this.opts.pixelBytes) return Promise.reject(new AppError('INTERNAL', `image of ${pixels.length} bytes, expected ${this.opts.pixelBytes}`));
    if (this.queued + rows > this.opts.queueLimit) {
      return Promise.reject(new AppError('OVERLOADED', `inference queue is full (${this.queued} images waiting)`, {
        retryAfter: Math.max(1, Math.ceil(this.queued / Math.max(this.rate, 1))),
      }));
    }
    return new Promise<Float32Array[]>((resolve, reject) => {
      this.queue.push({ pixels, rows, resolve, reject });
      this.setDepth(this.queued + rows);
      this.schedule();
    });
  }

  /**
   * Always deferred (never dispatches inside submit()), so a request that submits many
   * images in one tick is admitted against the queue limit deterministically.
   */
  schedule(): void {
    if (this.scheduled || this.queue.length === 0 || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (!this.pool.idleSlot() || this.queue.length === 0) return;
      if (this.queued >= this.opts.maxBatch || this.opts.windowMs === 0) {
        this.dispatch();
        this.schedule();
        return;
      }
      // Wait a little for concurrent requests to join the batch.
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        if (this.queue.length > 0) this.dispatch();
        this.schedule();
      }, this.opts.windowMs);
    });
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const j of this.queue.splice(0)) j.reject(new AppError('UNAVAILABLE', 'the encoder is shutting down', { retryAfter: 1 }));
    this.setDepth(0);
  }

  private setDepth(d: number): void {
    this.queued = d;
    this.observer.onQueueDepth?.(d);
  }

  private dispatch(): void {
    const slot = this.pool.idleSlot();
    if (!slot) return;
    const { jobs, count } = takeBatch(this.queue, this.opts.maxBatch);
    this.setDepth(this.queued - count);
    const { pixels, orient } = packBatch(jobs, this.opts.pixelBytes);
    const start = performance.now();
    this.pool.run(slot, pixels, orient).then((output) => {
      const seconds = (performance.now() - start) / 1000;
      this.observer.onBatch?.(count, seconds);
      if (seconds > 0) this.rate = 0.8 * this.rate + 0.2 * (count / seconds);
      splitRows(jobs, output, this.pool.dimension);
    }, (e: Error) => {
      for (const j of jobs) j.reject(new AppError('INTERNAL', `inference failed: ${e.message}`));
    });
  }
}
