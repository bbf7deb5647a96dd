import { ModelProtoType, ONNX_FLOAT, ONNX_INT64, decodeModel, type OnnxGraph, type OnnxNode, type OnnxTensor } from './onnx-proto.schema.js';

export interface ModelLayout {
  inputName: string;
  /** Side of the square input when the model fixes it. */
  inputSize: number | undefined;
  channels: number | undefined;
  /** The tensor whose (pooled) value is the fingerprint. */
  featureTensor: string;
  /** Why that tensor: shown in logs so a wrong guess is easy to spot. */
  reason: string;
  /** The feature tensor already is a graph output. */
  isGraphOutput: boolean;
}

/** Ops a classification head is made of, after the features and after the classifier. */
const HEAD_PASSTHROUGH = new Set([
  'Softmax', 'LogSoftmax', 'Flatten', 'Reshape', 'Squeeze', 'Identity', 'Dropout', 'Relu',
  'GlobalAveragePool', 'AveragePool', 'ReduceMean', 'Sigmoid',
]);
const POOLING = new Set(['GlobalAveragePool', 'AveragePool', 'ReduceMean']);

export class ModelLayoutError extends Error {}

function producers(graph: OnnxGraph): Map<string, OnnxNode> {
  const m = new Map<string, OnnxNode>();
  for (const n of graph.node ?? []) for (const o of n.output ?? []) m.set(o, n);
  return m;
}

/** The first non-initializer input of the node (its activation input). */
function activationInput(node: OnnxNode, weights: Set<string>): string | undefined {
  return (node.input ?? []).find((i) => i !== '' && !weights.has(i));
}

/** A 1x1 convolution: the shape of a convolutional classifier, unlike feature convs. */
function isPointwise(node: OnnxNode, graph: OnnxGraph): boolean {
  const ks = node.attribute?.find((a) => a.name === 'kernel_shape')?.ints;
  if (ks) return ks.every((k) => Number(k) === 1);
  const w = graph.initializer?.find((t) => t.name === node.input?.[1]);
  return w?.dims !== undefined && w.dims.length === 4 && Number(w.dims[2]) === 1 && Number(w.dims[3]) === 1;
}

/**
 * Walks back from the model's output through the head ops. A Gemm/MatMul there, or a
 * pointwise Conv followed by pooling (SqueezeNet), is the classifier: the features are its
 * input. When no classifier is found the output itself is taken (a feature model).
 */
function findFeatureTensor(graph: OnnxGraph, weights: Set<string>): { tensor: string; reason: string } {
  const output = graph.output?.[0]?.name;
  if (!output) throw new ModelLayoutError('the model has no output');
  const byOutput = producers(graph);
  let cur = output;
  let pooledAfter = false;
  for (let steps = 0; steps < 64; steps++) {
    const node = byOutput.get(cur);
    if (!node) break;
    const op = node.op_type;
    const act = activationInput(node, weights);
    if (act === undefined) break;
    if (op === 'Gemm' || op === 'MatMul') {
      return { tensor: act, reason: `input of the classifier ${op} ${node.name ?? ''}`.trim() };
    }
    if (op === 'Conv' && pooledAfter && isPointwise(node, graph)) {
      return { tensor: act, reason: `input of the convolutional classifier ${node.name ?? ''}`.trim() };
    }
    // A bias Add/Mul with a constant belongs to the head; a residual Add does not.
    const isConstAffine = (op === 'Add' || op === 'Mul') && (node.input ?? []).some((i) => weights.has(i));
    if (!HEAD_PASSTHROUGH.has(op) && !isConstAffine) break;
    if (POOLING.has(op)) pooledAfter = true;
    cur = act;
  }
  return { tensor: output, reason: 'the model output (no classifier head found)' };
}

