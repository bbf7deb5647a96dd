import {
  ONNX_FLOAT, ONNX_INT32, ONNX_INT8, ONNX_UINT8, decodeModel, encodeModel,
  type OnnxGraph, type OnnxModel, type OnnxNode, type OnnxTensor,
} from './onnx-proto.schema.js';

/**
 * Static QDQ quantisation of a convolutional model, the format onnxruntime's CPU provider
 * fuses into integer kernels (QLinearConv, QLinearAdd): every Conv gets
 * DequantizeLinear(int8 weight, per-output-channel scale) and DequantizeLinear(int32 bias,
 * scale = input scale x weight scale); every activation entering or leaving a Conv, Add or
 * MaxPool goes through QuantizeLinear -> DequantizeLinear with a uint8 scale/zero point
 * from calibrated ranges. A Relu that is the only consumer of a Conv/Add output is folded
 * into that output's QuantizeLinear: its range starts at 0, so zero point 0 clips the
 * negatives exactly as the Relu did. MaxPool keeps its input's parameters (max commutes
 * with a monotonic quantiser), which lets onnxruntime run it on the uint8 tensor directly.
 */

export interface TensorRange { min: number; max: number }

export interface QuantizeOptions {
  /**
   * Largest weight magnitude in int8 steps. 127 uses the full range; 63 ("reduce range")
   * keeps u8 x s8 pair sums inside int16, which x86 CPUs without VNNI need
   * (AVX2 `vpmaddubsw` saturates otherwise).
   */
  weightQmax?: number;
  /** Written into the model's metadata (source file hash, calibration method...). */
  metadata?: Record<string, string>;
}

/** The tensors whose ranges the calibration must measure, and which node folds which Relu. */
export interface QuantizationPlan {
  /** Activation tensors to calibrate (graph input included). */
  tensors: string[];
  /** Conv/Add output -> the Relu output whose range (and name) it takes over. */
  foldedRelu: Map<string, string>;
  /** MaxPool output -> its input: quantised with the same parameters. */
  sharedParams: Map<string, string>;
}

const QUANTISED_OPS = new Set(['Conv', 'Add', 'MaxPool']);

function consumersOf(graph: OnnxGraph): Map<string, OnnxNode[]> {
  const m = new Map<string, OnnxNode[]>();
  for (const n of graph.node ?? []) for (const i of n.input ?? []) if (i) m.set(i, [...(m.get(i) ?? []), n]);
  return m;
}

/** Decides, from the graph alone, which tensors carry quantised values. */
export function planQuantization(model: OnnxModel): QuantizationPlan {
  const graph = model.graph;
  if (!graph) throw new Error('the model holds no graph');
  const weights = new Set((graph.initializer ?? []).map((t) => t.name));
  const outputs = new Set((graph.output ?? []).map((o) => o.name));
  const consumers = consumersOf(graph);
  const tensors = new Set<string>();
  const foldedRelu = new Map<string, string>();
  const sharedParams = new Map<string, string>();
  for (const node of graph.node ?? []) {
    if (!QUANTISED_OPS.has(node.op_type)) continue;
    const inputs = node.op_type === 'Conv' ? [node.input?.[0] ?? ''] : (node.input ?? []);
    if (inputs.some((i) => i === '' || weights.has(i))) {
      if (node.op_type === 'Conv') throw new Error(`Conv ${node.name ?? ''} has a constant input: not supported`);
      continue; // an Add with a constant is a bias, left in float
    }
    for (const i of inputs) tensors.add(i);
    const out = node.output?.[0];
    if (!out) continue;
    if (node.op_type === 'MaxPool') {
      sharedParams.set(out, inputs[0]!);
      continue;
    }
    const next = consumers.get(out) ?? [];
    if (next.length === 1 && next[0]!.op_type === 'Relu' && !outputs.has(out)) {
      foldedRelu.set(out, next[0]!.output![0]!);
      tensors.add(next[0]!.output![0]!);
    } else {
      tensors.add(out);
    }
  }
  for (const [out, src] of sharedParams) if (tensors.has(out) && !tensors.has(src)) tensors.add(src);
  for (const out of sharedParams.keys()) tensors.delete(out);
  return { tensors: [...tensors], foldedRelu, sharedParams };
}

interface QParams { scale: number; zeroPoint: number }

/** Asymmetric uint8 parameters of a range; the range always holds 0 so that 0 is exact. */
export function uint8Params(r: TensorRange): QParams {
  const lo = Math.min(r.min, 0);
  const hi = Math.max(r.max, 0);
  const scale = hi > lo ? (hi - lo) / 255 : 1;
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-lo / scale)));
  return { scale, zeroPoint };
}

