/**
 * `pnpm --filter @doppel/image-encoder fit-whitening`: fits the PCA whitening that
 * WHITENING_PATH applies (src/pca-whitening.transform.ts) on the fingerprints of a folder
 * of images, computed by this encoder with its configuration from the environment
 * (MODEL_PATH, RESIZE_MODE, ...; whitening off), and writes it as JSON. (`pnpm models`
 * makes the default model's fit from Debian packages: scripts/provision-whitening.ts.)
 *   --images DIR   fit images, searched recursively (required; never the queries or their
 *                  originals: e.g. a distractor set, or the collection to be indexed)
 *   --limit N      at most N images of the sorted list (default 5000)
 *   --alpha A      eigenvalue exponent, 0.5 = full whitening (default 0.5)
 *   --out FILE     default: beside the model, `x.onnx` -> `x.pca.json` (what WHITENING_PATH=auto reads)
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { EncoderConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { modelPathFrom } from '../src/model-path.config.js';
import { whiteningPathFor } from '../src/pca-whitening.transform.js';
import { fitWhiteningOnFolder } from '../src/whitening.fitter.js';

const { values } = parseArgs({ options: { images: { type: 'string' }, limit: { type: 'string' }, alpha: { type: 'string' }, out: { type: 'string' } } });
if (!values.images) throw new Error('--images DIR is required');
const config = loadConfig(EncoderConfig, { ...process.env, LOG_LEVEL: 'warn' });
const out = resolve(values.out ?? whiteningPathFor(modelPathFrom(config)));
const alpha = Number(values.alpha ?? 0.5);
const r = await fitWhiteningOnFolder(config, { dir: values.images, limit: Number(values.limit ?? 5000), alpha, out });
console.log(`${r.images} fingerprints in ${r.seconds.toFixed(0)} s; wrote ${out} (alpha ${alpha}, ${r.file.dimension}-d, model ${r.file.model} sha256 ${r.file.model_sha256?.slice(0, 12)}…)`);
console.log(`the encoder applies it by default when it is beside the model (WHITENING_PATH=auto), else set WHITENING_PATH=${out}; re-index after`);
