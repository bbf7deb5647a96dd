/**
 * The one module that talks to OpenCV (via @u4/opencv4nodejs, patched so SIFT comes
 * from features2d). Everything it returns is plain typed arrays, so features can be
 * cached, and copied between worker threads, without holding native objects.
 */
import { createRequire } from 'node:module';
import type cvTypes from '@u4/opencv4nodejs';

// The binding's loader looks for an OpenCV build of its own at run time unless these say
// that the system OpenCV is used (the addon was built against Debian's, see .ci/run);
// without them it throws "No build found". Defaults only: a deployment may override them.
const SYSTEM_OPENCV = {
  OPENCV4NODEJS_DISABLE_AUTOBUILD: '1',
  OPENCV_INCLUDE_DIR: '/usr/include/opencv4',
  OPENCV_LIB_DIR: '/usr/lib/x86_64-linux-gnu',
  OPENCV_BIN_DIR: '/usr/bin',
};
// eslint-disable-next-line no-restricted-syntax -- native-library bootstrap, not configuration
for (const [k, v] of Object.entries(SYSTEM_OPENCV)) process.env[k] ??= v;
// Loaded after the variables are set (a static import would be hoisted above them).
export const cv = createRequire(import.meta.url)('@u4/opencv4nodejs') as typeof cvTypes;
// eslint-disable-next-line @typescript-eslint/no-namespace
export declare namespace cv {
  type Mat = cvTypes.Mat;
  type SIFTDetector = cvTypes.SIFTDetector;
}
import { sanityOf, type Quad } from './transform.geometry.js';

// One OpenCV thread per process: the pool's processes are the parallelism, and the
// binding's Mat allocator reports memory to V8, which aborts when OpenCV's own worker
// threads (parallel_for_) allocate ("Check failed: marking_done_", seen in SIFT detect).
cv.setNumThreads(1);

/** An 8-bit single-channel image, row-major, no padding. */
export interface GreyImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export interface Features {
  width: number;
  height: number;
  count: number;
  /** x, y pairs in working-size pixels. */
  points: Float32Array;
  /** count x 128 SIFT descriptors. */
  descriptors: Float32Array;
}

/** The candidate is described twice: as given and mirrored, so mirrored copies verify. */
export interface CandidateFeatures {
  plain: Features;
  mirrored: Features;
}

export type RansacModel = 'similarity' | 'homography';

export interface VerifyOptions {
  ratio: number;
  model: RansacModel;
  reprojPx: number;
}

export interface SiftVerification {
  inliers: number;
  /** Matches that passed the ratio test and the one-to-one filter. */
  matches: number;
  mirrored: boolean;
  /** Candidate corners in the target, normalised to [0,1] (may fall slightly outside). */
  region?: Quad;
}

/** Fewer one-to-one matches than this and RANSAC is not attempted: it would fit noise. */
export const MIN_MATCHES = 8;

const DESCRIPTOR_SIZE = 128;

export const siftAvailable = (): boolean => typeof cv.SIFTDetector === 'function';

let detector: cv.SIFTDetector | undefined;
let detectorCap = -1;
function siftDetector(maxKeypoints: number): cv.SIFTDetector {
  if (!detector || detectorCap !== maxKeypoints) {
    detector = new cv.SIFTDetector({ nFeatures: maxKeypoints });
    detectorCap = maxKeypoints;
  }
  return detector;
}

const toMat = (img: GreyImage): cv.Mat =>
  new cv.Mat(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), img.height, img.width, cv.CV_8UC1);

function describe(mat: cv.Mat, maxKeypoints: number): Features {
  const sift = siftDetector(maxKeypoints);
  // nFeatures keeps the strongest responses, but ties can exceed it: cap explicitly.
  const keypoints = sift.detect(mat).slice(0, maxKeypoints);
  const count = keypoints.length;
  const points = new Float32Array(count * 2);
  keypoints.forEach((k, i) => {
    points[2 * i] = k.pt.x;
    points[2 * i + 1] = k.pt.y;
  });
  let descriptors = new Float32Array(0);
  if (count > 0) {
    const d = sift.compute(mat, keypoints).getData();
    descriptors = new Float32Array(count * DESCRIPTOR_SIZE);
    // Byte copy: the native buffer's offset need not be 4-aligned.
    new Uint8Array(descriptors.buffer).set(d.subarray(0, descriptors.byteLength));
  }
  return { width: mat.cols, height: mat.rows, count, points, descriptors };
}

export function extractFeatures(img: GreyImage, maxKeypoints: number): Features {
  return describe(toMat(img), maxKeypoints);
}

export function extractCandidateFeatures(img: GreyImage, maxKeypoints: number): CandidateFeatures {
  const mat = toMat(img);
  return { plain: describe(mat, maxKeypoints), mirrored: describe(mat.flip(1), maxKeypoints) };
}

const descriptorMat = (f: Features): cv.Mat =>
  new cv.Mat(Buffer.from(f.descriptors.buffer, f.descriptors.byteOffset, f.descriptors.byteLength), f.count, DESCRIPTOR_SIZE, cv.CV_32F);

interface Pair { q: number; t: number; d: number }

/**
 * Ratio test, then one-to-one: several candidate keypoints landing on the same target
 * keypoint make degenerate fits with many fake inliers, so only the closest is kept.
 */
