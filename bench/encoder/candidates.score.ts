/**
 * Scoring half of candidates.bench.ts: reads the cached descriptors and prints recall@1/@10
 * of the true original per variant and collection size. Brute force: the cosine matrix is
 * one onnxruntime MatMul per chunk of index entries (JS loops would take minutes at 20k
 * images x 14 entries x 9,000 query vectors).
 */
import { createRequire } from 'node:module';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeModel, ONNX_FLOAT } from '../../services/image-encoder/src/onnx-proto.schema.js';
import { devSplit } from '../matching/dev-split.bench.js';

const ort = createRequire(new URL('../../services/image-encoder/package.json', import.meta.url))('onnxruntime-node') as typeof import('onnxruntime-node');

interface Ctx {
  cache: string;
  dir: string;
  windows: Array<[number, number, number, number]>;
  dim: number;
  originalOfQuery: (q: string) => string;
  transformOf: (q: string) => string;
  v2: string[];
}

interface Loaded { files: string[]; orient: number; perRow: number; data: Float32Array }

/** Which cached vectors make up an image's entries or a query's vectors. */
export interface Part { prep: string; pool: 'gap' | 'gem'; windows: number[] }
export interface Variant { name: string; index: Part[]; query: Part[]; queryOrient: 1 | 8 }

const loaded = new Map<string, Loaded>();
export async function load(ctx: Ctx, set: string, prep: string, orient: number): Promise<Loaded> {
  const name = `${set}-${prep}-o${orient}`;
  let l = loaded.get(name);
  if (!l) {
    const meta = JSON.parse(await readFile(join(ctx.cache, `${name}.json`), 'utf8')) as Omit<Loaded, 'data'>;
    const buf = await readFile(join(ctx.cache, `${name}.f32`));
    l = { ...meta, data: new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4) };
    loaded.set(name, l);
  }
  return l;
}

/** Index of a window's vector in a cached row: GAP windows first, then GeM (queries: [gap, gem] of the whole image). */
const slot = (l: Loaded, nWindows: number, pool: 'gap' | 'gem', w: number) => (l.perRow === 2 ? (pool === 'gap' ? 0 : 1) : (pool === 'gap' ? 0 : nWindows) + w);

let matmul: import('onnxruntime-node').InferenceSession | undefined;
export async function matmulSession() {
  matmul ??= await ort.InferenceSession.create(encodeModel({
    ir_version: 8,
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'scores',
      node: [{ op_type: 'MatMul', input: ['a', 'b'], output: ['c'] }],
      input: [
        { name: 'a', type: { tensor_type: { elem_type: ONNX_FLOAT, shape: { dim: [{ dim_param: 'n' }, { dim_param: 'd' }] } } } },
        { name: 'b', type: { tensor_type: { elem_type: ONNX_FLOAT, shape: { dim: [{ dim_param: 'd' }, { dim_param: 'm' }] } } } },
      ],
      output: [{ name: 'c', type: { tensor_type: { elem_type: ONNX_FLOAT } } }],
    },
  }), { intraOpNumThreads: 2 });
  return matmul;
}

export const SIZES = [0, 1000, 10000, 20000];

