/** Descriptor matching: 2-NN from one matrix product, Lowe's ratio test, one-to-one. */
import { copyOut, cv } from './opencv.binding.js';
import { DESCRIPTOR_SIZE, type Features } from './sift.extract.js';
import type { CandidateFeatures } from './sift.mirror.js';

/**
 * OpenCV hands a product to the BLAS only when every side has at least 100 rows or columns
 * (HAL_GEMM_SMALL_MATRIX_THRESH); below that its own loop is slower than batchDistance. A
 * side with fewer descriptors is padded with zero rows, whose products are never read.
 */
const BLAS_MIN_SIDE = 100;

/**
 * One side of a product, built once per Features object (a cached target once per process):
 * a candidate's descriptors as rows, a target's transposed into columns. Each side keeps
 * only the float matrix its role needs, the 4 bytes per descriptor byte that sharedBytes
 * (verify.protocol.ts) counts.
 */
interface DescriptorSide {
  /** Candidate: rows x 128; target: 128 x rows; float, rows zero-padded to BLAS_MIN_SIDE. */
  mat: cv.Mat;
  /** Rows after padding: the row stride of a product against this side. */
  padded: number;
  /** Squared L2 norm of each descriptor (its length is the count of real rows). */
  norms: Float32Array;
}

/**
 * How two descriptors are compared. `rootsift` (Arandjelovic and Zisserman, 2012): each
 * descriptor is divided by its L1 norm and square-rooted, so the L2 distance between two of
 * them is the Hellinger distance between the histograms they are. SIFT components are
 * gradient-orientation histograms; under L2 their largest bins (a strong edge) dominate a
 * distance, under the Hellinger kernel the smaller bins count too. On the dev set it gave the
 * true pairs more inliers at the same ratio (bench/matching/kernel-ratio.bench.ts). The bytes
 * stay as SIFT made them (cache, messages, mirroring); only the float side built for matching
 * changes. `l2`: the raw descriptors.
 */
export type DescriptorKernel = 'rootsift' | 'l2';

/** Descriptors stacked as the rows of one float matrix under `kernel`, zero-padded to BLAS_MIN_SIDE rows. */
function stacked(parts: Features[], kernel: DescriptorKernel): DescriptorSide {
  const count = parts.reduce((n, f) => n + f.count, 0);
  const padded = Math.max(count, BLAS_MIN_SIDE);
  const values = new Float32Array(padded * DESCRIPTOR_SIZE);
  const norms = new Float32Array(count);
  let row = 0;
  for (const f of parts) {
    const d = f.descriptors;
    for (let k = 0; k < f.count; k++, row++) {
      const from = k * DESCRIPTOR_SIZE;
      const to = row * DESCRIPTOR_SIZE;
      let scale = 1;
      if (kernel === 'rootsift') {
        let l1 = 0;
        for (let i = from; i < from + DESCRIPTOR_SIZE; i++) l1 += d[i]!;
        scale = l1 > 0 ? 1 / l1 : 0;
      }
      let n = 0;
      for (let i = 0; i < DESCRIPTOR_SIZE; i++) {
        const v = kernel === 'rootsift' ? Math.sqrt(d[from + i]! * scale) : d[from + i]!;
        values[to + i] = v;
        n += v * v;
      }
      norms[row] = n;
    }
  }
  return { mat: new cv.Mat(Buffer.from(values.buffer), padded, DESCRIPTOR_SIZE, cv.CV_32F), padded, norms };
}

// One side per Features object and kernel (a service uses one kernel; the tests compare both).
const candidateSides = { rootsift: new WeakMap<Features | CandidateFeatures, DescriptorSide>(), l2: new WeakMap<Features | CandidateFeatures, DescriptorSide>() };
function candidateSide<K extends Features | CandidateFeatures>(key: K, parts: (k: K) => Features[], kernel: DescriptorKernel): DescriptorSide {
  let s = candidateSides[kernel].get(key);
  if (!s) {
    s = stacked(parts(key), kernel);
    candidateSides[kernel].set(key, s);
  }
  return s;
}

