import { ONNX_FLOAT, encodeModel, type OnnxNode, type OnnxTensor } from './onnx-proto.schema.js';
import { mulberry32 as rng } from '@doppel/service-kit';

export interface TestModelOptions {
  /** Input side (square). Small keeps tests fast. */
  inputSize?: number;
  /** Append a Gemm classifier head with this many classes (a classifier-headed export). */
  classifierClasses?: number;
  /** Seed of the weights. */
  seed?: number;
}


/**
 * A ResNet-shaped ONNX model (stem conv, one residual block, a strided conv, global
 * average pooling, flatten; optionally a Gemm head) with He-initialised weights from a
 * fixed seed. Output `features` is [N, 16], or `logits` [N, classes] with a head.
 */
export function buildTestModel(opts: TestModelOptions = {}): Uint8Array {
  const size = opts.inputSize ?? 64;
  const rand = rng(opts.seed ?? 1234);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const initializer: OnnxTensor[] = [];
  const node: OnnxNode[] = [];
  const weight = (name: string, dims: number[], fanIn: number, scale = 1) => {
    const n = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const std = scale * Math.sqrt(2 / fanIn);
    for (let i = 0; i < n; i++) data[i] = gauss() * std;
    initializer.push({ name, dims, data_type: ONNX_FLOAT, raw_data: new Uint8Array(data.buffer) });
    return name;
  };
  const conv = (name: string, x: string, cin: number, cout: number, stride: number) => {
    const w = weight(`${name}.weight`, [cout, cin, 3, 3], cin * 9);
    const b = weight(`${name}.bias`, [cout], cin * 9, 0.1);
    node.push({
      op_type: 'Conv', name, input: [x, w, b], output: [`${name}_out`],
      attribute: [
        { name: 'kernel_shape', type: 7, ints: [3, 3] },
        { name: 'pads', type: 7, ints: [1, 1, 1, 1] },
        { name: 'strides', type: 7, ints: [stride, stride] },
      ],
    });
    return `${name}_out`;
  };
  const relu = (name: string, x: string) => {
    node.push({ op_type: 'Relu', name, input: [x], output: [`${name}_out`] });
    return `${name}_out`;
  };
  let x = relu('stem_relu', conv('stem_conv', 'input', 3, 8, 2));
  const y = conv('block_conv2', relu('block_relu1', conv('block_conv1', x, 8, 8, 1)), 8, 8, 1);
  node.push({ op_type: 'Add', name: 'block_add', input: [y, x], output: ['block_add_out'] });
  x = relu('block_relu2', 'block_add_out');
  x = relu('down_relu', conv('down_conv', x, 8, 16, 2));
  node.push({ op_type: 'GlobalAveragePool', name: 'gap', input: [x], output: ['gap_out'] });
  node.push({ op_type: 'Flatten', name: 'flatten', input: ['gap_out'], output: ['features'], attribute: [{ name: 'axis', type: 2, i: 1 }] });
  let output = { name: 'features', width: 16 };
  if (opts.classifierClasses) {
    const k = opts.classifierClasses;
    const w = weight('fc.weight', [k, 16], 16);
    const b = weight('fc.bias', [k], 16, 0.1);
    node.push({
      op_type: 'Gemm', name: 'fc', input: ['features', w, b], output: ['logits'],
      attribute: [{ name: 'transB', type: 2, i: 1 }],
    });
    output = { name: 'logits', width: k };
  }
  const dim = (v: number | string) => (typeof v === 'number' ? { dim_value: v } : { dim_param: v });
  return encodeModel({
    ir_version: 8,
    producer_name: 'doppel-test-model',
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'doppel_test_resnet',
      node,
      initializer,
      input: [{ name: 'input', type: { tensor_type: { elem_type: ONNX_FLOAT, shape: { dim: ['N', 3, size, size].map(dim) } } } }],
      output: [{ name: output.name, type: { tensor_type: { elem_type: ONNX_FLOAT, shape: { dim: ['N', output.width].map(dim) } } } }],
    },
  });
}
