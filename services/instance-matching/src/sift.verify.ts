/** Geometric verification of one pair: RANSAC on the one-to-one matches, then sanity and spread. */
import { cv } from './opencv.binding.js';
import { candidateMatches, oneToOneMatches, type DescriptorKernel, type Pair } from './descriptor.match.js';
import type { Features } from './sift.extract.js';
import type { CandidateFeatures } from './sift.mirror.js';
import { invert3x3, sanityOf, type Quad } from './transform.geometry.js';

/**
 * `similarity` (4 DoF) fits resized, cropped, rotated copies; `homography` (8 DoF, MAGSAC)
 * also fits perspective (keystone, a photo of a screen). `similarity+homography` tries the
 * similarity first and the homography only when the similarity does not reach the
 * threshold: the stricter model keeps the first word, the looser one is a second chance
 * under the same sanity and spread checks.
 */
export type RansacModel = 'similarity' | 'homography' | 'similarity+homography';

export interface VerifyOptions {
  ratio: number;
  kernel: DescriptorKernel;
  model: RansacModel;
  reprojPx: number;
  /** Default MIN_SPREAD_CELLS; the spread benchmark passes 0 to see every fit's cells. */
  minSpreadCells?: number;
  /**
   * Fit a hypothesis from fewer than MIN_MATCHES matches when either side has fewer
   * keypoints than this (the overlap check's gate; absent: never, which costs nothing).
   */
  fewMatchHypothesisBelow?: number;
}

/** Why a pass found no usable fit (the HTTP reasons of matching.schemas.ts). */
export type FitFailure = 'too_few_matches' | 'no_consistent_geometry' | 'implausible_transform' | 'inliers_in_one_region';

export interface SiftVerification {
  inliers: number;
  /** Matches that passed the ratio test and the one-to-one filter. */
  matches: number;
  mirrored: boolean;
  /** Candidate corners in the target, normalised to [0,1] (may fall slightly outside). */
  region?: Quad;
  /** Target corners in the candidate, normalised to the candidate's size. */
  queryRegion?: Quad;
  /** Most cells of the SPREAD_GRID grid, on either image, that hold an inlier. */
  cells?: number;
  /** On both images every inlier lies in the outer ring of those cells: the bars, borders and corners where captions, frames and badges sit. */
  onRing?: boolean;
  model?: 'similarity' | 'homography';
  /** Set when no fit survived (inliers is then 0). */
  failure?: FitFailure;
  /**
   * The best plausible fit of the pass (sane corners), kept even when its inliers were too
   * few or too bunched to count: the coarse-to-fine pass (sift.refine.ts) looks again there.
   */
  hypothesis?: Hypothesis;
}

/** A plausible fit: candidate -> target (row-major 3x3, working-size pixels) and its RANSAC inliers. */
export interface Hypothesis { matrix: number[]; inliers: number; mirrored: boolean }

/** Fewer one-to-one matches than this and RANSAC is not attempted: it would fit noise. */
export const MIN_MATCHES = 8;

/**
 * Consistent matches a few-match hypothesis needs. Any two matches fit a similarity
 * exactly; a third one agreeing within RANSAC_REPROJ_PX is unlikely by chance (about
 * pi * 4^2 / 384^2 per random match), so three make a place worth looking at. It proves
 * nothing alone: inliers stay 0, and only the overlap check (overlap.check.ts) may accept.
 */
export const MIN_HYPOTHESIS_INLIERS = 3;

/** A similarity from fewer than MIN_MATCHES matches, when at least 3 agree and it is sane. */
function fewMatchHypothesis(pairs: Pair[], cand: Features, target: Features, reprojPx: number, mirrored: boolean): Hypothesis | undefined {
  const f = fit('similarity', pairs.map((p) => pt(cand.points, p.q)), pairs.map((p) => pt(target.points, p.t)), reprojPx);
  if (!f) return undefined;
  const inliers = f.mask.getData().reduce((n: number, v: number) => n + (v === 0 ? 0 : 1), 0);
  if (inliers < MIN_HYPOTHESIS_INLIERS) return undefined;
  const { width: w, height: h } = cand;
  const corners: Quad = mirrored ? [[w, 0], [0, 0], [0, h], [w, h]] : [[0, 0], [w, 0], [w, h], [0, h]];
  return sanityOf(f.matrix, corners, { width: w, height: h }, { width: target.width, height: target.height }).ok ? { matrix: f.matrix, inliers, mirrored } : undefined;
}

