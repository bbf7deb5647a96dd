import { isAbsolute, join, resolve } from 'node:path';
import type { EncoderConfig } from '@doppel/schemas';

/** MODEL_PATH wins; otherwise MODELS_DIR/MODELS_NAME. Relative paths are from `cwd`. */
export function modelPathFrom(config: Pick<EncoderConfig, 'MODEL_PATH' | 'MODELS_DIR' | 'MODELS_NAME'>, cwd = '.'): string {
  const p = config.MODEL_PATH || join(config.MODELS_DIR, config.MODELS_NAME);
  return isAbsolute(p) ? p : resolve(cwd, p);
}
