import { Worker } from 'node:worker_threads';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { AppError } from '@doppel/service-kit';
import { REGIONAL_OUTPUT, exposeRegional, featureMapOf, inspectModel, type ModelLayout, type Pooling, type Window } from './feature-output.graph.js';

/** Messages main -> worker. */
export interface WorkerInit {
  type: 'init';
  model: Uint8Array;
  featureTensor: string;
  isGraphOutput: boolean;
  inputName: string;
  inputSize: number;
  intraOpThreads: number;
}
/** `pixels`: the RGB bytes (HWC) of each image back to back; `orient[i]`: image i also runs its 7 other orientations. */
export type WorkerRequest = WorkerInit | { type: 'run'; id: number; pixels: Uint8Array; orient: Uint8Array };
/** Messages worker -> main. */
export type WorkerReply =
  | { type: 'ready'; dimension: number; output: string }
  | { type: 'init-error'; message: string }
  | { type: 'result'; id: number; output: Float32Array }
  | { type: 'run-error'; id: number; message: string };

export interface ModelOptions {
  path: string;
  /** Expected sha256 (hex); checked when non-empty. */
  sha256?: string;
  featureTensor?: string;
  /** Input side; 0 = from the model (224 when the model leaves it dynamic). */
  inputSize?: number;
  workers?: number;
  intraOpThreads?: number;
  maxBatch?: number;
  batchWindowMs?: number;
  queueLimit?: number;
  /** Windows of the feature map pooled besides the whole map (regional fingerprints); none by default. */
  regions?: readonly Window[];
  /** How the map is pooled into a vector: average (default) or generalised mean. */
  pooling?: Pooling;
}

/** Observers for metrics; the model itself knows nothing about prom-client. */
export interface ModelObserver {
  onBatch?: (size: number, seconds: number) => void;
  onQueueDepth?: (depth: number) => void;
}

/** The model runtime as the rest of the service sees it. */
export interface EncoderModel {
  /** File name of the model, reported with each fingerprint. */
  readonly name: string;
  readonly dimension: number;
  /**
   * Vectors per image: 1, or 1 + the regions. Each fingerprint row returned by infer() is
   * then `vectors` unit vectors of `dimension` back to back (whole image first), scaled
   * together by the row normalisation: split and renormalise them (regionalVectors()).
   */
  readonly vectors: number;
  readonly inputSize: number;
  readonly layout: ModelLayout;
  /** Images waiting for a worker. */
  readonly queueDepth: number;
  /**
   * Fingerprint (L2-normalised) of one RGB image already resized to the input size; with
   * `orientations`, the 8 fingerprints in ORIENTATION_NAMES order, from one session.run.
   * Admission is synchronous: a full queue rejects with OVERLOADED before this returns.
   */
  infer(pixels: Uint8Array, orientations?: boolean): Promise<Float32Array[]>;
  ready(): boolean;
  observe(observer: ModelObserver): void;
  close(): Promise<void>;
}

export class ModelFileError extends Error {}

interface Job {
  /** RGB bytes (HWC) of one image at the model input size. */
  pixels: Uint8Array;
  /** 1, or 8 when all orientations are wanted. */
  rows: number;
  resolve: (out: Float32Array[]) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: Worker;
  busy: boolean;
  inflight: Map<number, { jobs: Job[]; count: number; start: number }>;
}

const fromSource = import.meta.url.endsWith('.ts');
const workerUrl = new URL(fromSource ? './inference.worker.ts' : './inference.worker.js', import.meta.url);

/**
 * Under tsx (source runs, tests) Node 20 workers do not get the TypeScript loader from
 * `--import tsx`, so the worker registers it before importing its .ts entry.
 */
function spawnWorker(): Worker {
  if (!fromSource) return new Worker(workerUrl);
  const tsx = import.meta.resolve('tsx/esm/api');
  return new Worker(`import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(workerUrl.href)}); })`, { eval: true });
}

