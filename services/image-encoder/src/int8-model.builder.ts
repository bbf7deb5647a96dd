import { createHash } from 'node:crypto';
import type ort from 'onnxruntime-node';
import { calibrateRanges, type CalibrationMethod } from './activation-ranges.calibrate.js';
import { inspectModel } from './feature-output.graph.js';
import { decodeModel } from './onnx-proto.schema.js';
import { planQuantization, quantizeModel } from './qdq-quantize.graph.js';

export interface Int8BuildOptions {
  method: CalibrationMethod;
  percentile?: number;
  /** See QuantizeOptions.weightQmax. */
  weightQmax: number;
  /** Where the calibration images came from, kept in the model's metadata. */
  calibrationNote?: string;
}

/**
 * The QDQ int8 model of a float model: plan, calibrate the activation ranges on `inputs`
 * (float tensors [1, 3, S, S] preprocessed as the encoder does), quantise. The source
 * hash goes into the metadata so MODEL_SHA256 can still pin the weights.
 */
export async function buildInt8Model(fp32: Uint8Array, inputs: () => AsyncIterable<ort.Tensor>, opts: Int8BuildOptions): Promise<{ bytes: Uint8Array; tensors: number }> {
  const layout = inspectModel(fp32);
  const plan = planQuantization(decodeModel(fp32));
  const ranges = await calibrateRanges(fp32, layout.inputName, plan.tensors, inputs, { method: opts.method, percentile: opts.percentile });
  const method = opts.method === 'percentile' ? `percentile ${opts.percentile ?? 99.99}` : 'minmax';
  const bytes = quantizeModel(fp32, ranges, {
    weightQmax: opts.weightQmax,
    metadata: {
      'doppel.source_sha256': createHash('sha256').update(fp32).digest('hex'),
      'doppel.calibration': `${method}${opts.calibrationNote ? `, ${opts.calibrationNote}` : ''}`,
      'doppel.weight_qmax': String(opts.weightQmax),
    },
  });
  return { bytes, tensors: plan.tensors.length };
}
