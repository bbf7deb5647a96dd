/**
 * Scoring half of candidates.bench.ts: reads the cached descriptors and prints recall@1/@10
 * of the true original per variant and collection size. Brute force: the cosine matrix is
 * one onnxruntime MatMul per chunk of index entries (JS loops would take minutes at 20k
 * images x 14 entries x 9,000 query vectors).
 */
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeModel, ONNX_FLOAT } from '../../services/image-encoder/src/onnx-proto.schema.js';

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
async function load(ctx: Ctx, set: string, prep: string, orient: number): Promise<Loaded> {
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
async function matmulSession() {
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

export async function score(ctx: Ctx & { variants: Variant[]; nDistractors: number; detail: boolean }): Promise<void> {
  const originals = [...new Set((await load(ctx, 'queries', ctx.variants[0]!.query[0]!.prep, ctx.variants[0]!.queryOrient)).files.map(ctx.originalOfQuery))].sort();
  // Fixed split: even / odd position of the original among the sorted original names.
  const half = (q: string) => (originals.indexOf(ctx.originalOfQuery(q)) % 2 === 0 ? 'calib' : 'held');
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
    if (ctx.detail) {
      const transforms = [...new Set(r.queries.map(ctx.transformOf))].sort();
      for (const t of transforms) console.log(`| ${t} | ${r.sizes.map((_, k) => line((q) => ctx.transformOf(q) === t, k)).join(' | ')} |`);
    }
  }
}
