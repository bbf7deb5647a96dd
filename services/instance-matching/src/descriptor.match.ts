/** Descriptor matching: 2-NN by batchDistance, Lowe's ratio test, one-to-one. */
import { copyOut, cv } from './opencv.binding.js';
import { DESCRIPTOR_SIZE, type Features } from './sift.extract.js';

/** Float descriptor Mats, kept per Features object: a cached target is converted once per process. */
const descriptorMats = new WeakMap<Features, cv.Mat>();
function descriptorMat(f: Features): cv.Mat {
  let m = descriptorMats.get(f);
  if (!m) {
    const bytes = Buffer.from(f.descriptors.buffer, f.descriptors.byteOffset, f.count * DESCRIPTOR_SIZE);
    m = new cv.Mat(bytes, f.count, DESCRIPTOR_SIZE, cv.CV_8U).convertTo(cv.CV_32F);
    descriptorMats.set(f, m);
  }
  return m;
}

/** A candidate keypoint q matched to target keypoint t at descriptor distance d. */
export interface Pair { q: number; t: number; d: number }

/**
 * 2-NN (OpenCV's batchDistance, the kernel of its brute-force matcher, read as two
 * arrays instead of a DMatch object per row), Lowe's ratio test, then one-to-one:
 * several candidate keypoints landing on the same target keypoint make degenerate fits
 * with many fake inliers, so only the closest is kept.
 */
export function oneToOneMatches(cand: Features, target: Features, ratio: number): Pair[] {
  if (cand.count < 2 || target.count < 2) return [];
  const knn = cv.batchDistance(descriptorMat(cand), descriptorMat(target), cv.CV_32F, cv.NORM_L2, 2);
  const dist = copyOut(knn.dist.getData(), new Float32Array(cand.count * 2));
  const idx = copyOut(knn.nidx.getData(), new Int32Array(cand.count * 2));
  const bestForTarget = new Map<number, Pair>();
  for (let q = 0; q < cand.count; q++) {
    const t = idx[2 * q]!;
    const d = dist[2 * q]!;
    if (t < 0 || idx[2 * q + 1]! < 0 || d >= ratio * dist[2 * q + 1]!) continue;
    const prev = bestForTarget.get(t);
    if (!prev || d < prev.d) bestForTarget.set(t, { q, t, d });
  }
  return [...bestForTarget.values()];
}
