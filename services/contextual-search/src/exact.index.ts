import type { DistanceType } from '@doppel/schemas';
import type { KnnResult } from './hnsw.index.js';

/**
 * Brute-force k-NN over a dense Float32Array, with the same distances as hnswlib
 * (Cosine: 1 - dot of unit vectors, InnerProduct: 1 - dot, L2: squared distance), so
 * scores are computed identically whichever engine answered.
 */
export class ExactIndex {
  private data: Float32Array;
  private rowLabel: number[] = [];
  private rowOf = new Map<number, number>();

  constructor(
    readonly distance: DistanceType,
    readonly dimension: number,
    capacity = 256,
  ) {
    this.data = new Float32Array(Math.max(1, capacity) * dimension);
  }

  get size(): number {
    return this.rowLabel.length;
  }

  /** Adds or replaces a label's vector (normalised first for Cosine, like hnswlib). */
  set(label: number, vector: ArrayLike<number>): void {
    let row = this.rowOf.get(label);
    if (row === undefined) {
      row = this.rowLabel.length;
      if ((row + 1) * this.dimension > this.data.length) {
        const grown = new Float32Array(this.data.length * 2);
        grown.set(this.data);
        this.data = grown;
      }
      this.rowLabel.push(label);
      this.rowOf.set(label, row);
    }
    const o = row * this.dimension;
    let norm = 1;
    if (this.distance === 'Cosine') {
      let s = 0;
      for (let j = 0; j < this.dimension; j++) s += (vector[j] ?? 0) * (vector[j] ?? 0);
      norm = s > 0 ? Math.sqrt(s) : 1;
    }
    for (let j = 0; j < this.dimension; j++) this.data[o + j] = (vector[j] ?? 0) / norm;
  }

  /** Removes a label by moving the last row into its place. */
  delete(label: number): void {
    const row = this.rowOf.get(label);
    if (row === undefined) return;
    const last = this.rowLabel.length - 1;
    const lastLabel = this.rowLabel[last]!;
    if (row !== last) {
      this.data.copyWithin(row * this.dimension, last * this.dimension, (last + 1) * this.dimension);
      this.rowLabel[row] = lastLabel;
      this.rowOf.set(lastLabel, row);
    }
    this.rowLabel.pop();
    this.rowOf.delete(label);
  }

  search(query: ArrayLike<number>, k: number): KnnResult {
    const dim = this.dimension;
    const q = new Float32Array(dim);
    let s = 0;
    for (let j = 0; j < dim; j++) {
      q[j] = query[j] ?? 0;
      s += q[j]! * q[j]!;
    }
    if (this.distance === 'Cosine' && s > 0) {
      const n = Math.sqrt(s);
      for (let j = 0; j < dim; j++) q[j] = q[j]! / n;
    }
    const n = this.rowLabel.length;
    const kk = Math.min(k, n);
    // Max-heap on distance of the best kk so far: the root is the worst kept.
    const heapD = new Float64Array(kk);
    const heapR = new Int32Array(kk);
    let size = 0;
    const data = this.data;
    const l2 = this.distance === 'L2';
    for (let r = 0; r < n; r++) {
      const acc = l2 ? sqDist(data, r * dim, q, dim) : 1 - dot(data, r * dim, q, dim);
      if (size < kk) {
        let i = size++;
        while (i > 0) {
          const p = (i - 1) >> 1;
          if (heapD[p]! >= acc) break;
          heapD[i] = heapD[p]!;
          heapR[i] = heapR[p]!;
          i = p;
        }
        heapD[i] = acc;
        heapR[i] = r;
      } else if (kk > 0 && acc < heapD[0]!) {
        let i = 0;
        for (;;) {
          const a = 2 * i + 1;
          if (a >= size) break;
          const b = a + 1;
          const c = b < size && heapD[b]! > heapD[a]! ? b : a;
          if (heapD[c]! <= acc) break;
          heapD[i] = heapD[c]!;
          heapR[i] = heapR[c]!;
          i = c;
        }
        heapD[i] = acc;
        heapR[i] = r;
      }
    }
    const order = Array.from({ length: size }, (_, i) => i).sort((a, b) => heapD[a]! - heapD[b]!);
    return {
      labels: order.map((i) => this.rowLabel[heapR[i]!]!),
      distances: order.map((i) => heapD[i]!),
    };
  }
}

// Small monomorphic kernels, unrolled by 4: V8 keeps them as tight float loops.
function dot(a: Float32Array, o: number, q: Float32Array, dim: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let j = 0;
  for (; j + 3 < dim; j += 4) {
    s0 += a[o + j]! * q[j]!;
    s1 += a[o + j + 1]! * q[j + 1]!;
    s2 += a[o + j + 2]! * q[j + 2]!;
    s3 += a[o + j + 3]! * q[j + 3]!;
  }
  for (; j < dim; j++) s0 += a[o + j]! * q[j]!;
  return s0 + s1 + s2 + s3;
}

function sqDist(a: Float32Array, o: number, q: Float32Array, dim: number): number {
  let s0 = 0;
  let s1 = 0;
  let j = 0;
  for (; j + 1 < dim; j += 2) {
    const t0 = a[o + j]! - q[j]!;
    const t1 = a[o + j + 1]! - q[j + 1]!;
    s0 += t0 * t0;
    s1 += t1 * t1;
  }
  for (; j < dim; j++) {
    const t = a[o + j]! - q[j]!;
    s0 += t * t;
  }
  return s0 + s1;
}
