/**
 * Re-ranking a larger k from search (issue #12), on the descriptors cached by
 * candidates.bench.ts (run its `encode` first: index:cc, queries:cc:8, distractors:cc):
 *   CACHE=/tmp/cand-final node --conditions=source --import tsx bench/encoder/rerank.bench.ts
 * Env: BENCH_DIR, CACHE, DISTRACTOR_N (20000), KS (10,20,50,100,200), WHITEN (alpha, 0: none),
 * WHITEN_FIT (collection | tail: the distractors past DISTRACTOR_N, `PREPS=distractors-tail:cc` encode),
 * WHITEN_FIT=fit (the cached `fit` set, FIT_PACKAGES=a,b: only those packages),
 * WHITENING_PATH (a fit file, e.g. models/resnet18.pca.json that `pnpm models` writes: applied instead of WHITEN),
 * REGIONS=0 (skip whitening the regional vectors), PER_TRANSFORM (rule:k,...), SVG (plot file: recall@10
 * against collection size, plain top 10 and SVG_RULE (hub0.75:100) after re-ranking, with the log-N fit to 100k).
 * GREY (a second, greyscale fingerprint per collection image, `PREPS=index:cc-grey,distractors:cc-grey,queries:cc-grey`):
 * `entries`: every query vector is also scored against the grey entries (an image's score is its
 * best entry); `colourless`: only queries without colour are; `query`: as `entries`, and the
 * query's own grey fingerprint (upright only) is scored against the grey entries too.
 * TRACK (copy files, comma-separated): their rank is printed with the misses.
 *
 * Brute force stands in for the ANN index: for each query, the collection's images are
 * scored by the best cosine over the query's 8 orientations (what the pipeline's merged
 * batch search returns), the top k are kept, then re-scored by each rule, and recall@10
 * of the true original is counted after the re-rank.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { originalOfQuery, transformOf } from '@doppel/cli';
import { load, matmulSession, plot, SIZES } from './candidates.score.js';
import { devSplit, V2_TRANSFORMS } from '../matching/dev-split.bench.js';
import { fitWhitening, whiteningFrom, type Whitening, type WhiteningFile } from '../../services/image-encoder/src/pca-whitening.transform.js';

const ort = createRequire(new URL('../../services/image-encoder/package.json', import.meta.url))('onnxruntime-node') as typeof import('onnxruntime-node');

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const dir = resolve(process.env.BENCH_DIR ?? join(repo, '..', 'shared', 'bench', 'dev'));
const cache = resolve(process.env.CACHE ?? '/tmp/doppel-candidates');
const nDist = Number(process.env.DISTRACTOR_N ?? 20000);
const KS = (process.env.KS ?? '10,20,50,100,200').split(',').map(Number);
const KMAX = Math.max(...KS);
const DIM = 256;
const NW = 14;
/** PREP (cc): the cached preprocessing of the collection and the queries (cc-trim: border trimming); Q_ORIENT (8 or 1) the query's orientations. */
const PREP = process.env.PREP ?? 'cc';
const O = Number(process.env.Q_ORIENT ?? 8);
/** Q_ORIENTS (e.g. 0,1,2,3): score only these of the query's cached orientations (ORIENTATION_NAMES order). */
const OS = process.env.Q_ORIENTS ? process.env.Q_ORIENTS.split(',').map(Number) : Array.from({ length: O }, (_, o) => o);
if (OS.some((o) => !(o >= 0 && o < O))) throw new Error(`Q_ORIENTS names an orientation outside 0..${O - 1}`);

