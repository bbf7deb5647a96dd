import ort from 'onnxruntime-node';
import { ModelProtoType, ONNX_FLOAT } from './onnx-proto.schema.js';
import type { TensorRange } from './qdq-quantize.graph.js';

/**
 * Measures the value ranges of intermediate tensors of a float model over calibration
 * inputs, for static quantisation. The tensors are exposed as extra graph outputs by an
 * appended ModelProto fragment (see feature-output.graph.ts for why appending is safe).
 */

export type CalibrationMethod = 'minmax' | 'percentile';

export interface CalibrationOptions {
  method: CalibrationMethod;
  /** Share of values kept inside the range for `percentile` (both tails), e.g. 99.99. */
  percentile?: number;
  intraOpThreads?: number;
}

const BINS = 4096;

function withOutputs(bytes: Uint8Array, names: string[]): Uint8Array {
  const fragment = ModelProtoType.encode(ModelProtoType.fromObject({
    graph: { output: names.map((name) => ({ name, type: { tensor_type: { elem_type: ONNX_FLOAT } } })) },
  })).finish();
  const out = new Uint8Array(bytes.length + fragment.length);
  out.set(bytes, 0);
  out.set(fragment, bytes.length);
  return out;
}

/**
 * `inputs` yields one float tensor [1, 3, S, S] per calibration image; it is iterated once
 * for `minmax` and twice for `percentile` (ranges first, then histograms inside them).
 */
export async function calibrateRanges(
  model: Uint8Array, inputName: string, tensors: string[], inputs: () => AsyncIterable<ort.Tensor>, opts: CalibrationOptions,
): Promise<Map<string, TensorRange>> {
  const graphInput = tensors.filter((t) => t === inputName);
  const inner = tensors.filter((t) => t !== inputName);
  const session = await ort.InferenceSession.create(withOutputs(model, inner), {
    intraOpNumThreads: opts.intraOpThreads ?? 2, graphOptimizationLevel: 'basic',
  });
  const runAll = async (each: (name: string, data: Float32Array) => void) => {
    let n = 0;
    for await (const x of inputs()) {
      const out = await session.run({ [inputName]: x }, inner);
      for (const t of inner) each(t, out[t]!.data as Float32Array);
      for (const t of graphInput) each(t, x.data as Float32Array);
      n++;
    }
    if (n === 0) throw new Error('no calibration images');
  };
  try {
    const ranges = new Map<string, TensorRange>(tensors.map((t) => [t, { min: Infinity, max: -Infinity }]));
    await runAll((t, d) => {
      const r = ranges.get(t)!;
      for (let i = 0; i < d.length; i++) {
        const v = d[i]!;
        if (v < r.min) r.min = v;
        if (v > r.max) r.max = v;
      }
    });
    if (opts.method === 'minmax') return ranges;
    const keep = (opts.percentile ?? 99.99) / 100;
    const hists = new Map(tensors.map((t) => [t, new Float64Array(BINS)]));
    await runAll((t, d) => {
      const r = ranges.get(t)!;
      const h = hists.get(t)!;
      const k = (BINS - 1) / (r.max - r.min || 1);
      for (let i = 0; i < d.length; i++) h[Math.floor((d[i]! - r.min) * k)]!++;
    });
    const clipped = new Map<string, TensorRange>();
    for (const t of tensors) {
      const r = ranges.get(t)!;
      const h = hists.get(t)!;
      let total = 0;
      for (const c of h) total += c;
      const tail = (total * (1 - keep)) / 2;
      const width = (r.max - r.min) / (BINS - 1);
      let lo = 0;
      for (let acc = 0; lo < BINS - 1 && acc + h[lo]! <= tail; lo++) acc += h[lo]!;
      let hi = BINS - 1;
      for (let acc = 0; hi > lo && acc + h[hi]! <= tail; hi--) acc += h[hi]!;
      // A tensor that is never negative (a Relu output) keeps 0 as its floor.
      clipped.set(t, { min: r.min >= 0 ? r.min : r.min + lo * width, max: r.min + (hi + 1) * width });
    }
    return clipped;
  } finally {
    await session.release();
  }
}
