/**
 * The int8 (QDQ) encoder against fp32, with the real model, in one run:
 *   node --conditions=source --import tsx bench/encoder/int8.bench.ts
 * 1. raw onnxruntime speed, batch 1 and batch 16, fp32 and int8 sessions alternated round
 *    by round (the machine is shared: a ratio inside one round is what load moves least);
 * 2. candidate recall@1/@10 on the dev set (8 orientations per query, max cosine, brute
 *    force) for both models, on the even and odd halves of the originals (sorted names) and
 *    the v2/v3 transforms apart, and the cosine between the two models' fingerprints.
 * Env: BENCH_DIR (../shared/bench/dev), MODEL_PATH (models/resnet18.onnx; int8 beside it,
 * written by `pnpm quantize`), DISTRACTORS (a folder of extra index images) + BENCH_DISTRACTORS
 * (how many, 0), BENCH_ROUNDS (5), BENCH_QUERY_EVERY (1: every query; k: every k-th), SKIP_RECALL=1.
 */
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus, loadavg } from 'node:os';
import * as ort from 'onnxruntime-node';
import { decodeImage, int8PathFor, loadOnnxModel, type EncoderModel } from '@doppel/image-encoder';
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
const sessionOpts = { intraOpNumThreads: 2, interOpNumThreads: 1, executionMode: 'sequential' as const, graphOptimizationLevel: 'all' as const };
const sessions = { fp32: await ort.InferenceSession.create(fp32Path, sessionOpts), int8: await ort.InferenceSession.create(int8Path, sessionOpts) };
const inputName = sessions.fp32.inputNames[0]!;
for (const batch of [1, 16]) {
  const x = new ort.Tensor('float32', Float32Array.from({ length: batch * 3 * 224 * 224 }, (_, i) => Math.sin(i) * 1.5), [batch, 3, 224, 224]);
  const runs = batch === 1 ? 20 : 3;
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
  const pixels = async (f: string) => decoded.get(f) ?? decodeImage(await readFile(f), pre);

  async function evaluate(model: EncoderModel) {
    const index = await inChunks(indexFiles, async (f) => (await model.infer(await pixels(f)))[0]!);
    const fingerprints: Float32Array[] = [];
    const hits = await inChunks(queries, async ([q, want]) => {
      const fps = await model.infer(await pixels(join(dir, 'queries', q)), true);
      fingerprints.push(fps[0]!);
      const w = indexNames.indexOf(want);
      const target = Math.max(...fps.map((f) => dot(f, index[w]!)));
      let above = 0;
      for (let i = 0; i < index.length; i++) if (i !== w && Math.max(...fps.map((f) => dot(f, index[i]!))) > target) above++;
      return { q, rank: above, id: fps[0]! };
    });
    return { hits, index };
  }
  const results: Record<string, Awaited<ReturnType<typeof evaluate>>> = {};
  for (const [name, path] of [['fp32', fp32Path], ['int8', int8Path]] as const) {
    const t0 = performance.now();
    const model = await loadOnnxModel({ path, intraOpThreads: 2, maxBatch: 16, batchWindowMs: 2, queueLimit: 100000 });
    results[name] = await evaluate(model);
    await model.close();
    console.log(`${name}: ${indexFiles.length} index images (${distractors.length} distractors), ${queries.length} queries x 8 orientations, ${((performance.now() - t0) / 1000).toFixed(0)} s; load ${load()}`);
  }
  const groups: Array<[string, (q: string) => boolean]> = [
    ['all', () => true],
    ['even half', (q) => halfOf(q) === 'calibration'],
    ['odd half', (q) => halfOf(q) === 'held-back'],
    ['v2 transforms', (q) => V2.has(transformOf(q))],
    ['v3 transforms', (q) => !V2.has(transformOf(q))],
  ];
  console.log('| queries | n | fp32 recall@1 | int8 recall@1 | fp32 recall@10 | int8 recall@10 | recall@10 int8 - fp32 |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const [label, keep] of groups) {
    const r = (name: string, k: number) => {
      const hs = results[name]!.hits.filter((h) => keep(h.q));
      return { n: hs.length, v: hs.filter((h) => h.rank < k).length / Math.max(1, hs.length) };
    };
    const f1 = r('fp32', 1); const i1 = r('int8', 1); const f10 = r('fp32', 10); const i10 = r('int8', 10);
    console.log(`| ${label} | ${f1.n} | ${f1.v.toFixed(4)} | ${i1.v.toFixed(4)} | ${f10.v.toFixed(4)} | ${i10.v.toFixed(4)} | ${(i10.v - f10.v).toFixed(4)} |`);
  }
  const byQ = new Map(results.int8!.hits.map((h) => [h.q, h.id]));
  const cos = results.fp32!.hits.map((h) => dot(h.id, byQ.get(h.q)!)).sort((a, b) => a - b);
  const icos = results.fp32!.index.map((v, i) => dot(v, results.int8!.index[i]!)).sort((a, b) => a - b);
  console.log(`cosine fp32 vs int8 fingerprint: queries median ${median(cos).toFixed(4)}, 1st percentile ${cos[Math.floor(cos.length / 100)]!.toFixed(4)}, min ${cos[0]!.toFixed(4)}; index images median ${median(icos).toFixed(4)}, min ${icos[0]!.toFixed(4)}`);
}
console.log(`load average at end ${load()}`);