const ctx = { cache, dir, windows: [], dim: DIM, originalOfQuery, transformOf, v2: [...V2_TRANSFORMS] };
const idx = await load(ctx, 'index', PREP, 1);
const dis = await load(ctx, 'distractors', PREP, 1);
const qs = await load(ctx, 'queries', PREP, O);
const nImg = idx.files.length + nDist;
const nq = qs.files.length;
/** Whole-image GAP vector and the 13 regional GAP vectors of every collection image. */
const whole = new Float32Array(nImg * DIM);
const regions = new Float32Array(nImg * (NW - 1) * DIM);
for (let i = 0; i < nImg; i++) {
  const [l, j] = i < idx.files.length ? [idx, i] : [dis, i - idx.files.length];
  const off = j * l.perRow * DIM;
  whole.set(l.data.subarray(off, off + DIM), i * DIM);
  regions.set(l.data.subarray(off + DIM, off + NW * DIM), i * (NW - 1) * DIM);
}
const q = new Float32Array(nq * O * DIM);
for (let r = 0; r < nq * O; r++) q.set(qs.data.subarray(r * qs.perRow * DIM, r * qs.perRow * DIM + DIM), r * DIM);
// GREY: each collection image's greyscale fingerprint (same whitening), scored as one more entry of the image.
const greyMode = process.env.GREY ?? '';
const grey = greyMode ? new Float32Array(nImg * DIM) : undefined;
let qGrey: Float32Array | undefined;
let colourless: boolean[] | undefined;
if (grey) {
  const [gi, gd] = [await load(ctx, 'index', 'cc-grey', 1), await load(ctx, 'distractors', 'cc-grey', 1)];
  if (gd.files.slice(0, nDist).join('\n') !== dis.files.slice(0, nDist).join('\n')) throw new Error('the grey distractor cache holds other files');
  for (let i = 0; i < nImg; i++) {
    const [l, j] = i < idx.files.length ? [gi, i] : [gd, i - idx.files.length];
    grey.set(l.data.subarray(j * l.perRow * DIM, j * l.perRow * DIM + DIM), i * DIM);
  }
  if (greyMode === 'query') {
    const gq = await load(ctx, 'queries', 'cc-grey', 1);
    qGrey = new Float32Array(nq * DIM);
    for (let r = 0; r < nq; r++) qGrey.set(gq.data.subarray(r * gq.perRow * DIM, r * gq.perRow * DIM + DIM), r * DIM);
  }
  if (greyMode === 'colourless') {
    const { isColourless } = await import('../../services/image-encoder/src/colourless.image.js');
    const { decodeImage } = await import('../../services/image-encoder/src/preprocess.image.js');
    colourless = await Promise.all(qs.files.map(async (f) => isColourless(await decodeImage(await readFile(join(dir, 'queries', f)), { size: 224, mode: 'center-crop', maxPixels: 1e8 }))));
    console.log(`colourless queries: ${colourless.filter(Boolean).length} (${[...new Set(qs.files.filter((_, i) => colourless![i]).map(transformOf))].join(', ')})`);
  }
}
// WHITEN=alpha: PCA whitening (eigenvalues^-alpha, 0.5 = full) fitted on the indexed
// distractors (WHITEN_FIT=collection) or on the distractors past DISTRACTOR_N (WHITEN_FIT=tail,
// cached as distractors-tail-cc-o1), never on dev-set images.
const alpha = Number(process.env.WHITEN ?? 0);
if (alpha > 0 || process.env.WHITENING_PATH) {
  let fit: Float32Array | undefined;
  let from: string;
  let file: Whitening | undefined;
  if (process.env.WHITENING_PATH) {
    const f = JSON.parse(await readFile(process.env.WHITENING_PATH, 'utf8')) as WhiteningFile;
    file = whiteningFrom(f);
    from = `${process.env.WHITENING_PATH} (alpha ${f.alpha}): ${f.fitted_on.slice(0, 160)}`;
  } else if (process.env.WHITEN_FIT === 'fit') {
    // Images of other Debian packages (candidates.bench.ts `PREPS=fit:cc`, FIT_DIR), optionally
    // only those of FIT_PACKAGES (the package is the file name's prefix).
    const set = await load(ctx, 'fit', 'cc', 1);
    const only = process.env.FIT_PACKAGES?.split(',');
    const rows = set.files.map((f, i) => [f, i] as const).filter(([f]) => !only || only.includes(f.split('__')[0]!));
    fit = new Float32Array(rows.length * DIM);
    rows.forEach(([, i], r) => fit!.set(set.data.subarray(i * set.perRow * DIM, i * set.perRow * DIM + DIM), r * DIM));
    from = `${rows.length} images of ${only?.join(', ') ?? 'every fit package'}`;
  } else if ((process.env.WHITEN_FIT ?? 'collection') === 'tail') {
    const tail = await load(ctx, 'distractors-tail', 'cc', 1);
    fit = new Float32Array(tail.files.length * DIM);
    for (let i = 0; i < tail.files.length; i++) fit.set(tail.data.subarray(i * tail.perRow * DIM, i * tail.perRow * DIM + DIM), i * DIM);
    from = `${tail.files.length} distractors past the indexed ${nDist}`;
  } else {
    fit = whole.subarray(idx.files.length * DIM);
    from = `the ${nDist} indexed distractors`;
  }
  const w = file ?? whiteningFrom(fitWhitening(fit!, DIM, alpha, Number(process.env.WHITEN_FLOOR ?? 1e-3)));
  const apply = (m: Float32Array, rows: number) => { for (let i = 0; i < rows; i++) m.set(w.apply(m.subarray(i * DIM, (i + 1) * DIM)), i * DIM); };
  apply(whole, nImg); apply(q, nq * O);
  if (grey) apply(grey, nImg);
  if (qGrey) apply(qGrey, nq);
  // Regions only matter to the regions rules; whitening them costs 13x the images.
  if (process.env.REGIONS !== '0') apply(regions, nImg * (NW - 1));
  console.log(`whitened (${file ? '' : `alpha ${alpha}, `}fitted on ${from})`);
}
const stem = (f: string) => f.replace(/\.[^.]+$/, '');
const want = qs.files.map((f) => idx.files.findIndex((g) => stem(g) === originalOfQuery(f)));

