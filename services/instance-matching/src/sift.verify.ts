/** Geometric verification of one pair: RANSAC on the one-to-one matches, then sanity and spread. */
import { cv } from './opencv.binding.js';
import { oneToOneMatches, type Pair } from './descriptor.match.js';
import type { Features } from './sift.extract.js';
import type { CandidateFeatures } from './sift.mirror.js';
import { sanityOf, type Quad } from './transform.geometry.js';

export type RansacModel = 'similarity' | 'homography';

export interface VerifyOptions {
  ratio: number;
  model: RansacModel;
  reprojPx: number;
  /** Default MIN_SPREAD_CELLS; the spread benchmark passes 0 to see every fit's cells. */
  minSpreadCells?: number;
}

export interface SiftVerification {
  inliers: number;
  /** Matches that passed the ratio test and the one-to-one filter. */
  matches: number;
  mirrored: boolean;
  /** Candidate corners in the target, normalised to [0,1] (may fall slightly outside). */
  region?: Quad;
  /** Most cells of the SPREAD_GRID grid, on either image, that hold an inlier. */
  cells?: number;
}

/** Fewer one-to-one matches than this and RANSAC is not attempted: it would fit noise. */
export const MIN_MATCHES = 8;

const pt = (arr: Float32Array, i: number) => new cv.Point2(arr[2 * i]!, arr[2 * i + 1]!);

/** Side of the grid laid over each image on which the spread of the inliers is counted. */
export const SPREAD_GRID = 4;
/**
 * A fit whose inliers fall in fewer cells than this, on both images, is rejected: it proves
 * only that a corner or band is shared (the same caption, frame or watermark on two
 * unrelated images), not the image. On the dev set, 2392 pairs of captioned copies of
 * different originals passed 10 inliers (up to 51), 2386 of them in 1 to 3 cells; of the
 * 458 true pairs that passed 10 inliers, 457 covered at least 4 cells
 * (bench/matching/spread.bench.ts).
 */
export const MIN_SPREAD_CELLS = 4;

function cellOf(f: Features, i: number): number {
  const cx = Math.min(SPREAD_GRID - 1, Math.max(0, Math.floor((f.points[2 * i]! / f.width) * SPREAD_GRID)));
  const cy = Math.min(SPREAD_GRID - 1, Math.max(0, Math.floor((f.points[2 * i + 1]! / f.height) * SPREAD_GRID)));
  return cy * SPREAD_GRID + cx;
}

/** Inlier count, and the most grid cells the inliers occupy on either image. */
function inlierStats(mask: cv.Mat, pairs: Pair[], cand: Features, target: Features): { inliers: number; cells: number } {
  const data = mask.getData();
  let inliers = 0;
  const inCand = new Set<number>();
  const inTarget = new Set<number>();
  for (let i = 0; i < pairs.length; i++) {
    if (data[i] === 0) continue;
    inliers++;
    inCand.add(cellOf(cand, pairs[i]!.q));
    inTarget.add(cellOf(target, pairs[i]!.t));
  }
  return { inliers, cells: Math.max(inCand.size, inTarget.size) };
}

/** One pass: candidate (as given or mirrored) against the target (exported for the benchmark). */
export function verifyPass(cand: Features, target: Features, opts: VerifyOptions, mirrored: boolean): SiftVerification {
  const pairs = oneToOneMatches(cand, target, opts.ratio);
  const none: SiftVerification = { inliers: 0, matches: pairs.length, mirrored };
  if (pairs.length < MIN_MATCHES) return none;
  const from = pairs.map((p) => pt(cand.points, p.q));
  const to = pairs.map((p) => pt(target.points, p.t));
  let matrix: number[];
  let inliers: number;
  let cells: number;
  if (opts.model === 'homography') {
    const r = cv.findHomography(from, to, cv.RANSAC, opts.reprojPx, 2000, 0.995);
    if (r.homography.empty) return none;
    matrix = r.homography.getDataAsArray().flat();
    ({ inliers, cells } = inlierStats(r.mask, pairs, cand, target));
  } else {
    const r = cv.estimateAffinePartial2D(from, to, cv.RANSAC, opts.reprojPx, 2000, 0.99, 10);
    if (r.out.empty) return none;
    matrix = [...r.out.getDataAsArray().flat(), 0, 0, 1];
    ({ inliers, cells } = inlierStats(r.inliers, pairs, cand, target));
  }
  // The corners of the candidate as given; the mirrored pass works in flipped coordinates.
  const w = cand.width;
  const h = cand.height;
  const corners: Quad = mirrored
    ? [[w, 0], [0, 0], [0, h], [w, h]]
    : [[0, 0], [w, 0], [w, h], [0, h]];
  const sane = sanityOf(matrix, corners, { width: w, height: h }, { width: target.width, height: target.height });
  if (!sane.ok || cells < (opts.minSpreadCells ?? MIN_SPREAD_CELLS)) return { ...none, cells };
  return { inliers, matches: pairs.length, mirrored, region: sane.region, cells };
}

/** Verifies the candidate against one target; the mirrored pass only runs when the plain one fails. */
export function verifySift(cand: CandidateFeatures, target: Features, opts: VerifyOptions, acceptInliers: number): SiftVerification {
  const plain = verifyPass(cand.plain, target, opts, false);
  if (plain.inliers >= acceptInliers) return plain;
  const mirror = verifyPass(cand.mirrored, target, opts, true);
  return mirror.inliers > plain.inliers ? mirror : plain;
}