/** OpenCV's USAC_MAGSAC flag (4.5+; the binding passes the method through but does not name it). */
const USAC_MAGSAC = 38;

const pt = (arr: Float32Array, i: number) => new cv.Point2(arr[2 * i]!, arr[2 * i + 1]!);

/** Side of the grid laid over each image on which the spread of the inliers is counted. */
export const SPREAD_GRID = 4;
/**
 * A fit whose inliers fall in fewer cells than this, on both images, is rejected: it proves
 * only that a corner or band is shared (the same caption, frame or watermark on two
 * unrelated images), not the image. So is a fit whose inliers, on both images, all lie in
 * the outer ring of cells (12 of the 16) and none in the middle 4: caption bars above and
 * below, a frame, a corner badge add up to 4 cells or more once enough of their letters and
 * edges match, but what they share is the furniture around two pictures, never the middle
 * of one. Counted on each image in its own frame, so a corner crop's inliers spread over
 * the crop count, even though they fill one corner of the original. On the dev set (RootSIFT
 * at 0.8, bench/matching/spread.bench.ts), 2,570 fits between captioned copies of different
 * originals reached 10 inliers (up to 53): 2,553 in 1 to 3 cells, 11 of the other 17 on the
 * ring; of the 1,002 true fits that did, 9 were in under 4 cells and 4 on the ring.
 */
export const MIN_SPREAD_CELLS = 4;

function cellOf(f: Features, i: number): number {
  const cx = Math.min(SPREAD_GRID - 1, Math.max(0, Math.floor((f.points[2 * i]! / f.width) * SPREAD_GRID)));
  const cy = Math.min(SPREAD_GRID - 1, Math.max(0, Math.floor((f.points[2 * i + 1]! / f.height) * SPREAD_GRID)));
  return cy * SPREAD_GRID + cx;
}

/**
 * Inlier count, the most grid cells the inliers occupy on either image, and whether on both
 * images every inlier lies in the outer ring of cells (none in the middle of the picture).
 */
function inlierStats(mask: cv.Mat, pairs: Pair[], cand: Features, target: Features): { inliers: number; cells: number; onRing: boolean } {
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
  const last = SPREAD_GRID - 1;
  const ring = (cells: Set<number>) => [...cells].every((c) => {
    const [row, col] = [Math.floor(c / SPREAD_GRID), c % SPREAD_GRID];
    return row === 0 || row === last || col === 0 || col === last;
  });
  return { inliers, cells: Math.max(inCand.size, inTarget.size), onRing: ring(inCand) && ring(inTarget) };
}

/** A 3x3 row-major matrix and its RANSAC inlier mask, or undefined when no model was found. */
function fit(model: 'similarity' | 'homography', from: cv.Point2[], to: cv.Point2[], reprojPx: number): { matrix: number[]; mask: cv.Mat } | undefined {
  if (model === 'homography') {
    const r = cv.findHomography(from, to, USAC_MAGSAC, reprojPx, 2000, 0.995);
    return r.homography.empty ? undefined : { matrix: r.homography.getDataAsArray().flat(), mask: r.mask };
  }
  const r = cv.estimateAffinePartial2D(from, to, cv.RANSAC, reprojPx, 2000, 0.99, 10);
  return r.out.empty ? undefined : { matrix: [...r.out.getDataAsArray().flat(), 0, 0, 1], mask: r.inliers };
}

function judge(model: 'similarity' | 'homography', pairs: Pair[], cand: Features, target: Features, opts: VerifyOptions, mirrored: boolean, acceptInliers: number): SiftVerification {
  const base = { inliers: 0, matches: pairs.length, mirrored, model };
  const from = pairs.map((p) => pt(cand.points, p.q));
  const to = pairs.map((p) => pt(target.points, p.t));
  const f = fit(model, from, to, opts.reprojPx);
  if (!f) return { ...base, failure: 'no_consistent_geometry' };
  const { inliers, cells, onRing } = inlierStats(f.mask, pairs, cand, target);
  // The corners of the candidate as given; the mirrored pass works in flipped coordinates.
  const w = cand.width;
  const h = cand.height;
  const corners: Quad = mirrored
    ? [[w, 0], [0, 0], [0, h], [w, h]]
    : [[0, 0], [w, 0], [w, h], [0, h]];
  const sane = sanityOf(f.matrix, corners, { width: w, height: h }, { width: target.width, height: target.height });
  if (!sane.ok) return { ...base, cells, failure: 'implausible_transform' };
  const hypothesis: Hypothesis = { matrix: f.matrix, inliers, mirrored };
  const minCells = opts.minSpreadCells ?? MIN_SPREAD_CELLS;
  if (cells < minCells || (minCells > 0 && onRing)) {
    // A few consistent matches in one region still say where a low-texture candidate lies
    // (the overlap check's hypothesis). A fit with the inliers to verify that is confined all
    // the same has matched a shared caption, frame or badge: it places that region, and the
    // overlap check would then compare two pictures where their shared furniture lines up.
    const weak = inliers < acceptInliers;
    return { ...base, cells, onRing, failure: 'inliers_in_one_region', ...(weak ? { hypothesis } : {}) };
  }
  const v: SiftVerification = { ...base, inliers, region: sane.region, cells, onRing, hypothesis };
  const inverse = invert3x3(f.matrix);
  if (inverse) v.queryRegion = queryRegionOf(inverse, target, cand, mirrored);
  return v;
}