function floatsOf(t: OnnxTensor): Float32Array {
  if (t.data_type !== ONNX_FLOAT) throw new Error(`initializer ${t.name} is not float32`);
  if (t.raw_data && t.raw_data.length > 0) {
    const copy = new Uint8Array(t.raw_data); // aligned copy: raw_data may sit at any offset
    return new Float32Array(copy.buffer, 0, copy.length / 4);
  }
  return Float32Array.from(t.float_data ?? []);
}

const tensor = (name: string, dataType: number, dims: number[], data: ArrayBufferView): OnnxTensor => ({
  name, dims, data_type: dataType, raw_data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
});

/** Per-output-channel symmetric int8 weights: scale_c = max|w_c| / qmax, zero point 0. */
export function quantizeWeights(w: Float32Array, channels: number, qmax: number): { q: Int8Array; scales: Float32Array } {
  const per = w.length / channels;
  const q = new Int8Array(w.length);
  const scales = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    let m = 0;
    for (let i = c * per; i < (c + 1) * per; i++) m = Math.max(m, Math.abs(w[i]!));
    const s = m > 0 ? m / qmax : 1;
    scales[c] = s;
    for (let i = c * per; i < (c + 1) * per; i++) q[i] = Math.max(-qmax, Math.min(qmax, Math.round(w[i]! / s)));
  }
  return { q, scales };
}

/**
 * Builds the QDQ model. `ranges` must hold every tensor of `planQuantization(model).tensors`.
 * The input model is decoded with the schema subset and re-encoded: the quantiser refuses
 * ops outside the ones it knows rather than risk dropping attributes it cannot see.
 */