/** For each query: the true original's score and, per collection size, how many images beat it. */
export async function rankTrue(ctx: Ctx, v: Variant, nDistractors: number) {
  const dim = ctx.dim;
  const nw = ctx.windows.length;
  const indexSets = await Promise.all(v.index.map((p) => load(ctx, 'index', p.prep, 1)));
  const distSets = nDistractors > 0 ? await Promise.all(v.index.map((p) => load(ctx, 'distractors', p.prep, 1))) : [];
  for (const d of distSets) {
    if (d.files.slice(0, nDistractors).join('\n') !== distSets[0]!.files.slice(0, nDistractors).join('\n')) throw new Error(`${v.name}: the cached distractor sets hold different files (re-encode them together)`);
  }
  const querySets = await Promise.all(v.query.map((p) => load(ctx, 'queries', p.prep, v.queryOrient)));
  const queries = querySets[0]!.files;
  const indexFiles = indexSets[0]!.files;
  const stem = (f: string) => f.replace(/\.[^.]+$/, '');
  const want = queries.map((q) => indexFiles.findIndex((f) => stem(f) === ctx.originalOfQuery(q)));
  if (want.some((w) => w < 0)) throw new Error('a query original is missing from the index cache');
  // Query matrix, transposed [dim, M]: R columns per query.
  const R = v.queryOrient * v.query.reduce((a, p) => a + p.windows.length, 0);
  const M = queries.length * R;
  const qT = new Float32Array(dim * M);
  queries.forEach((_, qi) => {
    let col = qi * R;
    v.query.forEach((p, pi) => {
      const l = querySets[pi]!;
      for (let o = 0; o < v.queryOrient; o++) {
        for (const w of p.windows) {
          const off = ((qi * l.orient + o) * l.perRow + slot(l, nw, p.pool, w)) * dim;
          for (let d = 0; d < dim; d++) qT[d * M + col] = l.data[off + d]!;
          col++;
        }
      }
    });
  });
  const E = v.index.reduce((a, p) => a + p.windows.length, 0);
  const entries = (sets: Loaded[], img: number, out: Float32Array, at: number) => {
    let e = at;
    v.index.forEach((p, pi) => {
      const l = sets[pi]!;
      for (const w of p.windows) {
        const off = (img * l.perRow + slot(l, nw, p.pool, w)) * dim;
        out.set(l.data.subarray(off, off + dim), e * dim);
        e++;
      }
    });
  };
  const session = await matmulSession();
  const qTensor = new ort.Tensor('float32', qT, [dim, M]);
  /** Per image of the block, per query: best score over entries x query vectors. */
  const blockScores = async (sets: Loaded[], first: number, count: number) => {
    const a = new Float32Array(count * E * dim);
    for (let i = 0; i < count; i++) entries(sets, first + i, a, i * E);
    const c = (await session.run({ a: new ort.Tensor('float32', a, [count * E, dim]), b: qTensor }))['c']!.data as Float32Array;
    const best = new Float32Array(count * queries.length);
    const row = new Float32Array(M);
    for (let i = 0; i < count; i++) {
      row.fill(-2);
      for (let e = 0; e < E; e++) {
        const base = (i * E + e) * M;
        for (let m = 0; m < M; m++) { const s = c[base + m]!; if (s > row[m]!) row[m] = s; }
      }
      for (let q = 0; q < queries.length; q++) {
        let b = -2;
        for (let r = 0; r < R; r++) { const s = row[q * R + r]!; if (s > b) b = s; }
        best[i * queries.length + q] = b;
      }
    }
    return best;
  };
  const idx = await blockScores(indexSets, 0, indexFiles.length);
  const truth = want.map((w, q) => idx[w * queries.length + q]!);
  const sizes = SIZES.filter((s) => s <= nDistractors);
  // beaten[q][k]: images scoring above the original with sizes[k] distractors indexed.
  const beaten = queries.map((_, q) => {
    let n = 0;
    for (let i = 0; i < indexFiles.length; i++) if (i !== want[q] && idx[i * queries.length + q]! > truth[q]!) n++;
    return sizes.map(() => n);
  });
  const block = Math.max(1, Math.floor(4096 / E));
  for (let first = 0; first < nDistractors; first += block) {
    const count = Math.min(block, nDistractors - first);
    const s = await blockScores(distSets, first, count);
    for (let i = 0; i < count; i++) {
      const j = first + i;
      for (let q = 0; q < queries.length; q++) {
        if (s[i * queries.length + q]! > truth[q]!) {
          for (let k = 0; k < sizes.length; k++) if (j < sizes[k]!) beaten[q]![k]! += 1;
        }
      }
    }
  }
  return { queries, sizes, beaten, truth };
}

const fmt = (x: number) => x.toFixed(3);

