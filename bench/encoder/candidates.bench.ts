/**
 * Candidate recall of the true original with unrelated images indexed, per fingerprint
 * variant, brute force (the figures measure the fingerprint, not the ANN index):
 *   node --conditions=source --import tsx bench/encoder/candidates.bench.ts encode   # once, caches descriptors
 *   node --conditions=source --import tsx bench/encoder/candidates.bench.ts score    # tables
 * Env: BENCH_DIR (../shared/bench/dev), DISTRACTORS (/work/distractors), DISTRACTOR_N (20000),
 * CACHE (/tmp/doppel-candidates), MODEL_PATH (models/resnet18.onnx), PREPS (what to encode),
 * FIT_DIR (the `fit` set: whitening fit images, e.g. written by the collector of `pnpm models`).
 *
 * One forward pass per image and preprocessing gives the layer3 map (14x14 cells); from it
 * the whole-image vector and 13 regional vectors (R-MAC grid: 2x2 windows of 9 cells, 3x3
 * of 7) are pooled, by average (GAP) and by generalised mean (GeM, p = 3). Scores: cosine;
 * an image's score is its best entry against the query's best orientation.
 */
import { createRequire } from 'node:module';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeImage } from '../../services/image-encoder/src/preprocess.image.js';
import { exposeFeature } from '../../services/image-encoder/src/feature-output.graph.js';
import { decodeModel } from '../../services/image-encoder/src/onnx-proto.schema.js';
import { imageTensors } from '../../services/image-encoder/src/tensor-layout.transform.js';
import { originalOfQuery, transformOf } from '@doppel/cli';
import { byPixelHash } from '@doppel/image-encoder';
import pLimit from 'p-limit';
import { V2_TRANSFORMS } from '../matching/dev-split.bench.js';

const encoderRequire = createRequire(new URL('../../services/image-encoder/package.json', import.meta.url));
const ort = encoderRequire('onnxruntime-node') as typeof import('onnxruntime-node');

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const dir = resolve(process.env.BENCH_DIR ?? join(repo, '..', 'shared', 'bench', 'dev'));
const distractorDir = resolve(process.env.DISTRACTORS ?? '/work/distractors');
const distractorN = Number(process.env.DISTRACTOR_N ?? 20000);
const distractorFrom = Number(process.env.DISTRACTOR_FROM ?? 0);
const cache = resolve(process.env.CACHE ?? '/tmp/doppel-candidates');
const modelPath = resolve(process.env.MODEL_PATH ?? join(repo, 'models', 'resnet18.onnx'));
const SIZE = 224;
const DIM = 256;
const GRID = 14;

export const V2 = [...V2_TRANSFORMS];

/** Windows [y, x, h, w] on the 14x14 map: the whole map, then R-MAC levels 2 and 3. */
function windows(): Array<[number, number, number, number]> {
  const out: Array<[number, number, number, number]> = [[0, 0, GRID, GRID]];
  for (const [n, w] of [[2, 9], [3, 7]] as const) {
    const starts = Array.from({ length: n }, (_, i) => Math.round((i * (GRID - w)) / (n - 1)));
    for (const y of starts) for (const x of starts) out.push([y, x, w, w]);
  }
  return out;
}
const WINDOWS = windows();
/** Vectors per image row: GAP of each window, then GeM of each window. */
const K = 2 * WINDOWS.length;

type Prep = 'cc' | 'cc-trim' | 'whole' | 'whole-trim' | 'cc-grey';
interface Job { set: 'index' | 'queries' | 'distractors' | 'distractors-tail' | 'fit'; prep: Prep; orient: 1 | 8 }

function normalise(v: Float32Array, off: number): void {
  let ss = 0;
  for (let i = 0; i < DIM; i++) ss += v[off + i]! * v[off + i]!;
  const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
  for (let i = 0; i < DIM; i++) v[off + i]! *= inv;
}