function oneToOneMatches(cand: Features, target: Features, ratio: number): Pair[] {
  if (cand.count < 2 || target.count < 2) return [];
  const knn = cv.matchKnnBruteForce(descriptorMat(cand), descriptorMat(target), 2);
  const bestForTarget = new Map<number, Pair>();
  for (const m of knn) {
    const a = m[0];
    const b = m[1];
    if (!a || !b || a.distance >= ratio * b.distance) continue;
    const prev = bestForTarget.get(a.trainIdx);
    if (!prev || a.distance < prev.d) bestForTarget.set(a.trainIdx, { q: a.queryIdx, t: a.trainIdx, d: a.distance });
  }
  return [...bestForTarget.values()];
}

const pt = (arr: Float32Array, i: number) => new cv.Point2(arr[2 * i]!, arr[2 * i + 1]!);

function countMask(mask: cv.Mat): number {
  const data = mask.getData();
  let n = 0;
  for (const v of data) if (v !== 0) n++;
  return n;
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
  if (opts.model === 'homography') {
    const r = cv.findHomography(from, to, cv.RANSAC, opts.reprojPx, 2000, 0.995);
    if (r.homography.empty) return none;
    matrix = r.homography.getDataAsArray().flat();
    inliers = countMask(r.mask);
  } else {
    const r = cv.estimateAffinePartial2D(from, to, cv.RANSAC, opts.reprojPx, 2000, 0.99, 10);
    if (r.out.empty) return none;
    matrix = [...r.out.getDataAsArray().flat(), 0, 0, 1];
    inliers = countMask(r.inliers);
  }
  // The corners of the candidate as given; the mirrored pass works in flipped coordinates.
  const w = cand.width;
  const h = cand.height;
  const corners: Quad = mirrored
    ? [[w, 0], [0, 0], [0, h], [w, h]]
    : [[0, 0], [w, 0], [w, h], [0, h]];
  const sane = sanityOf(matrix, corners, { width: w, height: h }, { width: target.width, height: target.height });
  if (!sane.ok) return none;
  return { inliers, matches: pairs.length, mirrored, region: sane.region };
}

/** Verifies the candidate against one target; the mirrored pass only runs when the plain one fails. */
export function verifySift(cand: CandidateFeatures, target: Features, opts: VerifyOptions, acceptInliers: number): SiftVerification {
  const plain = verifyPass(cand.plain, target, opts, false);
  if (plain.inliers >= acceptInliers) return plain;
  const mirror = verifyPass(cand.mirrored, target, opts, true);
  return mirror.inliers > plain.inliers ? mirror : plain;
}

/** The 8 orientations (dihedral group) of a square thumbnail. */
function orientations(m: cv.Mat): cv.Mat[] {
  const out: cv.Mat[] = [];
  for (const base of [m, m.flip(1)]) {
    out.push(base, base.rotate(cv.ROTATE_90_CLOCKWISE), base.rotate(cv.ROTATE_180), base.rotate(cv.ROTATE_90_COUNTERCLOCKWISE));
  }
  return out;
}

/** Linear fraction of the other image that one side may cover (crops down to ~50% area, borders). */
export const DENSE_SCALES = [1, 0.85, 0.72, 0.62];

const flat = (m: cv.Mat) => m.meanStdDev().stddev.at(0, 0) < 1e-3;

function bestCorrelation(image: cv.Mat, template: cv.Mat): number {
  if (flat(template) || flat(image)) return 0;
  const v = image.matchTemplate(template, cv.TM_CCOEFF_NORMED).minMaxLoc().maxVal;
  return Number.isFinite(v) ? v : 0;
}

/** Best correlation over the 8 orientations of the candidate and the crop scales, both ways. */
function bestAligned(cand: cv.Mat, target: cv.Mat): number {
  const size = target.cols;
  let best = 0;
  for (const o of orientations(cand)) {
    for (const s of DENSE_SCALES) {
      if (s === 1) {
        best = Math.max(best, bestCorrelation(target, o));
        continue;
      }
      const side = Math.round(size * s);
      best = Math.max(
        best,
        bestCorrelation(target, o.resize(side, side, 0, 0, cv.INTER_AREA)),
        bestCorrelation(o, target.resize(side, side, 0, 0, cv.INTER_AREA)),
      );
    }
  }
  return best;
}

function gradientMagnitude(m: cv.Mat): cv.Mat {
  const gx = m.sobel(cv.CV_32F, 1, 0, 3);
  const gy = m.sobel(cv.CV_32F, 0, 1, 3);
  return gx.hMul(gx).add(gy.hMul(gy)).sqrt();
}

/**
 * Dense check for low-texture images, where SIFT finds too few keypoints: normalised
 * cross-correlation of small aligned thumbnails (best over the 8 orientations and a few
 * crop scales, candidate inside target and target inside candidate), averaged over the
 * grey levels and the gradient magnitude. Grey alone correlates highly between unrelated
 * smooth gradients; the gradient term needs the same edges in the same place.
 */
export function denseCorrelation(candThumb: GreyImage, targetThumb: GreyImage): number {
  const target = toMat(targetThumb).convertTo(cv.CV_32F);
  const cand = toMat(candThumb).convertTo(cv.CV_32F);
  const grey = bestAligned(cand, target);
  const edges = bestAligned(gradientMagnitude(cand), gradientMagnitude(target));
  return (grey + edges) / 2;
}
