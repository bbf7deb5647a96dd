/**
 * Inference worker: owns one onnxruntime session, so session.run never blocks the
 * event loop that serves HTTP. Protocol: see WorkerRequest / WorkerReply in inference-worker.pool.ts.
 */
import { parentPort } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { exposeFeature } from './feature-output.graph.js';
import { expandOrientations, rgbToTensor } from './tensor-layout.transform.js';
import type { WorkerInit, WorkerReply, WorkerRequest } from './inference-worker.pool.js';

if (!parentPort) throw new Error('inference.worker must run as a worker thread');
const port = parentPort;

let session: ort.InferenceSession | undefined;
let inputName = '';
let outputName = '';
let inputSize = 0;
let dimension = 0;

const post = (msg: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

async function createSession(bytes: Uint8Array, threads: number, spinning: boolean): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // Spinning threads wait for the next run by burning a core. On a machine where the
    // encoder shares the cores with image decoding and the other services, that time is
    // taken from them (bench/encoder/spinning.bench.ts prints the CPU per image).
    extra: { session: { intra_op: { allow_spinning: spinning ? '1' : '0' } } },
  });
}

/**
 * The rank of the feature tensor is only known once the graph runs, so a first session
 * exposes it raw and runs one blank image; a 4-D map is then pooled in the real session.
 */
async function init(msg: WorkerInit): Promise<void> {
  inputName = msg.inputName;
  inputSize = msg.inputSize;
  const raw = exposeFeature(msg.model, msg.featureTensor, false, msg.isGraphOutput);
  const probe = await createSession(raw.bytes, 1, false);
  const blank = new ort.Tensor('float32', new Float32Array(3 * inputSize * inputSize), [1, 3, inputSize, inputSize]);
  const out = (await probe.run({ [inputName]: blank }, [raw.output]))[raw.output];
  const dims = out?.dims ?? [];
  await probe.release();
  if (dims.length === 4) {
    const pooled = exposeFeature(msg.model, msg.featureTensor, true, msg.isGraphOutput);
    session = await createSession(pooled.bytes, msg.intraOpThreads, msg.spinning);
    outputName = pooled.output;
    dimension = Number(dims[1]);
  } else if (dims.length === 2) {
    session = await createSession(raw.bytes, msg.intraOpThreads, msg.spinning);
    outputName = raw.output;
    dimension = Number(dims[1]);
  } else {
    throw new Error(`feature tensor ${msg.featureTensor} has shape [${dims.join(', ')}]; expected [N, C] or [N, C, H, W]`);
  }
}

/**
 * One session.run over the whole micro-batch. Normalisation, orientations and the L2
 * normalisation of the outputs happen here, off the main thread.
 */
async function run(id: number, pixels: Uint8Array, orient: Uint8Array): Promise<void> {
  if (!session) throw new Error('session not initialised');
  const plane = 3 * inputSize * inputSize;
  const pixelBytes = plane;
  let count = 0;
  for (const o of orient) count += o;
  const input = new Float32Array(count * plane);
  let row = 0;
  for (let i = 0; i < orient.length; i++) {
    rgbToTensor(pixels.subarray(i * pixelBytes, (i + 1) * pixelBytes), inputSize, input, row * plane);
    if (orient[i]! > 1) expandOrientations(input, inputSize, row * plane, orient[i]);
    row += orient[i]!;
  }
  const x = new ort.Tensor('float32', input, [count, 3, inputSize, inputSize]);
  const result = (await session.run({ [inputName]: x }, [outputName]))[outputName];
  if (!result) throw new Error(`output ${outputName} missing`);
  const data = result.data as Float32Array;
  const out = new Float32Array(count * dimension);
  for (let r = 0; r < count; r++) {
    let ss = 0;
    const off = r * dimension;
    for (let i = 0; i < dimension; i++) ss += data[off + i]! * data[off + i]!;
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let i = 0; i < dimension; i++) out[off + i] = data[off + i]! * inv;
  }
  post({ type: 'result', id, output: out }, [out.buffer]);
}

port.on('message', (msg: WorkerRequest) => {
  if (msg.type === 'init') {
    init(msg).then(
      () => post({ type: 'ready', dimension, output: outputName }),
      (e: unknown) => post({ type: 'init-error', message: (e as Error).message }),
    );
  } else if (msg.type === 'run') {
    run(msg.id, msg.pixels, msg.orient).catch((e: unknown) => post({ type: 'run-error', id: msg.id, message: (e as Error).message }));
  }
});