const session = await matmulSession();
const transpose = (m: Float32Array, rows: number) => {
  const t = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let d = 0; d < DIM; d++) t[d * rows + r] = m[r * DIM + d]!;
  return t;
};
/** Calls back with each block of rows of a·bᵀ (a: [n, DIM], b: [m, DIM]). */
async function products(a: Float32Array, n: number, b: Float32Array, m: number, each: (first: number, count: number, c: Float32Array) => void) {
  const bT = new ort.Tensor('float32', transpose(b, m), [DIM, m]);
  const block = Math.max(1, Math.floor(2e7 / m));
  for (let first = 0; first < n; first += block) {
    const count = Math.min(block, n - first);
    const c = (await session.run({ a: new ort.Tensor('float32', a.subarray(first * DIM, (first + count) * DIM), [count, DIM]), b: bT }))['c']!.data as Float32Array;
    each(first, count, c);
  }
}

const t0 = performance.now();
// best[q * nImg + i]: the best cosine over the query's orientations.
const best = new Float32Array(nq * nImg);
await products(whole, nImg, q, nq * O, (first, count, c) => {
  for (let i = 0; i < count; i++) {
    for (let k = 0; k < nq; k++) {
      let b = -2;
      for (const o of OS) { const s = c[i * nq * O + k * O + o]!; if (s > b) b = s; }
      best[k * nImg + first + i] = b;
    }
  }
});
if (grey) {
  // The grey entries are one more entry of each image: its score is its best entry's.
  await products(grey, nImg, q, nq * O, (first, count, c) => {
    for (let i = 0; i < count; i++) {
      for (let k = 0; k < nq; k++) {
        if (colourless && !colourless[k]) continue;
        let b = best[k * nImg + first + i]!;
        for (const o of OS) { const s = c[i * nq * O + k * O + o]!; if (s > b) b = s; }
        best[k * nImg + first + i] = b;
      }
    }
  });
  if (qGrey) {
    await products(grey, nImg, qGrey, nq, (first, count, c) => {
      for (let i = 0; i < count; i++) for (let k = 0; k < nq; k++) best[k * nImg + first + i] = Math.max(best[k * nImg + first + i]!, c[i * nq + k]!);
    });
  }
}
console.log(`query x collection scores${greyMode ? ` (grey entries: ${greyMode})` : ''}: ${((performance.now() - t0) / 1000).toFixed(0)} s`);

// hub[s][i]: mean of image i's 10 best cosines to the other images of the collection at size s.
const HUB_K = 10;
const sizes = SIZES.filter((s) => s <= nDist);
const bounds = sizes.map((s) => idx.files.length + s);
const hub = sizes.map(() => new Float32Array(nImg));
await products(whole, nImg, whole, nImg, (first, count, c) => {
  const top = new Float32Array(HUB_K);
  for (let i = 0; i < count; i++) {
    top.fill(-2);
    let b = 0;
    for (let j = 0; j <= nImg; j++) {
      if (j === bounds[b]) {
        let s = 0;
        for (let t = 0; t < HUB_K; t++) s += top[t]!;
        hub[b]![first + i] = s / HUB_K;
        if (++b === bounds.length) break;
      }
      if (j === first + i || j === nImg) continue;
      const v = c[i * nImg + j]!;
      if (v > top[HUB_K - 1]!) {
        let t = HUB_K - 1;
        while (t > 0 && top[t - 1]! < v) { top[t] = top[t - 1]!; t--; }
        top[t] = v;
      }
    }
  }
});
console.log(`hubness: ${((performance.now() - t0) / 1000).toFixed(0)} s`);

