/**
 * `pnpm quantize`: writes the int8 QDQ model beside a float one (`x.onnx` -> `x.int8.onnx`),
 * activation ranges calibrated on a folder of images with the encoder's own preprocessing.
 *   --model FILE        float model (default <repo>/models/resnet18.onnx)
 *   --images DIR        calibration images (default ../shared/bench/dev/index)
 *   --every K --offset O  use every K-th file of the sorted list from O (default 2, 0: the even half)
 *   --limit N           at most N images (default 200)
 *   --method minmax|percentile, --percentile P (default percentile, 99.99)
 *   --weight-qmax Q     63 keeps int16 pair sums exact on CPUs without VNNI (default), 127 full range
 *   --out FILE          (default beside the model)
 * Then the int8 model's own whitening fit beside it (`x.int8.pca.json`, what WHITENING_PATH=auto
 * reads with MODEL_PRECISION=int8): made exactly as `pnpm models` makes the float model's
 * (src/whitening.provisioner.ts: the same Debian packages of images, encoded by this model,
 * alpha 0.5; kept when a fit for these int8 bytes is there). --refit-whitening fits again,
 * --skip-whitening or MODEL_WHITENING=skip leaves it out (int8 then runs unwhitened, with a warning).
 */
import { readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { EncoderConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import type { CalibrationMethod } from '../src/activation-ranges.calibrate.js';
import { inspectModel } from '../src/feature-output.graph.js';
import { int8PathFor } from '../src/model-path.config.js';
import { decodeImage } from '../src/preprocess.image.js';
import { buildInt8Model } from '../src/int8-model.builder.js';
import { rgbToTensor } from '../src/tensor-layout.transform.js';
import { provisionWhitening } from '../src/whitening.provisioner.js';

const repo = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const { values } = parseArgs({
  options: {
    model: { type: 'string' }, images: { type: 'string' }, out: { type: 'string' },
    every: { type: 'string' }, offset: { type: 'string' }, limit: { type: 'string' },
    method: { type: 'string' }, percentile: { type: 'string' }, 'weight-qmax': { type: 'string' },
    'skip-whitening': { type: 'boolean', default: false }, 'refit-whitening': { type: 'boolean', default: false },
  },
});
const modelPath = resolve(values.model ?? join(repo, 'models', 'resnet18.onnx'));
const imagesDir = resolve(values.images ?? join(repo, '..', 'shared', 'bench', 'dev', 'index'));
const out = resolve(values.out ?? int8PathFor(modelPath));
const every = Number(values.every ?? 2);
const offset = Number(values.offset ?? 0);
const limit = Number(values.limit ?? 200);
const method = (values.method ?? 'percentile') as CalibrationMethod;
const percentile = Number(values.percentile ?? 99.99);
// 63 by default: on x86 without VNNI (AVX2 here) onnxruntime's u8 x s8 kernel sums pairs of
// products in int16 and saturates with full-range weights (measured: worst cosine to fp32
// 0.955 with 127, 0.997 with 63; the unfused QDQ graph gives 0.998 with either).
const weightQmax = Number(values['weight-qmax'] ?? 63);
if (method !== 'minmax' && method !== 'percentile') throw new Error(`--method ${method}: minmax or percentile`);

const bytes = new Uint8Array(await readFile(modelPath));
const layout = inspectModel(bytes);
const size = layout.inputSize ?? 224;
const files = (await readdir(imagesDir, { recursive: true, withFileTypes: true }))
  .filter((d) => d.isFile() && /\.(jpe?g|png|webp)$/i.test(d.name))
  .map((d) => join(d.parentPath, d.name))
  .sort()
  .filter((_, i) => i % every === offset)
  .slice(0, limit);
if (files.length === 0) throw new Error(`no images in ${imagesDir}`);

async function* tensors(): AsyncIterable<ort.Tensor> {
  for (const f of files) {
    const rgb = await decodeImage(await readFile(f), { size, mode: 'center-crop', maxPixels: 50_000_000 });
    const x = new Float32Array(3 * size * size);
    rgbToTensor(rgb, size, x);
    yield new ort.Tensor('float32', x, [1, 3, size, size]);
  }
}

const t0 = performance.now();
const q = await buildInt8Model(bytes, tensors, {
  method, percentile, weightQmax,
  calibrationNote: `${files.length} images of ${imagesDir} (every ${every} from ${offset})`,
});
const tmp = `${out}.${process.pid}.tmp`;
await writeFile(tmp, q.bytes);
await rename(tmp, out);
process.stdout.write(`${out}: ${q.tensors} activation tensors, ${files.length} calibration images, ${method}, `
  + `weights int8 (qmax ${weightQmax}), ${(q.bytes.length / 1e6).toFixed(1)} MB, ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);

if (values['skip-whitening'] || process.env.MODEL_WHITENING === 'skip') {
  process.stdout.write('whitening fit skipped: MODEL_PRECISION=int8 runs with plain fingerprints (lower candidate recall in large collections)\n');
} else {
  // The float model's fit does not carry over: quantisation moves every fingerprint a little,
  // and a fit is checked against the sha256 of the file it was fitted on.
  const config = loadConfig(EncoderConfig, { ...process.env, MODEL_PATH: out, MODEL_PRECISION: 'fp32', LOG_LEVEL: 'warn' });
  const w = await provisionWhitening({ config, modelPath: out, refit: values['refit-whitening'], log: (l) => process.stdout.write(`${l}\n`) });
  process.stdout.write(w.source === 'existing'
    ? `whitening fit already present for this int8 model: ${w.path}\n`
    : `whitening fit written: ${w.path} (${w.images} images, ${w.seconds!.toFixed(0)} s in all)\n`);
}
