import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { AppError } from '@doppel/service-kit';
import { ORIENTATION_ROWS, type Orientations } from '@doppel/schemas';
import { REGIONAL_OUTPUT, exposeRegional, featureMapOf, inspectModel, type ModelLayout, type Pooling, type Window } from './feature-output.graph.js';
import { ModelFileError, WorkerPool, type WorkerInit } from './inference-worker.pool.js';
import { MicroBatchQueue, type ModelObserver } from './micro-batch.queue.js';
import { modelMetadata } from './qdq-quantize.graph.js';

export { ModelFileError, type WorkerInit, type WorkerReply, type WorkerRequest } from './inference-worker.pool.js';
export type { ModelObserver } from './micro-batch.queue.js';

export interface ModelOptions {
  path: string;
  /**
   * Expected sha256 (hex); checked when non-empty. A quantised model passes when it was
   * made from a file with this hash (its `doppel.source_sha256` metadata).
   */
  sha256?: string;
  featureTensor?: string;
  /** Input side; 0 = from the model (224 when the model leaves it dynamic). */
  inputSize?: number;
  workers?: number;
  intraOpThreads?: number;
  /** onnxruntime's intra-op threads spin between runs (off by default: INTRA_OP_SPINNING). */
  spinning?: boolean;
  maxBatch?: number;
  batchWindowMs?: number;
  queueLimit?: number;
  /** Windows of the feature map pooled besides the whole map (regional fingerprints); none by default. */
  regions?: readonly Window[];
  /** How the map is pooled into a vector: average (default) or generalised mean. */
  pooling?: Pooling;
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
   * `orientations` turns / all, its 4 / 8 in ORIENTATION_NAMES order, from one session.run.
   * Admission is synchronous: a full queue rejects with OVERLOADED before this returns.
   */
  infer(pixels: Uint8Array, orientations?: Orientations): Promise<Float32Array[]>;
  ready(): boolean;
  observe(observer: ModelObserver): void;
  close(): Promise<void>;
}

async function readModelBytes(path: string, sha256: string | undefined): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new ModelFileError(`cannot read model ${path}: ${(e as Error).message}`);
  }
  if (sha256) {
    const got = createHash('sha256').update(bytes).digest('hex');
    if (got !== sha256) {
      let source: string | undefined;
      try { source = modelMetadata(bytes)['doppel.source_sha256']; } catch { /* not an ONNX file: reported below */ }
      if (source !== sha256) throw new ModelFileError(`model ${path} has sha256 ${got}${source ? ` (quantised from ${source})` : ''}, expected ${sha256}`);
    }
  }
  return bytes;
}

/** Reads and checks the model file; returns what a worker needs to open it. */
async function prepareInit(opts: ModelOptions): Promise<{ init: WorkerInit; layout: ModelLayout }> {
  let bytes = await readModelBytes(opts.path, opts.sha256);
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
    const pooling = opts.pooling ?? 'gap';
    bytes = exposeRegional(bytes, map, windows, pooling);
    layout = { ...layout, featureTensor: REGIONAL_OUTPUT, isGraphOutput: true, reason: `${layout.reason}; ${pooling} pooling of ${map} over the whole map and ${windows.length} regions` };
  }
  if (layout.channels !== undefined && layout.channels !== 3) throw new ModelFileError(`model ${opts.path} wants ${layout.channels} input channels, not 3 (RGB)`);
  const inputSize = opts.inputSize || layout.inputSize || 224;
  if (layout.inputSize !== undefined && layout.inputSize !== inputSize) {
    throw new ModelFileError(`INPUT_SIZE ${inputSize} differs from the model's fixed input ${layout.inputSize}`);
  }
  return {
    layout,
    init: {
      type: 'init', model: bytes, featureTensor: layout.featureTensor, isGraphOutput: layout.isGraphOutput,
      inputName: layout.inputName, inputSize, intraOpThreads: opts.intraOpThreads ?? 2, spinning: opts.spinning ?? false,
    },
  };
}

/**
 * Loads the model into worker threads (inference-worker.pool.ts) behind a micro-batching
 * queue (micro-batch.queue.ts).
 */
export async function loadOnnxModel(opts: ModelOptions): Promise<EncoderModel> {
  const { init, layout } = await prepareInit(opts);
  const queue = new MicroBatchQueue({
    maxBatch: opts.maxBatch ?? 16,
    windowMs: opts.batchWindowMs ?? 2,
    queueLimit: opts.queueLimit ?? 256,
    pixelBytes: 3 * init.inputSize * init.inputSize,
  });
  const pool = await WorkerPool.start(init, opts.workers ?? 1, () => queue.schedule());
  queue.bind(pool);
  let closed = false;
  const vectors = 1 + (opts.regions?.length ?? 0);
  if (pool.dimension % vectors !== 0) throw new ModelFileError(`model ${opts.path}: regional output of ${pool.dimension} values is not ${vectors} vectors`);
  return {
    name: basename(opts.path),
    dimension: pool.dimension / vectors,
    vectors,
    inputSize: init.inputSize,
    layout,
    get queueDepth() { return queue.depth; },
    ready: () => !closed && pool.size > 0,
    observe: (o) => queue.observe(o),
    infer: (pixels, orientations = 'none') => (closed
      ? Promise.reject(new AppError('UNAVAILABLE', 'the encoder is shutting down', { retryAfter: 1 }))
      : queue.submit(pixels, ORIENTATION_ROWS[orientations])),
    async close() {
      if (closed) return;
      closed = true;
      queue.close();
      await pool.close();
    },
  };
}
