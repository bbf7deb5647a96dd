import { ModelProtoType, ONNX_FLOAT, decodeModel, type OnnxGraph, type OnnxNode } from './onnx-proto.schema.js';

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