const dot = (a: Float32Array, ao: number, b: Float32Array, bo: number) => {
  let s = 0;
  for (let d = 0; d < DIM; d++) s += a[ao + d]! * b[bo + d]!;
  return s;
};

interface Cand { i: number; s: number; h: number; reg: number; corr: number; mean: number }
/** Features of (query, image), computed once across sizes. */
const memo = new Map<number, Cand>();
function features(k: number, i: number, b: number, g: Float32Array): Cand {
  const key = k * nImg + i;
  const m = memo.get(key);
  if (m) return { ...m, h: hub[b]![i]! };
  const so = new Float32Array(O);
  let arg = 0;
  for (let o = 0; o < O; o++) { so[o] = dot(q, (k * O + o) * DIM, whole, i * DIM); if (so[o]! > so[arg]!) arg = o; }
  let reg = -2;
  for (let r = 0; r < NW - 1; r++) for (let o = 0; o < O; o++) reg = Math.max(reg, dot(q, (k * O + o) * DIM, regions, (i * (NW - 1) + r) * DIM));
  // Pearson correlation of the candidate's 8 scores with the query's profile at its best orientation.
  const p = g.subarray(arg * O, arg * O + O);
  const ms = so.reduce((a, v) => a + v, 0) / O;
  const mp = p.reduce((a, v) => a + v, 0) / O;
  let num = 0; let ds = 0; let dp = 0;
  for (let o = 0; o < O; o++) { num += (so[o]! - ms) * (p[o]! - mp); ds += (so[o]! - ms) ** 2; dp += (p[o]! - mp) ** 2; }
  const c = { i, s: best[key]!, h: hub[b]![i]!, reg, corr: num / Math.sqrt(ds * dp + 1e-12), mean: ms };
  memo.set(key, c);
  return c;
}
/** Per size, per query: the top KMAX candidates with their features. */
const lists: Cand[][][] = sizes.map(() => []);
for (let k = 0; k < nq; k++) {
  const order = Array.from({ length: nImg }, (_, i) => i).sort((x, y) => best[k * nImg + y]! - best[k * nImg + x]!);
  // The query's own orientation profile: cos(q_o, q_o') for each pair.
  const g = new Float32Array(O * O);
  for (let a = 0; a < O; a++) for (let c = 0; c < O; c++) g[a * O + c] = dot(q, (k * O + a) * DIM, q, (k * O + c) * DIM);
  sizes.forEach((_, b) => {
    const top: Cand[] = [];
    for (const i of order) { if (i < bounds[b]!) { top.push(features(k, i, b, g)); if (top.length === KMAX) break; } }
    lists[b]![k] = top;
  });
  memo.clear();
}
console.log(`candidate lists: ${((performance.now() - t0) / 1000).toFixed(0)} s`);