/** Pools one [C, 14, 14] map into K unit vectors. */
function pool(map: Float32Array, off: number, out: Float32Array, outOff: number): void {
  const cells = GRID * GRID;
  WINDOWS.forEach(([y0, x0, h, w], wi) => {
    const gap = outOff + wi * DIM;
    const gem = outOff + (WINDOWS.length + wi) * DIM;
    for (let c = 0; c < DIM; c++) {
      let s = 0;
      let s3 = 0;
      const base = off + c * cells;
      for (let y = y0; y < y0 + h; y++) {
        for (let x = x0; x < x0 + w; x++) {
          const v = map[base + y * GRID + x]!;
          s += v;
          s3 += v * v * v;
        }
      }
      out[gap + c] = s / (h * w);
      out[gem + c] = Math.cbrt(s3 / (h * w));
    }
    normalise(out, gap);
    normalise(out, gem);
  });
}


async function filesOf(set: Job['set']): Promise<string[]> {
  if (set === 'index') return (await readdir(join(dir, 'index'))).sort().map((f) => join(dir, 'index', f));
  if (set === 'queries') {
    const truth = (JSON.parse(await readFile(join(dir, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
    return Object.keys(truth).filter((q) => truth[q] !== null).sort().map((f) => join(dir, 'queries', f));
  }
  // Ordered by the pixel hash in the name (bench/distractors/build.ts): any prefix is a
  // random sample across the packages, so the 1k set is inside the 10k set.
  if (set === 'fit') {
    const fitDir = resolve(process.env.FIT_DIR ?? '/tmp/doppel-fit-images');
    return (await readdir(fitDir)).sort(byPixelHash).map((f) => join(fitDir, f));
  }
  const byHash = (f: string) => f.split('__')[1] ?? f;
  // distractors-tail: the ones past DISTRACTOR_N, never indexed by the bench (a fit set for whitening).
  const sorted = (await readdir(distractorDir)).sort((a, b) => (byHash(a) < byHash(b) ? -1 : byHash(a) > byHash(b) ? 1 : 0));
  // DISTRACTOR_FROM: only the distractors from this one on (a cache to append to one of the first ones).
  return (set === 'distractors' ? sorted.slice(distractorFrom, distractorN) : sorted.slice(distractorN)).map((f) => join(distractorDir, f));
}

async function encode(jobs: Job[]): Promise<void> {
  await mkdir(cache, { recursive: true });
  const bytes = await readFile(modelPath);
  const graph = decodeModel(bytes).graph!;
  // The map the model's own GlobalAveragePool reads.
  const gapNode = (graph.node ?? []).find((n) => n.op_type === 'GlobalAveragePool');
  if (!gapNode?.input?.[0]) throw new Error('no GlobalAveragePool in the model');
  const raw = exposeFeature(bytes, gapNode.input[0], false, false);
  const session = await ort.InferenceSession.create(raw.bytes, { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  for (const job of jobs) {
    const files = await filesOf(job.set);
    const name = `${job.set}-${job.prep}-o${job.orient}${job.set === 'distractors' && distractorFrom > 0 ? `-from${distractorFrom}` : ''}`;
    const t0 = performance.now();
    const perRow = job.set === 'queries' ? 2 : K;
    const out = new Float32Array(files.length * job.orient * perRow * DIM);
    const batch = job.orient === 8 ? 2 : 16;
    const chunks: number[][] = [];
    for (let i = 0; i < files.length; i += batch) chunks.push(Array.from({ length: Math.min(batch, files.length - i) }, (_, k) => i + k));
    let failed = 0;
    const plane = 3 * SIZE * SIZE;
    await pLimit(2).map(chunks, async (idx) => {
      const tensors = await Promise.all(idx.map(async (i) => {
        let px: Uint8Array;
        try {
          px = await decodeImage(await readFile(files[i]!), { size: SIZE, mode: job.prep.startsWith('whole') ? 'whole' : 'center-crop', maxPixels: 100_000_000, trim: job.prep.endsWith('trim') });
        } catch { failed++; px = new Uint8Array(plane).fill(128); }
        if (job.prep === 'cc-grey') {
          for (let p = 0; p < px.length; p += 3) { const g = Math.round(0.299 * px[p]! + 0.587 * px[p + 1]! + 0.114 * px[p + 2]!); px[p] = g; px[p + 1] = g; px[p + 2] = g; }
        }
        return imageTensors(px, SIZE, job.orient === 8);
      }));
      const input = new Float32Array(tensors.length * job.orient * plane);
      tensors.forEach((t, k) => input.set(t, k * job.orient * plane));
      const rows = tensors.length * job.orient;
      const res = await session.run({ [graph.input![0]!.name]: new ort.Tensor('float32', input, [rows, 3, SIZE, SIZE]) }, [raw.output]);
      const map = res[raw.output]!.data as Float32Array;
      const tmp = new Float32Array(K * DIM);
      for (let r = 0; r < rows; r++) {
        pool(map, r * DIM * GRID * GRID, tmp, 0);
        const dst = ((idx[0]! * job.orient) + r) * perRow * DIM;
        if (perRow === K) out.set(tmp, dst);
        else { out.set(tmp.subarray(0, DIM), dst); out.set(tmp.subarray(WINDOWS.length * DIM, (WINDOWS.length + 1) * DIM), dst + DIM); }
      }
    });
    await writeFile(join(cache, `${name}.f32`), new Uint8Array(out.buffer));
    await writeFile(join(cache, `${name}.json`), JSON.stringify({ files: files.map((f) => f.replace(/^.*\//, '')), orient: job.orient, perRow, windows: WINDOWS }));
    const s = (performance.now() - t0) / 1000;
    console.log(`${name}: ${files.length} images x ${job.orient} in ${s.toFixed(0)} s (${((files.length * job.orient) / s).toFixed(1)} passes/s), ${failed} undecodable`);
  }
  await session.release();
}

if (process.argv[2] === 'encode') {
  const preps = (process.env.PREPS ?? 'index:cc,index:cc-trim,index:whole,index:whole-trim,index:cc-grey,queries:cc:8,queries:cc-trim:8,distractors:cc,distractors:cc-trim,distractors:whole-trim').split(',');
  await encode(preps.map((p) => {
    const [set, prep, o] = p.split(':') as [Job['set'], Prep, string | undefined];
    return { set, prep, orient: o === '8' ? 8 : 1 };
  }));
} else if (process.argv[2] === 'score') {
  const { score } = await import('./candidates.score.js');
  const all = WINDOWS.map((_, i) => i);
  const whole = [0];
  const o = (process.env.QUERY_ORIENT === '8' ? 8 : 1) as 1 | 8;
  const part = (prep: string, windows: number[], pool: 'gap' | 'gem' = 'gap') => ({ prep, pool, windows });
  const catalogue = {
    base: { index: [part('cc', whole)], query: [part('cc', whole)] },
    gem: { index: [part('cc', whole, 'gem')], query: [part('cc', whole, 'gem')] },
    trim: { index: [part('cc-trim', whole)], query: [part('cc-trim', whole)] },
    regions: { index: [part('cc', all)], query: [part('cc', whole)] },
    'trim-regions': { index: [part('cc-trim', all)], query: [part('cc-trim', whole)] },
    'trim-regions-gem': { index: [part('cc-trim', all, 'gem')], query: [part('cc-trim', whole, 'gem')] },
    'trim-regions-whole': { index: [part('cc-trim', all), part('whole-trim', all)], query: [part('cc-trim', whole)] },
    'trim-whole-regions': { index: [part('cc-trim', whole), part('whole-trim', all)], query: [part('cc-trim', whole)] },
    whole: { index: [part('whole', whole)], query: [part('whole', whole)] },
    'whole-regions': { index: [part('whole', all)], query: [part('whole', whole)] },
    'whole-trim-regions': { index: [part('whole-trim', all)], query: [part('whole-trim', whole)] },
    'cc-regions+whole-regions': { index: [part('cc', all), part('whole', all)], query: [part('cc', whole)] },
    'trim-regions-q2': { index: [part('cc-trim', all)], query: [part('cc-trim', whole), part('cc', whole)] },
  } as const;
  const names = (process.env.VARIANTS ?? Object.keys(catalogue).join(',')).split(',') as Array<keyof typeof catalogue>;
  await score({
    cache, dir, windows: WINDOWS, dim: DIM, originalOfQuery, transformOf, v2: V2,
    nDistractors: distractorN, detail: process.env.DETAIL !== '0', svg: process.env.SVG,
    variants: names.map((n) => ({ name: `${n} (query orientations ${o})`, index: [...catalogue[n].index], query: [...catalogue[n].query], queryOrient: o })),
  });
}
