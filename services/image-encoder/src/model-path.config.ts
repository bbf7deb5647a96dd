import { isAbsolute, join, resolve } from 'node:path';
import type { EncoderConfig } from '@doppel/schemas';

/** The int8 (QDQ) file written by `pnpm quantize` next to a float model: `x.onnx` -> `x.int8.onnx`. */
export function int8PathFor(fp32Path: string): string {
  return fp32Path.replace(/(\.onnx)?$/i, '.int8.onnx');
}

/**
 * MODEL_PATH wins; otherwise MODELS_DIR/MODELS_NAME. Relative paths are from `cwd`.
 * With MODEL_PRECISION=int8 the quantised file beside it is loaded instead.
 */
export function modelPathFrom(config: Pick<EncoderConfig, 'MODEL_PATH' | 'MODELS_DIR' | 'MODELS_NAME'> & Partial<Pick<EncoderConfig, 'MODEL_PRECISION'>>, cwd = '.'): string {
  const p = config.MODEL_PATH || join(config.MODELS_DIR, config.MODELS_NAME);
  const abs = isAbsolute(p) ? p : resolve(cwd, p);
  return config.MODEL_PRECISION === 'int8' ? int8PathFor(abs) : abs;
}
