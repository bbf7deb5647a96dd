/**
 * What whitening and regions cost per image at indexing (issue #12): the encoder in-process
 * with the real model, the same dev images encoded by path through /encode/batch (16 a
 * request, one in flight) four ways: plain (WHITENING_PATH=none), whitened (the fit beside
 * the model), whitened with the grey entry (GREY_ENTRY=true: a second pass on the greyscale
 * pixels of a colour image), whitened with the 13 R-MAC regions (REGIONS=rmac). Prints
 * img/s and process CPU-ms per image (all threads; contention moves it less than wall time),
 * and the cost of one whitening product alone.
 *   node --conditions=source --import tsx bench/encoder/whitening-cost.bench.ts
 * Env: BENCH_DIR (../shared/bench/dev), MODEL_PATH (models/resnet18.onnx, with `pnpm models`'
 * fit beside it), BENCH_N (96).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EncoderConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { call, listen } from '@doppel/service-kit/testing';
import { buildService, whiteningFrom, whiteningPathFor, type WhiteningFile } from '@doppel/image-encoder';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const dir = resolve(process.env.BENCH_DIR ?? join(repo, '..', 'shared', 'bench', 'dev'));
const modelPath = resolve(process.env.MODEL_PATH ?? join(repo, 'models', 'resnet18.onnx'));
const fit = whiteningPathFor(modelPath);
if (!existsSync(fit)) throw new Error(`no whitening fit at ${fit}: run \`pnpm models\``);
const N = Number(process.env.BENCH_N ?? 96);
const all = [...readdirSync(join(dir, 'index')).sort().map((f) => `index/${f}`), ...readdirSync(join(dir, 'queries')).sort().map((f) => `queries/${f}`)];
const files = Array.from({ length: Math.min(N, all.length) }, (_, i) => all[Math.floor((i * all.length) / Math.min(N, all.length))]!);
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

// One whitening product (256 x 256 multiply-adds and a normalisation), alone.
const w = whiteningFrom(JSON.parse(readFileSync(fit, 'utf8')) as WhiteningFile);
const v = Float32Array.from({ length: w.dimension }, (_, i) => Math.abs(Math.sin(i)));
for (let i = 0; i < 2000; i++) w.apply(v);
let t = performance.now();
const reps = 20000;
for (let i = 0; i < reps; i++) w.apply(v);
console.log(`whitening product: ${(((performance.now() - t) * 1000) / reps).toFixed(1)} µs per ${w.dimension}-d vector (main thread)`);

const configs = {
  plain: { WHITENING_PATH: 'none', REGIONS: 'none', GREY_ENTRY: 'false' },
  whitened: { WHITENING_PATH: 'auto', REGIONS: 'none', GREY_ENTRY: 'false' },
  'whitened + grey entry': { WHITENING_PATH: 'auto', REGIONS: 'none', GREY_ENTRY: 'true' },
  'whitened + regions': { WHITENING_PATH: 'auto', REGIONS: 'rmac', GREY_ENTRY: 'false' },
} as const;
console.log(`${files.length} dev images by path, /encode/batch of 16, model ${modelPath}`);
for (const [name, env] of Object.entries(configs)) {
  const svc = await buildService(loadConfig(EncoderConfig, { LOG_LEVEL: 'warn', MODEL_PATH: modelPath, IMAGES_ROOT: dir, ...env }));
  const { base, close } = await listen(svc);
  try {
    const batch = async (fs: string[]) => {
      const r = await call(base, 'POST', '/encode/batch', { items: fs.map((f) => ({ relative_path: f, regions: true })) });
      if (r.status !== 200) throw new Error(JSON.stringify(r.body).slice(0, 300));
      return r.body.response.results as Array<{ regions?: number[][] }>;
    };
    await batch(files.slice(0, 16)); // warm-up
    t = performance.now();
    const c0 = cpuMs();
    let vectors = 0;
    for (let i = 0; i < files.length; i += 16) for (const r of await batch(files.slice(i, i + 16))) vectors += 1 + (r.regions?.length ?? 0);
    const s = (performance.now() - t) / 1000;
    console.log(`${name}: ${(files.length / s).toFixed(1)} img/s, ${((cpuMs() - c0) / files.length).toFixed(1)} CPU-ms/img, ${(vectors / files.length).toFixed(2)} vectors/img`);
  } finally {
    await close();
  }
}
