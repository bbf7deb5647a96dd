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
// Loaded after the variables are set (a static import would be hoisted above them). The
// default export is the whole binding, including what the patch adds (batchDistance).
export const cv = (createRequire(import.meta.url)('@u4/opencv4nodejs') as { default: typeof cvTypes }).default;
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
  /**
   * count x 128 SIFT descriptors. OpenCV rounds every SIFT component to an integer in
   * 0..255 even in its float output, so bytes hold them exactly at a quarter of the size
   * (the cache and the messages to the workers carry these).
   */
  descriptors: Uint8Array;
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

/** Copies a native buffer into a typed array: its byte offset need not be aligned. */
function copyOut<T extends Float32Array | Int32Array | Uint8Array>(src: Buffer, out: T): T {
  new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(src.subarray(0, out.byteLength));
  return out;
}

function describe(mat: cv.Mat, maxKeypoints: number): Features {
  // One call, one scale space (detect() then compute() builds it twice).
  const found = siftDetector(maxKeypoints).detectAndCompute(mat);
  // nFeatures keeps the strongest responses, but ties can exceed it: cap explicitly.
  const count = Math.min(found.keypoints.length, maxKeypoints);
  const points = new Float32Array(count * 2);
  for (let i = 0; i < count; i++) {
    const p = found.keypoints[i]!.pt;
    points[2 * i] = p.x;
    points[2 * i + 1] = p.y;
  }
  const descriptors = new Uint8Array(count * DESCRIPTOR_SIZE);
  if (count > 0) copyOut(found.descriptors.convertTo(cv.CV_8U).getData(), descriptors);
  return { width: mat.cols, height: mat.rows, count, points, descriptors };
}

/**
 * Where each component of a SIFT descriptor goes when the image is mirrored left-right.
 * The descriptor is a 4x4 grid (rows across, columns along the keypoint's orientation) of
 * 8 orientation bins. Mirroring keeps the axis along the orientation and reverses the
 * one across it, so grid rows swap (r -> 3 - r) and relative angles change sign
 * (bin o -> -o mod 8). Checked against SIFT run on flipped images in the tests.
 */
const MIRROR_INDEX = Uint8Array.from({ length: DESCRIPTOR_SIZE }, (_, i) => {
  const r = i >> 5;
  const c = (i >> 3) & 3;
  const o = i & 7;
  return (((3 - r) * 4 + c) << 3) | ((8 - o) & 7);
});

/** The features of the left-right mirrored image, derived without running SIFT again. */
export function mirrorFeatures(f: Features): Features {
  const points = new Float32Array(f.points.length);
  for (let i = 0; i < f.count; i++) {
    // flip(1) sends pixel column c to width - 1 - c.
    points[2 * i] = f.width - 1 - f.points[2 * i]!;
    points[2 * i + 1] = f.points[2 * i + 1]!;
  }
  const descriptors = new Uint8Array(f.descriptors.length);
  for (let k = 0; k < f.count; k++) {
    const base = k * DESCRIPTOR_SIZE;
    for (let i = 0; i < DESCRIPTOR_SIZE; i++) descriptors[base + i] = f.descriptors[base + MIRROR_INDEX[i]!]!;
  }
  return { width: f.width, height: f.height, count: f.count, points, descriptors };
}

export function extractFeatures(img: GreyImage, maxKeypoints: number): Features {
  return describe(toMat(img), maxKeypoints);
}

export function extractCandidateFeatures(img: GreyImage, maxKeypoints: number): CandidateFeatures {
  const plain = extractFeatures(img, maxKeypoints);
  return { plain, mirrored: mirrorFeatures(plain) };
}

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

interface Pair { q: number; t: number; d: number }

/**
 * 2-NN (OpenCV's batchDistance, the kernel of its brute-force matcher, read as two
 * arrays instead of a DMatch object per row), Lowe's ratio test, then one-to-one:
 * several candidate keypoints landing on the same target keypoint make degenerate fits
 * with many fake inliers, so only the closest is kept.
 */
function oneToOneMatches(cand: Features, target: Features, ratio: number): Pair[] {
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

/** A thumbnail prepared for matchTemplate, with its flatness computed once. */
interface Prepared { mat: cv.Mat; flat: boolean }

const prepare = (mat: cv.Mat): Prepared => ({ mat, flat: mat.meanStdDev().stddev.at(0, 0) < 1e-3 });

/** The image and its INTER_AREA shrinks to each crop scale, computed once per pair. */
function scaled(m: cv.Mat): Prepared[] {
  return DENSE_SCALES.map((s) => {
    const side = Math.round(m.cols * s);
    return prepare(s === 1 ? m : m.resize(side, side, 0, 0, cv.INTER_AREA));
  });
}

function bestCorrelation(image: Prepared, template: Prepared): number {
  // A flat side has no defined correlation (and OpenCV returns a non-finite value for it).
  if (template.flat || image.flat) return 0;
  const v = image.mat.matchTemplate(template.mat, cv.TM_CCOEFF_NORMED).minMaxLoc().maxVal;
  return Number.isFinite(v) ? v : 0;
}

/** Best correlation over the 8 orientations of the candidate and the crop scales, both ways. */
function bestAligned(cand: cv.Mat, target: cv.Mat): number {
  const targets = scaled(target);
  let best = 0;
  for (const o of orientations(cand)) {
    const cands = scaled(o);
    best = Math.max(best, bestCorrelation(targets[0]!, cands[0]!));
    for (let i = 1; i < DENSE_SCALES.length; i++) {
      best = Math.max(best, bestCorrelation(targets[0]!, cands[i]!), bestCorrelation(cands[0]!, targets[i]!));
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
