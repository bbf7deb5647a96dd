/**
 * Query latency against one raw forward pass, and `doppel scan` / indexing throughput
 * against a baseline checkout, in one run (issue #15):
 *   node --conditions=source --import tsx bench/pipeline/latency.bench.ts
 * Per tree (this one, then BASELINE_DIR), one `doppel up` stack on free ports and a fresh
 * home; on it, timed as the CLI user sees it:
 *   `doppel index SCANSET` (images/s), `doppel scan SCANSET` (queries/s: every file of the
 *   set is a query), BENCH_QUERIES single /duplicates calls from one client (p50/p99 and the
 *   per-stage split), then the same after `doppel index` of BENCH_DISTRACTORS more images.
 * SCANSET = the dev originals + every BENCH_SCAN_EVERY-th dev query. One raw fp32 batch-1
 * session.run of the default model (2 threads, the encoder's options) is measured before
 * each tree's stack starts and after it stops; the ratios use the median of all of them.
 * Env: BENCH_DIR (../shared/bench/dev), BASELINE_DIR (/work/baseline-71052c2; '' to skip),
 * DISTRACTORS (/work/distractors), BENCH_DISTRACTORS (10000; 0 skips the large case),
 * BENCH_QUERIES (100), BENCH_SCAN_EVERY (4), BENCH_TREES (both; `current` or `baseline`), MODEL_PATH (models/resnet18.onnx; the
 * current tree's encoder also reads MODEL_PRECISION from the environment).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { placeFile } from '../distractors/placed.files.js';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { createMatchingClient, createPipelineClient } from '@doppel/clients';
import { freePorts } from '@doppel/service-kit/testing';
import { figure } from '../figures.record.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const env = process.env;
const dev = resolve(env.BENCH_DIR ?? join(repo, '..', 'shared', 'bench', 'dev'));
const baseline = env.BASELINE_DIR ?? '/work/baseline-71052c2';
const distractorDir = env.DISTRACTORS ?? '/work/distractors';
const nDistractors = existsSync(distractorDir) ? Number(env.BENCH_DISTRACTORS ?? 10000) : 0;
const nQueries = Number(env.BENCH_QUERIES ?? 100);
const scanEvery = Number(env.BENCH_SCAN_EVERY ?? 4);
const modelPath = resolve(env.MODEL_PATH ?? join(repo, 'models', 'resnet18.onnx'));

const log = (s: string) => process.stderr.write(`${s}\n`);
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? NaN;
const median = (xs: number[]) => quantile(xs, 0.5);

// The image root both trees serve: hard links when the file system allows (no copy of 10k files).
const work = join(repo, '.doppel', 'latency-bench');
rmSync(work, { recursive: true, force: true });
const root = join(work, 'images');
for (const f of readdirSync(join(dev, 'index'))) placeFile(join(dev, 'index', f), join(root, 'scanset', 'index', f));
const queryFiles = readdirSync(join(dev, 'queries')).sort().filter((_, i) => i % scanEvery === 0);
for (const f of queryFiles) placeFile(join(dev, 'queries', f), join(root, 'scanset', 'queries', f));
const distractors = nDistractors > 0
  ? readdirSync(distractorDir).filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).sort().slice(0, nDistractors)
  : [];
for (const f of distractors) placeFile(join(distractorDir, f), join(root, 'distractors', f));
const scanset = readdirSync(join(root, 'scanset'), { recursive: true }).filter((f) => /\.(jpe?g|png|webp)$/i.test(String(f))).length;
const latencyQueries = queryFiles.filter((_, i) => i % Math.max(1, Math.floor(queryFiles.length / nQueries)) === 0).slice(0, nQueries);

/** One raw fp32 batch-1 forward pass of the default model: median of 40 runs. */
async function rawForwardMs(): Promise<number> {
  const s = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 2, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
  const x = new ort.Tensor('float32', Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => Math.sin(i) * 1.5), [1, 3, 224, 224]);
  const input = s.inputNames[0]!;
  for (let i = 0; i < 5; i++) await s.run({ [input]: x });
  const ms: number[] = [];
  for (let i = 0; i < 40; i++) {
    const t0 = performance.now();
    await s.run({ [input]: x });
    ms.push(performance.now() - t0);
  }
  await s.release();
  return median(ms);
}