/** The target's corners in the candidate as given (the mirrored pass un-flips x). */
function queryRegionOf(inverse: number[], target: Features, cand: Features, mirrored: boolean): Quad | undefined {
  const out: Array<[number, number]> = [];
  for (const [x, y] of [[0, 0], [target.width, 0], [target.width, target.height], [0, target.height]] as const) {
    const wz = inverse[6]! * x + inverse[7]! * y + inverse[8]!;
    if (!(wz > 1e-8)) return undefined;
    let px = (inverse[0]! * x + inverse[1]! * y + inverse[2]!) / wz;
    const py = (inverse[3]! * x + inverse[4]! * y + inverse[5]!) / wz;
    if (mirrored) px = cand.width - px;
    out.push([Math.round((px / cand.width) * 1e4) / 1e4, Math.round((py / cand.height) * 1e4) / 1e4]);
  }
  return out as Quad;
}

const models = (m: RansacModel): Array<'similarity' | 'homography'> =>
  m === 'similarity+homography' ? ['similarity', 'homography'] : [m];

/**
 * One pass: candidate (as given or mirrored) against the target (exported for the
 * benchmark). Models are tried in order until one reaches `acceptInliers`; the best fit
 * counts.
 */
export function verifyPass(cand: Features, target: Features, opts: VerifyOptions, mirrored: boolean, acceptInliers = 1, pairs = oneToOneMatches(cand, target, opts.ratio, opts.kernel)): SiftVerification {
  if (pairs.length < MIN_MATCHES) {
    const few: SiftVerification = { inliers: 0, matches: pairs.length, mirrored, failure: 'too_few_matches' };
    const wanted = pairs.length >= MIN_HYPOTHESIS_INLIERS && Math.min(cand.count, target.count) < (opts.fewMatchHypothesisBelow ?? 0);
    const hypothesis = wanted ? fewMatchHypothesis(pairs, cand, target, opts.reprojPx, mirrored) : undefined;
    return hypothesis ? { ...few, hypothesis } : few;
  }
  let best: SiftVerification | undefined;
  let hypothesis: Hypothesis | undefined;
  for (const model of models(opts.model)) {
    const v = judge(model, pairs, cand, target, opts, mirrored, acceptInliers);
    if (v.hypothesis && (!hypothesis || v.hypothesis.inliers > hypothesis.inliers)) hypothesis = v.hypothesis;
    if (!best || v.inliers > best.inliers) best = v;
    if (v.inliers >= acceptInliers) break;
  }
  return hypothesis ? { ...best!, hypothesis } : best!;
}

/** Verifies the candidate against one target; the mirrored pass only runs when the plain one fails. */
export function verifySift(cand: CandidateFeatures, target: Features, opts: VerifyOptions, acceptInliers: number): SiftVerification {
  const matches = candidateMatches(cand, target, opts.kernel);
  const plain = verifyPass(cand.plain, target, opts, false, acceptInliers, matches(false, opts.ratio));
  if (plain.inliers >= acceptInliers) return plain;
  const mirror = verifyPass(cand.mirrored, target, opts, true, acceptInliers, matches(true, opts.ratio));
  if (mirror.inliers > plain.inliers) return mirror;
  // Neither fits: report the failure of the pass that got further (more matches), with the
  // stronger hypothesis of the two passes.
  const out = mirror.matches > plain.matches && plain.inliers === 0 ? mirror : plain;
  const hypothesis = [plain.hypothesis, mirror.hypothesis].reduce<Hypothesis | undefined>((a, h) => (h && (!a || h.inliers > a.inliers) ? h : a), undefined);
  return hypothesis ? { ...out, hypothesis } : out;
}
