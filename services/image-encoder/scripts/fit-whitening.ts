/**
 * `pnpm --filter @doppel/image-encoder fit-whitening`: fits the PCA whitening that
 * WHITENING_PATH applies (src/pca-whitening.transform.ts) on the fingerprints of a folder
 * of images, computed by this encoder with its configuration from the environment
 * (MODEL_PATH, RESIZE_MODE, ...; whitening off), and writes it as JSON.
 *   --images DIR   fit images, searched recursively (required; never the queries or their
 *                  originals: e.g. a distractor set, or the collection to be indexed)
 *   --limit N      at most N images of the sorted list (default 5000)
 *   --alpha A      eigenvalue exponent, 0.5 = full whitening (default 0.5)
 *   --out FILE     default: beside the model, `x.onnx` -> `x.pca.json`
 */
import { readdir, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { EncoderConfig } from '@doppel/schemas';
import { createLogger, loadConfig, serve } from '@doppel/service-kit';
import { buildService } from '../src/app.js';
import { modelPathFrom } from '../src/model-path.config.js';
import { fitWhitening } from '../src/pca-whitening.transform.js';

const { values } = parseArgs({ options: { images: { type: 'string' }, limit: { type: 'string' }, alpha: { type: 'string' }, out: { type: 'string' } } });
if (!values.images) throw new Error('--images DIR is required');
const dir = resolve(values.images);
const limit = Number(values.limit ?? 5000);
const alpha = Number(values.alpha ?? 0.5);
const config = loadConfig(EncoderConfig, { ...process.env, IMAGES_ROOT: dir, WHITENING_PATH: '', LOG_LEVEL: 'warn' });
const out = resolve(values.out ?? modelPathFrom(config).replace(/(\.onnx)?$/i, '.pca.json'));

const files = (await readdir(dir, { recursive: true, withFileTypes: true }))
  .filter((d) => d.isFile() && /\.(jpe?g|png|webp)$/i.test(d.name))
  .map((d) => relative(dir, join(d.parentPath, d.name)))
  .sort()
  .slice(0, limit);
if (files.length < 2) throw new Error(`fewer than 2 images in ${dir}`);

const service = await buildService(config);
const srv = await serve(service.app, { port: 0, host: '127.0.0.1', logger: createLogger('fit-whitening', 'warn') });
let rows: Float32Array | undefined;
let n = 0;
try {
  const t0 = performance.now();
  for (let i = 0; i < files.length; i += 32) {
    const items = files.slice(i, i + 32).map((f) => ({ relative_path: f }));
    const r = await fetch(`http://127.0.0.1:${srv.port}/encode/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ items }) });
    const body = await r.json() as { response: { results: Array<{ fingerprint?: number[] }> } };
    for (const res of body.response.results) {
      if (!res.fingerprint) continue;
      rows ??= new Float32Array(files.length * res.fingerprint.length);
      rows.set(res.fingerprint, n * res.fingerprint.length);
      n++;
    }
  }
  console.log(`${n} fingerprints of ${files.length} images in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
} finally {
  await srv.close();
  await service.close();
}
const dimension = service.model.dimension;
const fitted = fitWhitening(rows!.subarray(0, n * dimension), dimension, alpha, 1e-3, `${n} images under ${dir}`);
await writeFile(out, JSON.stringify(fitted));
console.log(`wrote ${out} (alpha ${alpha}, ${dimension}-d): set WHITENING_PATH=${out} on the encoder and re-index`);