function startWorker(init: WorkerInit): Promise<{ worker: Worker; dimension: number }> {
  return new Promise((resolve, reject) => {
    const worker = spawnWorker();
    const onError = (e: Error) => reject(e);
    worker.once('error', onError);
    worker.once('message', (msg: WorkerReply) => {
      worker.off('error', onError);
      if (msg.type === 'ready') resolve({ worker, dimension: msg.dimension });
      else {
        void worker.terminate();
        reject(new ModelFileError(msg.type === 'init-error' ? msg.message : 'unexpected worker reply'));
      }
    });
    worker.postMessage(init);
  });
}

/**
 * Loads the model into worker threads and serves micro-batched inference: images from
 * concurrent requests that wait less than `batchWindowMs` go through one session.run,
 * which is what makes throughput on 2 cores (a batch amortises per-run overhead).
 */
export async function loadOnnxModel(opts: ModelOptions): Promise<EncoderModel> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(opts.path);
  } catch (e) {
    throw new ModelFileError(`cannot read model ${opts.path}: ${(e as Error).message}`);
  }
  if (opts.sha256) {
    const got = createHash('sha256').update(bytes).digest('hex');
    if (got !== opts.sha256) throw new ModelFileError(`model ${opts.path} has sha256 ${got}, expected ${opts.sha256}`);
  }
  let layout: ModelLayout;
  try {
    layout = inspectModel(bytes, opts.featureTensor ?? '');
  } catch (e) {
    throw new ModelFileError(`model ${opts.path}: ${(e as Error).message}`);
  }
  const windows = opts.regions ?? [];
  if (windows.length > 0 || opts.pooling === 'gem') {
    // Pooled in the graph (feature-output.graph.ts): the worker sees one 2-D output.
    const map = featureMapOf(bytes, layout.featureTensor);
    bytes = exposeRegional(bytes, map, windows, opts.pooling ?? 'gap');
    layout = { ...layout, featureTensor: REGIONAL_OUTPUT, isGraphOutput: true, reason: `${layout.reason}; ${opts.pooling ?? 'gap'} pooling of ${map} over the whole map and ${windows.length} regions` };
  }
  if (layout.channels !== undefined && layout.channels !== 3) throw new ModelFileError(`model ${opts.path} wants ${layout.channels} input channels, not 3 (RGB)`);
  const inputSize = opts.inputSize || layout.inputSize || 224;
  if (layout.inputSize !== undefined && layout.inputSize !== inputSize) {
    throw new ModelFileError(`INPUT_SIZE ${inputSize} differs from the model's fixed input ${layout.inputSize}`);
  }
  const init: WorkerInit = {
    type: 'init', model: bytes, featureTensor: layout.featureTensor, isGraphOutput: layout.isGraphOutput,
    inputName: layout.inputName, inputSize, intraOpThreads: opts.intraOpThreads ?? 2,
  };
  const maxBatch = opts.maxBatch ?? 16;
  const windowMs = opts.batchWindowMs ?? 2;
  const queueLimit = opts.queueLimit ?? 256;
  const pixelBytes = 3 * inputSize * inputSize;

  const started = await Promise.all(Array.from({ length: opts.workers ?? 1 }, () => startWorker(init)));
  const dimension = started[0]!.dimension;
  const slots: Slot[] = [];
  const queue: Job[] = [];
  let queued = 0;
  let nextId = 1;
  let timer: NodeJS.Timeout | undefined;
  let scheduled = false;
  let closed = false;
  /** Recent images/s, to tell a 429'd client when to come back. */
  let rate = 50;
  let observer: ModelObserver = {};

  const setDepth = (d: number) => {
    queued = d;
    observer.onQueueDepth?.(d);
  };

  const failInflight = (slot: Slot, message: string) => {
    for (const { jobs } of slot.inflight.values()) for (const j of jobs) j.reject(new AppError('INTERNAL', message));
    slot.inflight.clear();
  };

  const attach = (worker: Worker): Slot => {
    const slot: Slot = { worker, busy: false, inflight: new Map() };
    worker.on('message', (msg: WorkerReply) => {
      if (msg.type !== 'result' && msg.type !== 'run-error') return;
      const run = slot.inflight.get(msg.id);
      if (!run) return;
      slot.inflight.delete(msg.id);
      slot.busy = false;
      const seconds = (performance.now() - run.start) / 1000;
      observer.onBatch?.(run.count, seconds);
      if (seconds > 0) rate = 0.8 * rate + 0.2 * (run.count / seconds);
      if (msg.type === 'run-error') {
        for (const j of run.jobs) j.reject(new AppError('INTERNAL', `inference failed: ${msg.message}`));
      } else {
        let row = 0;
        for (const j of run.jobs) {
          const fps: Float32Array[] = [];
          for (let k = 0; k < j.rows; k++, row++) fps.push(msg.output.subarray(dimension * row, dimension * (row + 1)));
          j.resolve(fps);
        }
      }
      schedule();
    });
    // A crashed worker fails its batch, not the process; a fresh one takes its place.
    // ('error' needs a listener, or it would be rethrown here; 'exit' follows it.)
    worker.on('error', () => undefined);
    worker.on('exit', () => {
      failInflight(slot, 'inference worker stopped');
      const i = slots.indexOf(slot);
      if (i >= 0) slots.splice(i, 1);
      if (!closed) {
        startWorker(init).then((s) => { slots.push(attach(s.worker)); schedule(); }, () => undefined);
      }
    });
    return slot;
  };
  for (const s of started) slots.push(attach(s.worker));

  const dispatch = (slot: Slot) => {
    const jobs: Job[] = [];
    let count = 0;
    while (queue.length > 0) {
      const n = queue[0]!.rows;
      if (jobs.length > 0 && count + n > maxBatch) break;
      jobs.push(queue.shift()!);
      count += n;
    }
    setDepth(queued - count);
    const pixels = new Uint8Array(jobs.length * pixelBytes);
    const orient = new Uint8Array(jobs.length);
    jobs.forEach((j, i) => {
      pixels.set(j.pixels, i * pixelBytes);
      orient[i] = j.rows === 8 ? 1 : 0;
    });
    const id = nextId++;
    slot.busy = true;
    slot.inflight.set(id, { jobs, count, start: performance.now() });
    slot.worker.postMessage({ type: 'run', id, pixels, orient } satisfies WorkerRequest, [pixels.buffer, orient.buffer]);
  };

  /**
   * Always deferred (never dispatches inside infer()), so a request that submits many
   * images in one tick is admitted against the queue limit deterministically.
   */
  function schedule(): void {
    if (scheduled || queue.length === 0 || closed) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      const idle = slots.find((s) => !s.busy);
      if (!idle || queue.length === 0) return;
      if (queued >= maxBatch || windowMs === 0) {
        dispatch(idle);
        schedule();
        return;
      }
      // Wait a little for concurrent requests to join the batch.
      timer ??= setTimeout(() => {
        timer = undefined;
        const s = slots.find((x) => !x.busy);
        if (s && queue.length > 0) dispatch(s);
        schedule();
      }, windowMs);
    });
  }

  const vectors = 1 + windows.length;
  if (dimension % vectors !== 0) throw new ModelFileError(`model ${opts.path}: regional output of ${dimension} values is not ${vectors} vectors`);
  return {
    name: basename(opts.path),
    dimension: dimension / vectors,
    vectors,
    inputSize,
    layout,
    get queueDepth() { return queued; },
    ready: () => !closed && slots.length > 0,
    observe(o) { observer = o; },
    infer(pixels, orientations = false) {
      if (closed) return Promise.reject(new AppError('UNAVAILABLE', 'the encoder is shutting down', { retryAfter: 1 }));
      if (pixels.length !== pixelBytes) return Promise.reject(new AppError('INTERNAL', `image of ${pixels.length} bytes, expected ${pixelBytes}`));
      const rows = orientations ? 8 : 1;
      if (queued + rows > queueLimit) {
        return Promise.reject(new AppError('OVERLOADED', `inference queue is full (${queued} images waiting)`, {
          retryAfter: Math.max(1, Math.ceil(queued / Math.max(rate, 1))),
        }));
      }
      return new Promise<Float32Array[]>((resolve, reject) => {
        queue.push({ pixels, rows, resolve, reject });
        setDepth(queued + rows);
        schedule();
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      if (timer) clearTimeout(timer);
      for (const j of queue.splice(0)) j.reject(new AppError('UNAVAILABLE', 'the encoder is shutting down', { retryAfter: 1 }));
      setDepth(0);
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
  };
}