export function inspectModel(bytes: Uint8Array, featureTensor = ''): ModelLayout {
  const model = decodeModel(bytes);
  const graph = model.graph;
  if (!graph) throw new ModelLayoutError('the file holds no ONNX graph');
  const weights = new Set((graph.initializer ?? []).map((t) => t.name));
  const input = (graph.input ?? []).find((i) => !weights.has(i.name));
  if (!input) throw new ModelLayoutError('the model has no input');
  const dims = input.type?.tensor_type?.shape?.dim ?? [];
  const fixed = (i: number) => {
    const v = dims[i]?.dim_value;
    return typeof v === 'number' && v > 0 ? v : undefined;
  };
  const h = fixed(2);
  const w = fixed(3);
  if (h !== undefined && w !== undefined && h !== w) {
    throw new ModelLayoutError(`only square inputs are supported, the model wants ${h}x${w}`);
  }
  let chosen: { tensor: string; reason: string };
  if (featureTensor) {
    const known = (graph.node ?? []).some((n) => (n.output ?? []).includes(featureTensor));
    if (!known) throw new ModelLayoutError(`FEATURE_TENSOR ${featureTensor} is not produced by any node of the model`);
    chosen = { tensor: featureTensor, reason: 'FEATURE_TENSOR' };
  } else {
    chosen = findFeatureTensor(graph, weights);
  }
  return {
    inputName: input.name,
    inputSize: h,
    channels: fixed(1),
    featureTensor: chosen.tensor,
    reason: chosen.reason,
    isGraphOutput: (graph.output ?? []).some((o) => o.name === chosen.tensor),
  };
}

export const POOLED_OUTPUT = 'doppel_fingerprint';

/**
 * Returns the model with `tensor` exposed as a graph output, pooled to [N, C] when
 * `pool` is set. Protobuf merges a repeated field across concatenated messages, so the
 * edit is an appended ModelProto fragment holding only the new nodes and output: the
 * original bytes (weights, fields this subset does not know) are kept untouched.
 */
export function exposeFeature(bytes: Uint8Array, tensor: string, pool: boolean, isGraphOutput: boolean): { bytes: Uint8Array; output: string } {
  if (!pool && isGraphOutput) return { bytes, output: tensor };
  const output = pool ? POOLED_OUTPUT : tensor;
  const node: OnnxNode[] = pool
    ? [
        { op_type: 'GlobalAveragePool', name: 'doppel_gap', input: [tensor], output: [`${POOLED_OUTPUT}_map`] },
        {
          op_type: 'Flatten', name: 'doppel_flatten', input: [`${POOLED_OUTPUT}_map`], output: [POOLED_OUTPUT],
          attribute: [{ name: 'axis', type: 2, i: 1 }],
        },
      ]
    : [];
  const fragment = ModelProtoType.encode(ModelProtoType.fromObject({
    graph: { node, output: [{ name: output, type: { tensor_type: { elem_type: ONNX_FLOAT } } }] },
  })).finish();
  const out = new Uint8Array(bytes.length + fragment.length);
  out.set(bytes, 0);
  out.set(fragment, bytes.length);
  return { bytes: out, output };
}

/** [top, left, bottom, right] as fractions of the feature map. */
export type Window = readonly [number, number, number, number];

/**
 * R-MAC's grid (Tolias et al. 2016) for a square map: level l has l x l windows of side
 * 2/(l+1), evenly spaced. Levels 2 and 3 give 4 windows of 2/3 and 9 of 1/2 of the side:
 * a crop keeping a quarter to a half of each side meets one of them.
 */
export function rmacWindows(levels: readonly number[] = [2, 3]): Window[] {
  const out: Window[] = [];
  for (const l of levels) {
    const side = 2 / (l + 1);
    const starts = Array.from({ length: l }, (_, i) => (l === 1 ? 0 : (i * (1 - side)) / (l - 1)));
    for (const y of starts) for (const x of starts) out.push([y, x, y + side, x + side]);
  }
  return out;
}

export type Pooling = 'gap' | 'gem';
export const REGIONAL_OUTPUT = 'doppel_regional';
/** GeM exponent: 3 is the usual choice for ReLU maps (Radenovic et al.). */
const GEM_P = 3;

/**
 * The map a fingerprint tensor was pooled from: through Flatten/Reshape/Squeeze back to a
 * GlobalAveragePool/ReduceMean, whose input is the map. A tensor with no pooling before
 * it is taken to be the map itself.
 */