export async function score(ctx: Ctx & { variants: Variant[]; nDistractors: number; detail: boolean; svg?: string }): Promise<void> {
  // The dev set's one split (bench/matching/dev-split.bench.ts), the one the matcher was calibrated on.
  const truth = (JSON.parse(await readFile(join(ctx.dir, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
  const halfOf = devSplit((await readdir(join(ctx.dir, 'index'))).filter((f) => !f.startsWith('.')), truth);
  const half = (q: string) => (halfOf(q) === 'calibration' ? 'calib' : 'held');
  const curves: Array<{ name: string; points: Array<[number, number]> }> = [];
  for (const v of ctx.variants) {
    const t0 = performance.now();
    const r = await rankTrue(ctx, v, ctx.nDistractors);
    const groups: Record<string, (q: string) => boolean> = {
      all: () => true,
      calib: (q) => half(q) === 'calib',
      held: (q) => half(q) === 'held',
      v2: (q) => ctx.v2.includes(ctx.transformOf(q)),
      v3: (q) => !ctx.v2.includes(ctx.transformOf(q)),
    };
    const line = (sel: (q: string) => boolean, k: number) => {
      const qs = r.queries.map((q, i) => [q, i] as const).filter(([q]) => sel(q));
      const at = (n: number) => qs.filter(([, i]) => r.beaten[i]![k]! < n).length / Math.max(1, qs.length);
      return `${fmt(at(1))}/${fmt(at(10))}`;
    };
    console.log(`\n## ${v.name}  [${((performance.now() - t0) / 1000).toFixed(0)} s]  recall@1/@10`);
    console.log(`| group | ${r.sizes.map((s) => `${s} distractors`).join(' | ')} |`);
    for (const [g, sel] of Object.entries(groups)) console.log(`| ${g} | ${r.sizes.map((_, k) => line(sel, k)).join(' | ')} |`);
    curves.push({ name: v.name, points: r.sizes.map((n, k) => [n + 44, r.beaten.filter((b) => b[k]! < 10).length / r.queries.length]) });
    if (ctx.detail) {
      const transforms = [...new Set(r.queries.map(ctx.transformOf))].sort();
      for (const t of transforms) console.log(`| ${t} | ${r.sizes.map((_, k) => line((q) => ctx.transformOf(q) === t, k)).join(' | ')} |`);
    }
  }
  if (ctx.svg) await writeFile(ctx.svg, plot(curves));
}

/**
 * recall@10 against the indexed image count on a log axis, with the least-squares line
 * through the points with distractors (recall falls about linearly in log N here),
 * extended to 100,000 images; the extrapolated values are printed too.
 */
export function plot(curves: Array<{ name: string; points: Array<[number, number]> }>): string {
  const W = 640; const H = 400; const L = 60; const B = 50; const T = 20; const R = 180;
  const x = (n: number) => L + ((Math.log10(n) - 1.5) / (5.2 - 1.5)) * (W - L - R);
  const lo = 0.85;
  const y = (r: number) => T + ((1 - r) / (1 - lo)) * (H - T - B);
  const colours = ['#c0392b', '#2471a3', '#229954', '#7d3c98'];
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`, `<rect width="${W}" height="${H}" fill="white"/>`];
  for (const n of [100, 1000, 10000, 100000]) out.push(`<line x1="${x(n)}" y1="${T}" x2="${x(n)}" y2="${H - B}" stroke="#ddd"/><text x="${x(n)}" y="${H - B + 16}" text-anchor="middle">${n.toLocaleString('en')}</text>`);
  for (let r = lo; r <= 1.0001; r += 0.05) out.push(`<line x1="${L}" y1="${y(r)}" x2="${W - R}" y2="${y(r)}" stroke="#ddd"/><text x="${L - 6}" y="${y(r) + 4}" text-anchor="end">${r.toFixed(2)}</text>`);
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">images indexed (44 originals + distractors), log scale</text>`);
  out.push(`<text x="14" y="${(T + H - B) / 2}" transform="rotate(-90 14 ${(T + H - B) / 2})" text-anchor="middle">recall@10 of the true original</text>`);
  curves.forEach((c, i) => {
    const col = colours[i % colours.length]!;
    const fitPts = c.points.filter(([n]) => n > 100);
    const xs = fitPts.map(([n]) => Math.log10(n));
    const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
    const my = fitPts.reduce((a, [, r]) => a + r, 0) / fitPts.length;
    const slope = xs.reduce((a, xv, k) => a + (xv - mx) * (fitPts[k]![1] - my), 0) / Math.max(1e-12, xs.reduce((a, xv) => a + (xv - mx) ** 2, 0));
    const at = (n: number) => my + slope * (Math.log10(n) - mx);
    console.log(`${c.name}: recall@10 fit ${slope.toFixed(4)} per decade; extrapolated at 100,000 images: ${at(100000).toFixed(3)}`);
    out.push(`<polyline fill="none" stroke="${col}" stroke-width="2" points="${c.points.map(([n, r]) => `${x(n)},${y(r)}`).join(' ')}"/>`);
    for (const [n, r] of c.points) out.push(`<circle cx="${x(n)}" cy="${y(r)}" r="3" fill="${col}"/>`);
    const last = fitPts.at(-1)![0];
    out.push(`<line x1="${x(last)}" y1="${y(at(last))}" x2="${x(100000)}" y2="${y(at(100000))}" stroke="${col}" stroke-dasharray="5,4"/>`);
    out.push(`<text x="${W - R + 8}" y="${T + 16 + i * 32}" fill="${col}">${c.name.replace(/ \(.*/, '')}</text><text x="${W - R + 8}" y="${T + 30 + i * 32}" fill="${col}">100k (fit): ${at(100000).toFixed(3)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