export function quantizeModel(bytes: Uint8Array, ranges: Map<string, TensorRange>, opts: QuantizeOptions = {}): Uint8Array {
  const model = decodeModel(bytes);
  const graph = model.graph;
  if (!graph) throw new Error('the model holds no graph');
  const known = new Set(['Conv', 'Relu', 'Add', 'MaxPool', 'GlobalAveragePool', 'AveragePool', 'Flatten', 'Reshape', 'Gemm', 'Identity', 'Softmax', 'Concat']);
  for (const n of graph.node ?? []) if (!known.has(n.op_type)) throw new Error(`op ${n.op_type} is not supported by the quantiser`);
  const opset = (model.opset_import ?? []).find((o) => !o.domain)?.version ?? 0;
  if (opset < 13) throw new Error(`opset ${opset}: per-channel DequantizeLinear needs opset >= 13`);
  const qmax = opts.weightQmax ?? 127;
  const plan = planQuantization(model);
  const params = new Map<string, QParams>();
  for (const t of plan.tensors) {
    const r = ranges.get(t);
    if (!r) throw new Error(`no calibrated range for tensor ${t}`);
    params.set(t, uint8Params(r));
  }
  for (const [out, src] of plan.sharedParams) params.set(out, params.get(src)!);

  const inits = new Map((graph.initializer ?? []).map((t) => [t.name, t]));
  const newInits: OnnxTensor[] = [];
  const dropped = new Set<string>();
  const nodes: OnnxNode[] = [];
  /** Quantised tensor -> name of its uint8 (QuantizeLinear output) value. */
  const quantised = new Map<string, string>();
  let dqCount = 0;

  const scalarParams = (t: string) => {
    const p = params.get(t)!;
    const s = `${t}__scale`;
    const z = `${t}__zp`;
    if (!inits.has(s)) {
      const st = tensor(s, ONNX_FLOAT, [], Float32Array.of(p.scale));
      const zt = tensor(z, ONNX_UINT8, [], Uint8Array.of(p.zeroPoint));
      inits.set(s, st);
      inits.set(z, zt);
      newInits.push(st, zt);
    }
    return [s, z] as const;
  };
  /** Emits QuantizeLinear of float `src` under the parameters of `t`. */
  const emitQuantize = (t: string, src: string) => {
    const [s, z] = scalarParams(t);
    const q = `${t}__q`;
    nodes.push({ op_type: 'QuantizeLinear', name: `${t}__quantize`, input: [src, s, z], output: [q] });
    quantised.set(t, q);
  };
  /** A fresh DequantizeLinear per consumer, the node-unit shape onnxruntime's fusions expect. */
  const dequantized = (t: string, name?: string) => {
    const [s, z] = scalarParams(t);
    const out = name ?? `${t}__dq${dqCount++}`;
    nodes.push({ op_type: 'DequantizeLinear', name: `${out}__dequantize`, input: [quantised.get(t)!, s, z], output: [out] });
    return out;
  };

  const graphInput = (graph.input ?? []).find((i) => !inits.has(i.name))?.name;
  if (graphInput && params.has(graphInput)) emitQuantize(graphInput, graphInput);

  const foldedReluOutputs = new Map([...plan.foldedRelu].map(([o, r]) => [r, o]));
  for (const node of graph.node ?? []) {
    if (node.op_type === 'Relu' && foldedReluOutputs.has(node.output?.[0] ?? '')) continue;
    const inputs = [...(node.input ?? [])];
    if (node.op_type === 'Conv') {
      const x = inputs[0]!;
      const w = inits.get(inputs[1] ?? '');
      if (!w || w.dims?.length !== 4) throw new Error(`Conv ${node.name ?? ''}: weight is not a 4-D initializer`);
      const cout = Number(w.dims[0]);
      const { q, scales } = quantizeWeights(floatsOf(w), cout, qmax);
      const wq = tensor(`${w.name}__int8`, ONNX_INT8, w.dims.map(Number), q);
      const ws = tensor(`${w.name}__scale`, ONNX_FLOAT, [cout], scales);
      const wz = tensor(`${w.name}__zp`, ONNX_INT8, [cout], new Int8Array(cout));
      newInits.push(wq, ws, wz);
      dropped.add(w.name);
      nodes.push({
        op_type: 'DequantizeLinear', name: `${w.name}__dequantize`, input: [wq.name, ws.name, wz.name],
        output: [`${w.name}__dq`], attribute: [{ name: 'axis', type: 2, i: 0 }],
      });
      inputs[1] = `${w.name}__dq`;
      const bName = inputs[2];
      if (bName) {
        const b = inits.get(bName);
        if (!b) throw new Error(`Conv ${node.name ?? ''}: bias is not an initializer`);
        const sx = params.get(x)!.scale;
        const bias = floatsOf(b);
        const bq = new Int32Array(cout);
        const bs = new Float32Array(cout);
        for (let c = 0; c < cout; c++) {
          bs[c] = sx * scales[c]!;
          bq[c] = Math.round(bias[c]! / bs[c]!);
        }
        newInits.push(
          tensor(`${bName}__int32`, ONNX_INT32, [cout], bq),
          tensor(`${bName}__scale`, ONNX_FLOAT, [cout], bs),
          tensor(`${bName}__zp`, ONNX_INT32, [cout], new Int32Array(cout)),
        );
        dropped.add(bName);
        nodes.push({
          op_type: 'DequantizeLinear', name: `${bName}__dequantize`, input: [`${bName}__int32`, `${bName}__scale`, `${bName}__zp`],
          output: [`${bName}__dq`], attribute: [{ name: 'axis', type: 2, i: 0 }],
        });
        inputs[2] = `${bName}__dq`;
      }
    }
    for (let k = 0; k < inputs.length; k++) {
      const i = inputs[k]!;
      if (quantised.has(i) && !(node.op_type === 'Conv' && k > 0)) inputs[k] = dequantized(i);
    }
    const out = node.output?.[0] ?? '';
    const relu = plan.foldedRelu.get(out);
    nodes.push({ ...node, input: inputs });
    if (relu !== undefined) emitQuantize(relu, out);
    else if (params.has(out)) emitQuantize(out, out);
  }
  const graphOutputs = new Set((graph.output ?? []).map((o) => o.name));
  // A quantised tensor that is also a graph output keeps its name, as a dequantised value.
  for (const t of graphOutputs) if (quantised.has(t)) throw new Error(`graph output ${t} would be quantised`);

  const out: OnnxModel = {
    ir_version: model.ir_version,
    producer_name: 'doppel-qdq-quantizer',
    opset_import: model.opset_import,
    metadata_props: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: graph.name,
      node: nodes,
      initializer: [...(graph.initializer ?? []).filter((t) => !dropped.has(t.name)), ...newInits],
      input: graph.input,
      output: graph.output,
    },
  };
  return encodeModel(out);
}

/** The metadata a quantised model was written with (empty for other models). */
export function modelMetadata(bytes: Uint8Array): Record<string, string> {
  const m = decodeModel(bytes);
  return Object.fromEntries((m.metadata_props ?? []).map((p) => [p.key, p.value]));
}