const targetSides = { rootsift: new WeakMap<Features, DescriptorSide>(), l2: new WeakMap<Features, DescriptorSide>() };
function targetSide(f: Features, kernel: DescriptorKernel): DescriptorSide {
  let s = targetSides[kernel].get(f);
  if (!s) {
    const rows = stacked([f], kernel);
    s = { ...rows, mat: rows.mat.transpose() };
    targetSides[kernel].set(f, s);
  }
  return s;
}

/** A candidate keypoint q matched to target keypoint t at descriptor distance d. */
export interface Pair { q: number; t: number; d: number }

/** Every candidate row's dot product with every target descriptor. */
interface Product { dots: Float32Array; c: DescriptorSide; t: DescriptorSide }

/**
 * |a - b|^2 = |a|^2 + |b|^2 - 2 a.b: the dot products of all pairs are one matrix product,
 * which OpenCV hands to the BLAS (OpenBLAS, installed by scripts/setup.sh). That is about 4x
 * faster than batchDistance, OpenCV's brute-force kernel, which walks the pairs one by one
 * (bench/matching/components.bench.ts). Under `l2` the components are integers up to 255,
 * so every dot product is an integer under 2^24 and float arithmetic holds it exactly: the
 * neighbours and distances are batchDistance's. Under `rootsift` they are floats, and the
 * product and batchDistance may round a near-tie apart; the tests compare both kernels
 * against batchDistance on the same vectors.
 */
function product(c: DescriptorSide, t: DescriptorSide): Product {
  const raw = c.mat.matMul(t.mat).getData();
  const n = c.padded * t.padded;
  // Read in place when the native buffer is 4-byte aligned (it is, from OpenCV's allocator); copied otherwise.
  const dots = raw.byteOffset % 4 === 0 ? new Float32Array(raw.buffer, raw.byteOffset, n) : copyOut(raw, new Float32Array(n));
  return { dots, c, t };
}

/** Lowe's ratio test on the 2-NN of candidate rows [from, from + count), then one-to-one (see oneToOneMatches). */
function ratioMatches({ dots, c, t }: Product, from: number, count: number, ratio: number): Pair[] {
  const tn = t.norms;
  const bestForTarget = new Map<number, Pair>();
  for (let q = 0, row = from * t.padded; q < count; q++, row += t.padded) {
    // |b|^2 - 2 a.b orders the targets as the distance does (|a|^2 is the row's constant).
    let m1 = Infinity;
    let m2 = Infinity;
    let i1 = -1;
    for (let j = 0; j < tn.length; j++) {
      const v = tn[j]! - 2 * dots[row + j]!;
      if (v < m2) {
        if (v < m1) { m2 = m1; m1 = v; i1 = j; } else m2 = v;
      }
    }
    const a = c.norms[from + q]!;
    const d = Math.sqrt(Math.max(0, a + m1));
    if (d >= ratio * Math.sqrt(Math.max(0, a + m2))) continue;
    const prev = bestForTarget.get(i1);
    if (!prev || d < prev.d) bestForTarget.set(i1, { q, t: i1, d });
  }
  return [...bestForTarget.values()];
}

/**
 * 2-NN, Lowe's ratio test, then one-to-one: several candidate keypoints landing on the same
 * target keypoint make degenerate fits with many fake inliers, so only the closest is kept.
 */
export function oneToOneMatches(cand: Features, target: Features, ratio: number, kernel: DescriptorKernel): Pair[] {
  if (cand.count < 2 || target.count < 2) return [];
  return ratioMatches(product(candidateSide(cand, (f) => [f], kernel), targetSide(target, kernel)), 0, cand.count, ratio);
}

/**
 * The matches of the candidate as given (false) and mirrored (true) against one target. Both
 * halves come from one product, made at the first call: a pair whose plain pass fails (most
 * of them) then needs its mirrored pass, which costs little more in the same product.
 */
export function candidateMatches(cand: CandidateFeatures, target: Features, kernel: DescriptorKernel): (mirrored: boolean, ratio: number) => Pair[] {
  let both: Product | undefined;
  return (mirrored, ratio) => {
    if (cand.plain.count < 2 || target.count < 2) return [];
    both ??= product(candidateSide(cand, (c) => [c.plain, c.mirrored], kernel), targetSide(target, kernel));
    return ratioMatches(both, mirrored ? cand.plain.count : 0, cand.plain.count, ratio);
  };
}
