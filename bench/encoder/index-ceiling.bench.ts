/**
 * The most images/s indexing could reach on this machine, from what one image costs the
 * encoder in CPU time (not a test; prints figures):
 *   node --conditions=source --import tsx bench/encoder/index-ceiling.bench.ts
 * 1. decode + resize to the model input (the encoder's own preprocessing), CPU-ms per image,
 *    over the 44 dev originals and BENCH_N (156) Debian distractors;
 * 2. one onnxruntime forward pass, CPU-ms per image at batch 16 (the indexing batch), fp32 and,
 *    when `pnpm quantize` has written it, int8, with the encoder's session options;
 * 3. the ceiling: cores x 1000 / (decode + forward) images/s, i.e. every core busy with nothing
 *    but these two steps (no HTTP, JSON, WAL or HNSW insert), against the baseline's measured
 *    images/s (BASELINE_IMG_S, the latency bench's figure) x 1.5, issue #15's target.
 * CPU time, not wall time, so other load on the machine moves it less (it still does: run twice).
 * Env: BENCH_DIR (../shared/bench/dev), DISTRACTORS (/work/distractors), BENCH_N, MODEL_PATH,
 * BASELINE_IMG_S (31.8: 71052c2 on the dev scan set, quiet run of 2026-12-01).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { decodeImage, int8PathFor } from '@doppel/image-encoder';
import { figure } from '../figures.record.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const dev = resolve(process.env.BENCH_DIR ?? join(repo, '..', 'shared', 'bench', 'dev'));
const distractorDir = process.env.DISTRACTORS ?? '/work/distractors';
const n = Number(process.env.BENCH_N ?? 156);
const fp32 = resolve(process.env.MODEL_PATH ?? join(repo, 'models', 'resnet18.onnx'));
const baseline = Number(process.env.BASELINE_IMG_S ?? 31.8);
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

const files = [
  ...readdirSync(join(dev, 'index')).sort().map((f) => join(dev, 'index', f)),
  ...(existsSync(distractorDir) ? readdirSync(distractorDir).sort().slice(0, n).map((f) => join(distractorDir, f)) : []),
];
const bytes = files.map((f) => readFileSync(f));
console.log(`${cpus().length} cores (${cpus()[0]?.model}); ${files.length} images; load ${load()}`);

// 1. The second round is the figure: the first warms libvips and the file cache.
let decodeMs = 0;
for (let round = 0; round < 2; round++) {
  const c0 = cpuMs();
  for (const b of bytes) await decodeImage(b, { size: 224, mode: 'center-crop', maxPixels: 50e6 });
  decodeMs = (cpuMs() - c0) / bytes.length;
}
console.log(`decode + resize: ${decodeMs.toFixed(1)} CPU-ms/image`);

// 2. The encoder's session options (inference.worker.ts): 2 intra-op threads, no spinning.
async function forwardMs(path: string): Promise<number> {
  const s = await ort.InferenceSession.create(path, {
    intraOpNumThreads: 2, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  const batch = 16;
  const x = new ort.Tensor('float32', Float32Array.from({ length: batch * 3 * 224 * 224 }, (_, i) => Math.sin(i)), [batch, 3, 224, 224]);
  const input = s.inputNames[0]!;
  await s.run({ [input]: x });
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const c0 = cpuMs();
    await s.run({ [input]: x });
    runs.push((cpuMs() - c0) / batch);
  }
  await s.release();
  return runs.sort((a, b) => a - b)[2]!;
}
const models: Array<[string, string]> = [['fp32', fp32], ...(existsSync(int8PathFor(fp32)) ? [['int8', int8PathFor(fp32)] as [string, string]] : [])];
const target = 1.5 * baseline;
figure('ceiling.decode_cpu_ms', 'decode + resize to the model input', Number(decodeMs.toFixed(1)), 'CPU-ms/image');
for (const [name, path] of models) {
  const fwd = await forwardMs(path);
  const ceiling = (cpus().length * 1000) / (decodeMs + fwd);
  console.log(`${name}: forward ${fwd.toFixed(1)} CPU-ms/image at batch 16; ceiling ${ceiling.toFixed(1)} images/s on ${cpus().length} cores = ${(ceiling / baseline).toFixed(2)}x the baseline's ${baseline} (target 1.5x = ${target.toFixed(1)}); load ${load()}`);
  figure(`ceiling.${name}.forward_cpu_ms`, `${name} forward pass at batch 16`, Number(fwd.toFixed(1)), 'CPU-ms/image');
  figure(`ceiling.${name}.images_per_s`, `${name}: indexing ceiling (every core decoding and running the model, nothing else)`, Number(ceiling.toFixed(1)), 'images/s');
  figure(`ceiling.${name}.x_baseline`, `${name}: that ceiling over the baseline's ${baseline} images/s`, Number((ceiling / baseline).toFixed(2)), 'x');
}
