/**
 * The int8 (QDQ) encoder against fp32, with the real model, in one run:
 *   node --conditions=source --import tsx bench/encoder/int8.bench.ts
 * 1. raw onnxruntime speed, batch 1, 8 (a query's orientations) and 16 (MAX_BATCH), fp32 and
 *    int8 sessions alternated round by round (the machine is shared: a ratio inside one round
 *    is what load moves least), with the encoder worker's session options (spinning off unless
 *    INTRA_OP_SPINNING=true; BENCH_THREADS intra-op threads, 2);
 * 2. candidate recall@1/@10 on the dev set (8 orientations per query, max cosine, brute
 *    force) for both models, on the even and odd halves of the originals (sorted names) and
 *    the v2/v3 transforms apart, plain and whitened (each model with its own fit beside it:
 *    `x.pca.json` from `pnpm models`, `x.int8.pca.json` from `pnpm quantize`), and the cosine
 *    between the two models' fingerprints.
 * Env: BENCH_DIR (../shared/bench/dev), MODEL_PATH (models/resnet18.onnx; int8 beside it,
 * written by `pnpm quantize`), DISTRACTORS (a folder of extra index images) + BENCH_DISTRACTORS
 * (how many, 0), BENCH_ROUNDS (5), BENCH_QUERY_EVERY (1: every query; k: every k-th), SKIP_RECALL=1.
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus, loadavg } from 'node:os';
import * as ort from 'onnxruntime-node';
import { decodeImage, int8PathFor, loadOnnxModel, loadWhitening, sha256File, whiteningPathFor, type EncoderModel, type Whitening } from '@doppel/image-encoder';
import { transformOf } from '@doppel/cli';
import { devSplit, V2_TRANSFORMS } from '../matching/dev-split.bench.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const dir = resolve(process.env.BENCH_DIR ?? join(repo, '..', 'shared', 'bench', 'dev'));
const fp32Path = resolve(process.env.MODEL_PATH ?? join(repo, 'models', 'resnet18.onnx'));
const int8Path = int8PathFor(fp32Path);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const V2 = V2_TRANSFORMS;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

console.log(`fp32 ${fp32Path}\nint8 ${int8Path}\n${cpus().length} cores (${cpus()[0]?.model}); load average at start ${load()}`);

// 1. Raw speed. The same session options as the encoder's worker.
const threads = Number(process.env.BENCH_THREADS ?? 2);
const sessionOpts = {
  intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential' as const, graphOptimizationLevel: 'all' as const,
  extra: { session: { intra_op: { allow_spinning: process.env.INTRA_OP_SPINNING === 'true' ? '1' : '0' } } },
};
const sessions = { fp32: await ort.InferenceSession.create(fp32Path, sessionOpts), int8: await ort.InferenceSession.create(int8Path, sessionOpts) };
const inputName = sessions.fp32.inputNames[0]!;
for (const batch of [1, 8, 16]) {
  const x = new ort.Tensor('float32', Float32Array.from({ length: batch * 3 * 224 * 224 }, (_, i) => Math.sin(i) * 1.5), [batch, 3, 224, 224]);
  const runs = Math.max(2, Math.round(24 / batch));
  const per: Record<'fp32' | 'int8', number[]> = { fp32: [], int8: [] };
  const cpu: Record<'fp32' | 'int8', number[]> = { fp32: [], int8: [] };
  const ratios: number[] = [];
  for (const s of Object.values(sessions)) await s.run({ [inputName]: x });
  for (let r = 0; r < rounds; r++) {
    const ms: Record<string, number> = {};
    for (const [name, s] of Object.entries(sessions) as Array<['fp32' | 'int8', typeof sessions.fp32]>) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      for (let i = 0; i < runs; i++) await s.run({ [inputName]: x });
      ms[name] = (performance.now() - t0) / (runs * batch);
      const c = process.cpuUsage(c0);
      cpu[name].push((c.user + c.system) / 1000 / (runs * batch));
      per[name].push(ms[name]);
    }
    ratios.push(ms.fp32! / ms.int8!);
  }
  console.log(`raw session.run batch ${batch}: fp32 ${median(per.fp32).toFixed(2)} ms/img, int8 ${median(per.int8).toFixed(2)} ms/img; `
    + `throughput int8/fp32 median of ${rounds} rounds ${median(ratios).toFixed(2)}x (rounds ${ratios.map((r) => r.toFixed(2)).join(' ')}); `
    + `CPU-ms/img fp32 ${median(cpu.fp32).toFixed(1)}, int8 ${median(cpu.int8).toFixed(1)} (${(median(cpu.fp32) / median(cpu.int8)).toFixed(2)}x); load ${load()}`);
}
for (const s of Object.values(sessions)) await s.release();

if (process.env.SKIP_RECALL !== '1') {
  // 2. Candidate recall.
  const truth = (JSON.parse(await readFile(join(dir, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
  const indexNames = readdirSync(join(dir, 'index')).sort();
  // The dev set's one split (even/odd of the sorted indexed originals: the even half is the int8 calibration set).
  const halfOf = devSplit(indexNames, truth);
  const every = Number(process.env.BENCH_QUERY_EVERY ?? 1);
  const queries = Object.entries(truth).filter((e): e is [string, string] => e[1] !== null).sort().filter((_, i) => i % every === 0);
  const nDistractors = Number(process.env.BENCH_DISTRACTORS ?? 0);
  const distractors = process.env.DISTRACTORS && nDistractors > 0
    ? readdirSync(process.env.DISTRACTORS, { recursive: true, withFileTypes: true }).filter((d) => d.isFile() && /\.(jpe?g|png|webp)$/i.test(d.name))
      .map((d) => join(d.parentPath, d.name)).sort().slice(0, nDistractors)
    : [];
  const indexFiles = [...indexNames.map((n) => join(dir, 'index', n)), ...distractors];

  /** In chunks of 8: enough in flight to fill the encoder's micro-batches. */
  async function inChunks<T, R>(items: T[], fn: (x: T) => Promise<R>): Promise<R[]> {
    const out: R[] = [];
    for (let i = 0; i < items.length; i += 8) out.push(...await Promise.all(items.slice(i, i + 8).map(fn)));
    return out;
  }
  const dot = (a: Float32Array, b: Float32Array) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!; return s; };
  const pre = { size: 224, mode: 'center-crop' as const, maxPixels: 100_000_000 };
  const decoded = new Map<string, Uint8Array>();
  /** Decoded once for both models (sharp's output does not depend on the model). */
  const pixels = async (f: string) => {
    let px = decoded.get(f);
    if (!px) decoded.set(f, px = await decodeImage(await readFile(f), pre));
    return px;
  };

  /** Every index vector and every query orientation, plain; scored below plain and whitened. */
  async function encodeAll(model: EncoderModel) {
    const index = await inChunks(indexFiles, async (f) => (await model.infer(await pixels(f)))[0]!);
    const orients = await inChunks(queries, async ([q]) => model.infer(await pixels(join(dir, 'queries', q)), 'all'));
    return { index, orients };
  }
  type Encoded = Awaited<ReturnType<typeof encodeAll>>;
  /** Rank of the true original per query: how many other index images score above it (max over the 8 orientations). */
  function ranks(e: Encoded): Map<string, number> {
    const out = new Map<string, number>();
    queries.forEach(([q, want], k) => {
      const fps = e.orients[k]!;
      const score = (v: Float32Array) => { let m = -Infinity; for (const f of fps) m = Math.max(m, dot(f, v)); return m; };
      const w = indexNames.indexOf(want);
      const target = score(e.index[w]!);
      let above = 0;
      for (let i = 0; i < e.index.length; i++) if (i !== w && score(e.index[i]!) > target) above++;
      out.set(q, above);
    });
    return out;
  }
  const whiten = (e: Encoded, w: Whitening): Encoded => ({
    index: e.index.map((v) => Float32Array.from(w.apply(v))),
    orients: e.orients.map((fps) => fps.map((v) => Float32Array.from(w.apply(v)))),
  });
  const encoded: Record<string, Encoded> = {};
  const scored: Record<string, Map<string, number>> = {};
  for (const [name, path] of [['fp32', fp32Path], ['int8', int8Path]] as const) {
    const t0 = performance.now();
    const model = await loadOnnxModel({ path, intraOpThreads: 2, maxBatch: 16, batchWindowMs: 2, queueLimit: 100000 });
    encoded[name] = await encodeAll(model);
    await model.close();
    scored[name] = ranks(encoded[name]);
    // Each model with its own fit beside it (`pnpm models` / `pnpm quantize`), as WHITENING_PATH=auto applies it.
    const fit = whiteningPathFor(path);
    if (existsSync(fit)) scored[`${name}+pca`] = ranks(whiten(encoded[name], loadWhitening(fit, model.dimension, await sha256File(path), true)));
    else console.log(`${name}: no whitening fit at ${fit}: whitened recall not measured`);
    console.log(`${name}: ${indexFiles.length} index images (${distractors.length} distractors), ${queries.length} queries x 8 orientations, ${((performance.now() - t0) / 1000).toFixed(0)} s; load ${load()}`);
  }
  const groups: Array<[string, (q: string) => boolean]> = [
    ['all', () => true],
    ['even half (calibration)', (q) => halfOf(q) === 'calibration'],
    ['odd half (held back)', (q) => halfOf(q) === 'held-back'],
    ['v2 transforms', (q) => V2.has(transformOf(q))],
    ['v3 transforms', (q) => !V2.has(transformOf(q))],
  ];
  const variants = [['plain', 'fp32', 'int8'], ['whitened', 'fp32+pca', 'int8+pca']].filter(([, f, i]) => scored[f!] && scored[i!]);
  for (const [label, f, i] of variants) {
    console.log(`\n${label} fingerprints (candidate recall of the true original, brute force, ${indexFiles.length} indexed)`);
    console.log('| queries | n | fp32 recall@1 | int8 recall@1 | fp32 recall@10 | int8 recall@10 | recall@10 int8 - fp32 |');
    console.log('| --- | --- | --- | --- | --- | --- | --- |');
    for (const [group, keep] of groups) {
      const qs = queries.map(([q]) => q).filter(keep);
      const r = (name: string, k: number) => qs.filter((q) => scored[name]!.get(q)! < k).length / Math.max(1, qs.length);
      const [f1, i1, f10, i10] = [r(f!, 1), r(i!, 1), r(f!, 10), r(i!, 10)];
      console.log(`| ${group} | ${qs.length} | ${f1.toFixed(4)} | ${i1.toFixed(4)} | ${f10.toFixed(4)} | ${i10.toFixed(4)} | ${(i10 - f10).toFixed(4)} |`);
    }
  }
  const cos = queries.map((_, k) => dot(encoded.fp32!.orients[k]![0]!, encoded.int8!.orients[k]![0]!)).sort((a, b) => a - b);
  const icos = encoded.fp32!.index.map((v, k) => dot(v, encoded.int8!.index[k]!)).sort((a, b) => a - b);
  console.log(`cosine fp32 vs int8 fingerprint (plain): queries median ${median(cos).toFixed(4)}, 1st percentile ${cos[Math.floor(cos.length / 100)]!.toFixed(4)}, min ${cos[0]!.toFixed(4)}; index images median ${median(icos).toFixed(4)}, min ${icos[0]!.toFixed(4)}`);
}
console.log(`load average at end ${load()}`);