interface Tree { name: string; dir: string; cli: string }
const trees: Tree[] = [{ name: 'this branch', dir: repo, cli: join(repo, 'packages', 'cli', 'bin', 'doppel.mjs') }];
if (baseline && existsSync(join(baseline, 'bin', 'doppel.mjs'))) trees.push({ name: `baseline ${baseline}`, dir: baseline, cli: join(baseline, 'bin', 'doppel.mjs') });
// BENCH_TREES=baseline (or =current) runs one side only, when a whole run does not fit.
if (env.BENCH_TREES) trees.splice(0, trees.length, ...trees.filter((t) => (env.BENCH_TREES === 'baseline') === (t.dir !== repo)));

function run(tree: Tree, args: string[], home: string): Promise<number> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [tree.cli, ...args, '--home', home], { cwd: tree.dir, env: { ...env, DOPPEL_HOME: home }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-2000); });
    child.on('exit', (code) => (code === 0 ? res(performance.now() - t0) : rej(new Error(`${tree.name}: doppel ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

async function waitReady(url: string, child: ChildProcess): Promise<void> {
  const client = createPipelineClient({ baseUrl: url, timeoutMs: 2000, retries: 0 });
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`doppel up exited with ${child.exitCode}`);
    try { await client.ready(); return; } catch { await new Promise((r) => setTimeout(r, 500)); }
  }
  throw new Error('the stack did not become ready in 5 minutes');
}

/** upload_*: the same queries sent as bytes (image_base64): never indexed, so always encoded. */
interface Phase { index_images_per_s: number; scan_queries_per_s: number; p50: number; p99: number; upload_p50: number; upload_p99: number; stages: Record<string, number>; extract_ms?: number; indexed: number; one_orientation?: number }
const results: Array<{ tree: string; small: Phase; large?: Phase }> = [];
const forward: number[] = [];

log(`${cpus().length} cores; scan set ${scanset} images (${queryFiles.length} queries + originals), ${latencyQueries.length} latency queries, ${distractors.length} distractors; load ${load()}`);
for (const tree of trees) {
  forward.push(await rawForwardMs());
  log(`raw fp32 batch-1 forward ${forward.at(-1)!.toFixed(2)} ms; load ${load()}`);
  const home = join(work, `home-${results.length}`);
  const [p, e, s, m] = await freePorts(4);
  const ports = ['--port', String(p), '--encoder-port', String(e), '--search-port', String(s), '--matching-port', String(m)];
  const up = spawn(process.execPath, [tree.cli, 'up', '--images', root, '--model', modelPath, ...ports, '--home', home],
    { cwd: tree.dir, env: { ...env, DOPPEL_HOME: home }, stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    await waitReady(`http://127.0.0.1:${p}`, up);
    const pipeline = createPipelineClient({ baseUrl: `http://127.0.0.1:${p}`, timeoutMs: 600_000, retries: 0 });
    const matching = createMatchingClient({ baseUrl: `http://127.0.0.1:${m}`, timeoutMs: 60_000, retries: 0 });
    const phase = async (indexDir: string, indexCount: number, indexed: number): Promise<Phase> => {
      const indexMs = await run(tree, ['index', join(root, indexDir), ...ports], home);
      const scanMs = await run(tree, ['scan', join(root, 'scanset'), '--out', join(home, 'report.html'), ...ports], home);
      const lat: number[] = [];
      const stages: Record<string, number[]> = {};
      let oneOrientation = 0;
      for (const q of latencyQueries) {
        const t0 = performance.now();
        const r = await pipeline.duplicates({ relative_path: `scanset/queries/${q}` });
        lat.push(performance.now() - t0);
        for (const [k, v] of Object.entries(r.timings_ms)) (stages[k] ??= []).push(v);
        // The baseline has no orientation cascade (and no such field): it searches 8 always.
        if (r.orientations_searched === 1) oneOrientation++;
      }
      // A query by path of an indexed file reuses its stored fingerprint (this tree); a picture
      // sent as bytes is encoded: both are timed, and the targets apply to both.
      const upload: number[] = [];
      for (const q of latencyQueries) {
        const bytes = readFileSync(join(root, 'scanset', 'queries', q)).toString('base64');
        const t0 = performance.now();
        await pipeline.duplicates({ image_base64: bytes });
        upload.push(performance.now() - t0);
      }
      let extract: number | undefined;
      if (tree.dir === repo) { // the baseline has no /prepare
        const ms: number[] = [];
        for (const q of latencyQueries.slice(0, 30)) ms.push((await matching.prepare({ candidate: `scanset/queries/${q}` })).timings_ms.extract);
        extract = median(ms);
      }
      const out: Phase = {
        indexed,
        index_images_per_s: indexCount / (indexMs / 1000),
        scan_queries_per_s: scanset / (scanMs / 1000),
        p50: median(lat), p99: quantile(lat, 0.99), upload_p50: median(upload), upload_p99: quantile(upload, 0.99),
        stages: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, median(v)])),
        ...(extract !== undefined ? { extract_ms: extract } : {}),
        ...(tree.dir === repo ? { one_orientation: oneOrientation / latencyQueries.length } : {}),
      };
      log(`${tree.name}, ${indexed} indexed: ${JSON.stringify(out)}; load ${load()}`);
      return out;
    };
    const small = await phase('scanset', scanset, scanset);
    const large = distractors.length > 0 ? await phase('distractors', distractors.length, scanset + distractors.length) : undefined;
    results.push({ tree: tree.name, small, ...(large ? { large } : {}) });
  } finally {
    up.kill('SIGTERM');
    await new Promise((r) => up.once('exit', r));
  }
  forward.push(await rawForwardMs());
  log(`raw fp32 batch-1 forward ${forward.at(-1)!.toFixed(2)} ms; load ${load()}`);
}

