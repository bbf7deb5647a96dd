/**
 * Duplicate recall of the two resize modes on the dev benchmark, with the real model:
 *   node --conditions=source --import tsx bench/encoder/recall.bench.ts
 * Index images are encoded as is; each query (truth non-null) with its 8 orientations;
 * score of an index image = max cosine over the orientations; brute force, in process.
 * Env: BENCH_DIR (default ../shared/bench/dev), MODEL_PATH (default models/resnet18.onnx).
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeImage, loadOnnxModel } from '@doppel/image-encoder';
import pLimit from 'p-limit';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const dir = resolve(process.env.BENCH_DIR ?? join(repo, '..', 'shared', 'bench', 'dev'));
const modelPath = resolve(process.env.MODEL_PATH ?? join(repo, 'models', 'resnet18.onnx'));
const truth = (JSON.parse(await readFile(join(dir, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
const queries = Object.entries(truth).filter((e): e is [string, string] => e[1] !== null);
const indexNames = [...new Set(Object.values(truth).filter((v): v is string => v !== null))];
const { readdir } = await import('node:fs/promises');
const allIndex = (await readdir(join(dir, 'index'))).sort();
for (const n of indexNames) if (!allIndex.includes(n)) throw new Error(`truth names ${n}, missing from index/`);

const model = await loadOnnxModel({ path: modelPath, intraOpThreads: 2, maxBatch: 16, batchWindowMs: 2, queueLimit: 100000 });

const dot = (a: Float32Array, b: Float32Array) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!; return s; };

for (const mode of ['whole', 'center-crop'] as const) {
  const t0 = performance.now();
  const pre = { size: model.inputSize, mode, maxPixels: 100_000_000 };
  const index = await pLimit(4).map(allIndex, async (n) => (await model.infer(await decodeImage(await readFile(join(dir, 'index', n)), pre)))[0]!);
  const perTransform = new Map<string, { n: number; top1: number; top10: number }>();
  let top1 = 0; let top10 = 0; let idTop1 = 0;
  await pLimit(4).map(queries, async ([q, want]) => {
    const fps = await model.infer(await decodeImage(await readFile(join(dir, 'queries', q)), pre), 'all');
    const scores = index.map((v) => Math.max(...fps.map((f) => dot(f, v))));
    const idScores = index.map((v) => dot(fps[0]!, v));
    const rank = [...scores.keys()].sort((a, b) => scores[b]! - scores[a]!);
    const w = allIndex.indexOf(want);
    const hit1 = rank[0] === w; const hit10 = rank.slice(0, 10).includes(w);
    if (hit1) top1++; if (hit10) top10++;
    if (idScores.indexOf(Math.max(...idScores)) === w) idTop1++;
    const tr = q.split('__').pop()!.replace(/\.[a-z]+$/, '');
    const s = perTransform.get(tr) ?? { n: 0, top1: 0, top10: 0 };
    s.n++; if (hit1) s.top1++; if (hit10) s.top10++;
    perTransform.set(tr, s);
  });
  const pct = (x: number) => `${((100 * x) / queries.length).toFixed(1)}%`;
  console.log(`${mode}: queries=${queries.length} index=${allIndex.length} top-1=${pct(top1)} (${top1}) top-10=${pct(top10)} (${top10}) identity-only top-1=${pct(idTop1)}  [${((performance.now() - t0) / 1000).toFixed(0)} s]`);
  console.log('  per transform top-1: ' + [...perTransform].sort().map(([k, s]) => `${k} ${s.top1}/${s.n}`).join(', '));
}
await model.close();