const truth = (JSON.parse(await readFile(join(dir, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
const halfOf = devSplit((await readdir(join(dir, 'index'))).filter((f) => !f.startsWith('.')), truth);
const groups: Record<string, (f: string) => boolean> = {
  calib: (f) => halfOf(f) === 'calibration',
  held: (f) => halfOf(f) === 'held-back',
  all: () => true,
  v2: (f) => V2_TRANSFORMS.has(transformOf(f)),
  v3: (f) => !V2_TRANSFORMS.has(transformOf(f)),
};

type Rule = (c: Cand) => number;
const rules: Record<string, Rule> = {
  base: (c) => c.s,
  ...Object.fromEntries([0.25, 0.5, 0.75, 1].map((b) => [`hub${b}`, (c: Cand) => c.s - b * c.h])),
  regions: (c) => Math.max(c.s, c.reg),
  ...Object.fromEntries([0.02, 0.05, 0.1].map((g) => [`corr${g}`, (c: Cand) => c.s + g * c.corr])),
  ...Object.fromEntries([0.5, 1].map((b) => [`hub${b}+regions`, (c: Cand) => Math.max(c.s, c.reg) - b * c.h])),
};

/** recall@10 after re-ranking the top k with the rule. */
const recall = (b: number, k: number, rule: Rule, sel: (f: string) => boolean) => {
  let n = 0; let hit = 0;
  qs.files.forEach((f, qi) => {
    if (!sel(f)) return;
    n++;
    const l = lists[b]![qi]!.slice(0, k);
    const t = l.find((c) => c.i === want[qi]);
    if (!t) return;
    const st = rule(t);
    if (l.filter((c) => c !== t && rule(c) > st).length < 10) hit++;
  });
  return hit / Math.max(1, n);
};

for (const [g, sel] of Object.entries(groups)) {
  console.log(`\n## ${g}: recall@10 after re-ranking the top k (sizes ${sizes.join(' / ')} distractors)`);
  console.log(`| rule | ${KS.map((k) => `k=${k}`).join(' | ')} |`);
  console.log(`| ceiling (in top k) | ${KS.map((k) => sizes.map((_, b) => recall(b, k, () => 0, sel).toFixed(3)).join(' / ')).join(' | ')} |`);
  for (const [name, rule] of Object.entries(rules)) {
    console.log(`| ${name} | ${KS.map((k) => sizes.map((_, b) => recall(b, k, rule, sel).toFixed(3)).join(' / ')).join(' | ')} |`);
  }
}

// Per transform, recall@10 at 1k / 10k / 20k distractors: plain top 10, and chosen rules at k=100.
const perT = (process.env.PER_TRANSFORM ?? 'base:10,hub0.75:100').split(',').map((x) => x.split(':') as [string, string]);
const ts = [...new Set(qs.files.map(transformOf))].sort();
console.log(`\n## per transform (${sizes.slice(1).join(' / ')} distractors)`);
console.log(`| transform | ${perT.map(([r, k]) => `${r} k=${k}`).join(' | ')} |`);
for (const t of ts) console.log(`| ${t} | ${perT.map(([r, k]) => sizes.slice(1).map((_, b) => recall(b + 1, Number(k), rules[r]!, (f) => transformOf(f) === t).toFixed(3)).join(' / ')).join(' | ')} |`);

// MISSES=rule:k: the copies whose original is not in the top 10 at 10k distractors, with its rank after the re-rank.
if (process.env.MISSES) {
  const [rule, k] = process.env.MISSES.split(':') as [string, string];
  const b = sizes.indexOf(10000);
  const track = new Set((process.env.TRACK ?? '').split(',').filter(Boolean));
  console.log(`\n## misses at 10000 distractors (${rule}, k=${k}), and the TRACK copies: copy, half, rank of its original (0-based; ">k" = not fetched), its score`);
  qs.files.forEach((f, qi) => {
    const l = lists[b]![qi]!.slice(0, Number(k));
    const t = l.find((c) => c.i === want[qi]);
    const rank = t ? l.filter((c) => c !== t && rules[rule]!(c) > rules[rule]!(t)).length : Infinity;
    // The original's own score even when it was not fetched, and the 10th fetched one's.
    const own = best[qi * nImg + want[qi]!]!;
    if (rank >= 10 || track.has(f)) console.log(`| ${f} | ${halfOf(f)} | ${Number.isFinite(rank) ? rank : `>${k}`} | score ${own.toFixed(3)}${t ? ` hubness ${t.h.toFixed(3)}` : ''} (10th: ${lists[b]![qi]![9]!.s.toFixed(3)}) |`);
  });
}

if (process.env.SVG) {
  const [rule, k] = (process.env.SVG_RULE ?? 'hub0.75:100').split(':') as [string, string];
  const label = alpha > 0 || process.env.WHITENING_PATH ? 'whitened, ' : '';
  const curve = (name: string, r: Rule, kk: number) => ({ name, points: sizes.map((s, b) => [idx.files.length + s, recall(b, kk, r, groups.all!)] as [number, number]) });
  await writeFile(process.env.SVG, plot([curve(`${label}top 10`, rules.base!, 10), curve(`${label}re-ranked (${rule}, k=${k})`, rules[rule]!, Number(k))]));
  console.log(`plot: ${process.env.SVG}`);
}