const fwd = median(forward);
const f1 = (v: number) => v.toFixed(1);
console.log(`\nraw fp32 batch-1 forward pass of ${modelPath}: ${fwd.toFixed(2)} ms (median of ${forward.map((v) => v.toFixed(2)).join(', ')}); load at end ${load()}`);
console.log(`encoder precision of this branch: ${env.MODEL_PRECISION ?? 'fp32'}\n`);
console.log('| tree | indexed | query p50 ms (x fwd) | p99 ms (x fwd) | sent as bytes: p50 / p99 ms (x fwd) | stages p50 ms | query SIFT extract ms | scan queries/s | index images/s | settled in 1 orientation |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of results) {
  for (const ph of [r.small, r.large].filter((x): x is Phase => x !== undefined)) {
    const st = Object.entries(ph.stages).map(([k, v]) => `${k} ${f1(v)}`).join(', ');
    console.log(`| ${r.tree} | ${ph.indexed} | ${f1(ph.p50)} (${(ph.p50 / fwd).toFixed(1)}x) | ${f1(ph.p99)} (${(ph.p99 / fwd).toFixed(1)}x) | ${f1(ph.upload_p50)} / ${f1(ph.upload_p99)} (${(ph.upload_p50 / fwd).toFixed(1)}x / ${(ph.upload_p99 / fwd).toFixed(1)}x) | ${st} | ${ph.extract_ms !== undefined ? f1(ph.extract_ms) : '-'} | ${ph.scan_queries_per_s.toFixed(2)} | ${ph.index_images_per_s.toFixed(1)} | ${ph.one_orientation !== undefined ? `${(100 * ph.one_orientation).toFixed(0)}%` : '-'} |`);
  }
}
// The figures `pnpm bench` keeps (bench/figures.record.ts): this tree as `latency.SIZE.*`,
// the baseline as `latency.SIZE.baseline.*`, the ratios as `latency.SIZE.*_x`.
figure('latency.forward_ms', 'one raw fp32 batch-1 forward pass of the default model (median of the runs around each stack)', Number(fwd.toFixed(2)), 'ms');
for (const [i, r] of results.entries()) {
  for (const [size, ph] of [['small', r.small], ['large', r.large]] as const) {
    if (!ph) continue;
    const k = `latency.${size}${i === 0 ? '' : '.baseline'}`;
    const who = `${i === 0 ? 'this tree' : 'baseline'}, ${ph.indexed} indexed`;
    figure(`${k}.indexed`, `${who}: images indexed`, ph.indexed);
    figure(`${k}.p50_ms`, `${who}: query p50`, Number(ph.p50.toFixed(1)), 'ms');
    figure(`${k}.p99_ms`, `${who}: query p99`, Number(ph.p99.toFixed(1)), 'ms');
    figure(`${k}.p50_x`, `${who}: query p50 in forward passes`, Number((ph.p50 / fwd).toFixed(1)), 'x');
    figure(`${k}.p99_x`, `${who}: query p99 in forward passes`, Number((ph.p99 / fwd).toFixed(1)), 'x');
    figure(`${k}.upload_p50_x`, `${who}: query sent as bytes (encoded), p50 in forward passes`, Number((ph.upload_p50 / fwd).toFixed(1)), 'x');
    figure(`${k}.upload_p99_x`, `${who}: query sent as bytes (encoded), p99 in forward passes`, Number((ph.upload_p99 / fwd).toFixed(1)), 'x');
    for (const [st, v] of Object.entries(ph.stages)) figure(`${k}.${st}_ms`, `${who}: ${st} stage p50`, Number(v.toFixed(1)), 'ms');
    if (ph.extract_ms !== undefined) figure(`${k}.extract_ms`, `${who}: the query's SIFT extraction p50 (POST /prepare)`, Number(ph.extract_ms.toFixed(1)), 'ms');
    if (ph.one_orientation !== undefined) figure(`${k}.one_orientation`, `${who}: queries settled in their own orientation (1 forward pass)`, Number((100 * ph.one_orientation).toFixed(1)), '%');
    figure(`${k}.scan_qps`, `${who}: doppel scan`, Number(ph.scan_queries_per_s.toFixed(2)), 'queries/s');
    figure(`${k}.index_img_s`, `${who}: doppel index`, Number(ph.index_images_per_s.toFixed(1)), 'images/s');
  }
}
if (results.length === 2) {
  const [cur, base] = results as [typeof results[0], typeof results[0]];
  for (const k of ['small', 'large'] as const) {
    const a = cur[k]; const b = base[k];
    if (!a || !b) continue;
    figure(`latency.${k}.scan_x`, `${a.indexed} indexed: doppel scan queries/s over the baseline's`, Number((a.scan_queries_per_s / b.scan_queries_per_s).toFixed(2)), 'x');
    figure(`latency.${k}.index_x`, `${a.indexed} indexed: doppel index images/s over the baseline's`, Number((a.index_images_per_s / b.index_images_per_s).toFixed(2)), 'x');
    console.log(`${a.indexed} indexed: scan queries/s ${(a.scan_queries_per_s / b.scan_queries_per_s).toFixed(2)}x baseline (target 2x), `
      + `indexing images/s ${(a.index_images_per_s / b.index_images_per_s).toFixed(2)}x (target 1.5x), `
      + `p50 ${(a.p50 / fwd).toFixed(1)}x fwd (target 8x), p99 ${(a.p99 / fwd).toFixed(1)}x fwd (target 16x); `
      + `sent as bytes: p50 ${(a.upload_p50 / fwd).toFixed(1)}x, p99 ${(a.upload_p99 / fwd).toFixed(1)}x`);
  }
}
rmSync(work, { recursive: true, force: true });