export function featureMapOf(bytes: Uint8Array, tensor: string): string {
  const graph = decodeModel(bytes).graph;
  if (!graph) throw new ModelLayoutError('the file holds no ONNX graph');
  const weights = new Set((graph.initializer ?? []).map((t) => t.name));
  const byOutput = producers(graph);
  let cur = tensor;
  for (let steps = 0; steps < 8; steps++) {
    const node = byOutput.get(cur);
    const act = node && activationInput(node, weights);
    if (!node || act === undefined) break;
    if (node.op_type === 'GlobalAveragePool' || node.op_type === 'ReduceMean') return act;
    if (!['Flatten', 'Reshape', 'Squeeze', 'Identity'].includes(node.op_type)) break;
    cur = act;
  }
  return tensor;
}

/**
 * Appends the pooling of the whole map and of each window (average, or GeM), each
 * L2-normalised, concatenated into `doppel_regional` = [N, (1 + windows) * C]. Window
 * bounds are computed in the graph from the map's shape (floor of the start, ceiling of
 * the end), so any input size works; one forward pass gives every regional vector.
 */
export function exposeRegional(bytes: Uint8Array, map: string, windows: readonly Window[], pooling: Pooling): Uint8Array {
  const node: OnnxNode[] = [];
  const initializer: OnnxTensor[] = [];
  const p = 'doppel_r';
  const ints = (name: string, v: number[]) => { initializer.push({ name, dims: [v.length], data_type: ONNX_INT64, int64_data: v }); return name; };
  const floats = (name: string, v: number[], dims = [v.length]) => { initializer.push({ name, dims, data_type: ONNX_FLOAT, float_data: v }); return name; };
  const op = (op_type: string, input: string[], out: string, attribute: OnnxNode['attribute'] = []) => {
    node.push({ op_type, name: out, input, output: [out], attribute });
    return out;
  };
  const INT = 2;
  const toType = (t: number) => [{ name: 'to', type: INT, i: t }];
  const src = pooling === 'gem' ? op('Pow', [map, floats(`${p}_p`, [GEM_P], [])], `${p}_pow`) : map;
  const hw = op('Cast', [op('Gather', [op('Shape', [map], `${p}_shape`), ints(`${p}_hw_idx`, [2, 3])], `${p}_hw`, [{ name: 'axis', type: INT, i: 0 }])], `${p}_hwf`, toType(ONNX_FLOAT));
  const axes = ints(`${p}_axes`, [2, 3]);
  const vector = (x: string, name: string) => {
    let v = op('GlobalAveragePool', [x], `${name}_gap`);
    if (pooling === 'gem') v = op('Pow', [v, floats(`${name}_inv_p`, [1 / GEM_P], [])], `${name}_root`);
    v = op('Flatten', [v], `${name}_flat`, [{ name: 'axis', type: INT, i: 1 }]);
    return op('LpNormalization', [v], `${name}_norm`, [{ name: 'axis', type: INT, i: 1 }, { name: 'p', type: INT, i: 2 }]);
  };
  const parts = [vector(src, `${p}_whole`)];
  windows.forEach(([t, l, b, r], i) => {
    const w = `${p}_w${i}`;
    const start = op('Cast', [op('Floor', [op('Mul', [hw, floats(`${w}_s`, [t, l])], `${w}_sm`)], `${w}_sf`)], `${w}_start`, toType(ONNX_INT64));
    const end = op('Cast', [op('Ceil', [op('Mul', [hw, floats(`${w}_e`, [b, r])], `${w}_em`)], `${w}_ec`)], `${w}_end`, toType(ONNX_INT64));
    parts.push(vector(op('Slice', [src, start, end, axes], `${w}_slice`), w));
  });
  op('Concat', parts, REGIONAL_OUTPUT, [{ name: 'axis', type: INT, i: 1 }]);
  const fragment = ModelProtoType.encode(ModelProtoType.fromObject({
    graph: { node, initializer, output: [{ name: REGIONAL_OUTPUT, type: { tensor_type: { elem_type: ONNX_FLOAT } } }] },
  })).finish();
  const out = new Uint8Array(bytes.length + fragment.length);
  out.set(bytes, 0);
  out.set(fragment, bytes.length);
  return out;
}
