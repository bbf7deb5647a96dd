import { Worker } from 'node:worker_threads';

/** Messages main -> worker. */
export interface WorkerInit {
  type: 'init';
  model: Uint8Array;
  featureTensor: string;
  isGraphOutput: boolean;
  inputName: string;
  inputSize: number;
  intraOpThreads: number;
  /** Let onnxruntime's idle intra-op threads spin for the next run (see INTRA_OP_SPINNING). */
  spinning: boolean;
}
/** `pixels`: the RGB bytes (HWC) of each image back to back; `orient[i]`: how many of its orientations image i runs (1, 4 or 8, ORIENTATION_NAMES order). */
export type WorkerRequest = WorkerInit | { type: 'run'; id: number; pixels: Uint8Array; orient: Uint8Array };
/** Messages worker -> main. */
export type WorkerReply =
  | { type: 'ready'; dimension: number; output: string }
  | { type: 'init-error'; message: string }
  | { type: 'result'; id: number; output: Float32Array }
  | { type: 'run-error'; id: number; message: string };

export class ModelFileError extends Error {}

/** One inference worker thread and the run it is busy with (at most one at a time). */
export interface WorkerSlot {
  readonly worker: Worker;
  busy: boolean;
  inflight: Map<number, { resolve: (out: Float32Array) => void; reject: (e: Error) => void }>;
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

/** Starts one worker and waits until its session is ready; a bad model rejects with ModelFileError. */
export function startWorker(init: WorkerInit): Promise<{ worker: Worker; dimension: number }> {
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
 * A fixed set of inference workers. A crashed worker fails its run, not the process, and a
 * fresh one takes its place; `onIdle` fires whenever a worker becomes free.
 */
export class WorkerPool {
  private readonly slots: WorkerSlot[] = [];
  private nextId = 1;
  private closed = false;

  private constructor(private readonly init: WorkerInit, readonly dimension: number, private readonly onIdle: () => void) {}

  static async start(init: WorkerInit, count: number, onIdle: () => void): Promise<WorkerPool> {
    const started = await Promise.all(Array.from({ length: count }, () => startWorker(init)));
    const pool = new WorkerPool(init, started[0]!.dimension, onIdle);
    for (const s of started) pool.attach(s.worker);
    return pool;
  }

  get size(): number { return this.slots.length; }

  idleSlot(): WorkerSlot | undefined {
    return this.slots.find((s) => !s.busy);
  }

  /** One session.run of a micro-batch on `slot`; resolves with the L2-normalised rows. */
  run(slot: WorkerSlot, pixels: Uint8Array<ArrayBuffer>, orient: Uint8Array<ArrayBuffer>): Promise<Float32Array> {
    const id = this.nextId++;
    slot.busy = true;
    return new Promise((resolve, reject) => {
      slot.inflight.set(id, { resolve, reject });
      slot.worker.postMessage({ type: 'run', id, pixels, orient } satisfies WorkerRequest, [pixels.buffer, orient.buffer]);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private attach(worker: Worker): void {
    const slot: WorkerSlot = { worker, busy: false, inflight: new Map() };
    worker.on('message', (msg: WorkerReply) => {
      if (msg.type !== 'result' && msg.type !== 'run-error') return;
      const run = slot.inflight.get(msg.id);
      if (!run) return;
      slot.inflight.delete(msg.id);
      slot.busy = false;
      if (msg.type === 'run-error') run.reject(new Error(msg.message));
      else run.resolve(msg.output);
      this.onIdle();
    });
    // 'error' needs a listener, or it would be rethrown here; 'exit' follows it.
    worker.on('error', () => undefined);
    worker.on('exit', () => {
      for (const r of slot.inflight.values()) r.reject(new Error('inference worker stopped'));
      slot.inflight.clear();
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      if (!this.closed) {
        startWorker(this.init).then((s) => { this.attach(s.worker); this.onIdle(); }, () => undefined);
      }
    });
    this.slots.push(slot);
  }
}
