import { mulberry32 as rng } from '@doppel/service-kit';
import { ExactIndex } from '@doppel/contextual-search';

/**
 * The search benchmarks' data: 1000 gaussian centres, points = centre + noise (sigma 1 per
 * dimension, as for the centres: clusters overlap, which makes the search hard), seeded, so
 * every run and every backend sees the same vectors; ground truth by brute force, Cosine.
 */

export function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
}

export function makeData(n: number, dim: number, seed: number, centres: Float32Array, nc: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(r() * nc);
    for (let j = 0; j < dim; j++) out[i * dim + j] = centres[c * dim + j]! + gauss(r);
  }
  return out;
}

export const row = (data: Float32Array, i: number, dim: number): number[] => Array.from(data.subarray(i * dim, (i + 1) * dim));

export const NC = 1000;

export interface BenchSet {
  dim: number;
  k: number;
  data: Float32Array;
  queries: Float32Array;
  qrows: number[][];
  centres: Float32Array;
  /** Seeded generator of the centres, for benches that draw more sets. */
  cr: () => number;
}

export function benchSet(n: number, dim: number, q: number, k: number): BenchSet {
  const cr = rng(1);
  const centres = new Float32Array(NC * dim).map(() => gauss(cr));
  const data = makeData(n, dim, 2, centres, NC);
  const queries = makeData(q, dim, 3, centres, NC);
  return { dim, k, data, queries, centres, cr, qrows: Array.from({ length: q }, (_, i) => row(queries, i, dim)) };
}

/** Exact k nearest labels (row numbers) of each query among the first n rows. */
export function groundTruth(s: BenchSet, n: number): number[][] {
  const ex = new ExactIndex('Cosine', s.dim, n);
  for (let i = 0; i < n; i++) ex.set(i, s.data.subarray(i * s.dim, (i + 1) * s.dim));
  return s.qrows.map((_, q) => ex.search(s.queries.subarray(q * s.dim, (q + 1) * s.dim), s.k).labels);
}

export function recallOf(got: number[][], gt: number[][], k: number): number {
  let hit = 0;
  for (let q = 0; q < gt.length; q++) {
    const s = new Set(gt[q]);
    for (const l of got[q]!.slice(0, k)) if (s.has(l)) hit++;
  }
  return hit / (gt.length * k);
}

/** recall@k and single-caller QPS per ef; `search` returns labels best first. */
export async function measureEf(
  s: BenchSet,
  search: (q: number[], ef: number) => number[] | Promise<number[]>,
  gt: number[][],
  efs: number[],
  timedQueries = 2000,
): Promise<Array<{ ef: number; recall: number; qps: number }>> {
  const res = [];
  for (const ef of efs) {
    const got: number[][] = [];
    for (const q of s.qrows) got.push(await search(q, ef));
    // Timed pass separately (results above warm the caches too).
    const reps = Math.max(1, Math.ceil(timedQueries / s.qrows.length));
    const t = performance.now();
    for (let r = 0; r < reps; r++) for (const q of s.qrows) await search(q, ef);
    const qps = (reps * s.qrows.length) / ((performance.now() - t) / 1000);
    res.push({ ef, recall: recallOf(got, gt, s.k), qps });
  }
  return res;
}
