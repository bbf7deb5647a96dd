/**
 * Dense check for low-texture pairs: correlation of aligned 32x32 thumbnails over the 8
 * orientations and a few crop scales, and where the best alignment puts the candidate.
 */
import { cv, toMat, type GreyImage } from './opencv.binding.js';
import { mul3 } from './transform.geometry.js';

/** Side of the square (aspect-squashed) thumbnail the dense check compares. */
export const DENSE_THUMB = 32;

/** Linear fraction of the other image that one side may cover (crops down to ~50% area, borders). */
export const DENSE_SCALES = [1, 0.85, 0.72, 0.62];

/** A thumbnail prepared for matchTemplate, with its flatness computed once. */
interface Prepared { mat: cv.Mat; flat: boolean; side: number }

const prepare = (mat: cv.Mat): Prepared => ({ mat, flat: mat.meanStdDev().stddev.at(0, 0) < 1e-3, side: mat.cols });

/** The image and its INTER_AREA shrinks to each crop scale. */
function scaled(m: cv.Mat): Prepared[] {
  return DENSE_SCALES.map((s) => {
    const side = Math.round(m.cols * s);
    return prepare(s === 1 ? m : m.resize(side, side, 0, 0, cv.INTER_AREA));
  });
}

const N = DENSE_THUMB - 1;
/**
 * The 8 orientations (dihedral group) of the square thumbnail, as OpenCV makes them
 * (plain, then flipped left-right, each rotated 90 degrees clockwise, 180, 90 anticlockwise),
 * and the 3x3 map of each from the thumbnail's pixels to the oriented one's.
 */
const ROTATIONS = [[1, 0, 0, 0, 1, 0, 0, 0, 1], [0, -1, N, 1, 0, 0, 0, 0, 1], [-1, 0, N, 0, -1, N, 0, 0, 1], [0, 1, 0, -1, 0, N, 0, 0, 1]];
const FLIP = [-1, 0, N, 0, 1, 0, 0, 0, 1];
export const ORIENTATION_MAPS = [...ROTATIONS, ...ROTATIONS.map((r) => mul3(r, FLIP))];

function orientations(m: cv.Mat): cv.Mat[] {
  const out: cv.Mat[] = [];
  for (const base of [m, m.flip(1)]) {
    out.push(base, base.rotate(cv.ROTATE_90_CLOCKWISE), base.rotate(cv.ROTATE_180), base.rotate(cv.ROTATE_90_COUNTERCLOCKWISE));
  }
  return out;
}

/** Grey levels and gradient magnitude of a thumbnail, each at every orientation and crop scale. */
interface Planes { grey: Prepared[][]; edges: Prepared[][] }

function gradientMagnitude(m: cv.Mat): cv.Mat {
  const gx = m.sobel(cv.CV_32F, 1, 0, 3);
  const gy = m.sobel(cv.CV_32F, 0, 1, 3);
  return gx.hMul(gx).add(gy.hMul(gy)).sqrt();
}

/**
 * Computed once per thumbnail and kept while it lives (a worker keeps its targets and a
 * request's candidate): a pair then costs only its matchTemplate calls. A target needs only
 * its plain orientation; the candidate all 8.
 */
const planesOf = new WeakMap<GreyImage, { plain?: Planes; all?: Planes }>();
function planes(img: GreyImage, all: boolean): Planes {
  const held = planesOf.get(img) ?? {};
  const hit = all ? held.all : held.plain;
  if (hit) return hit;
  const grey = toMat(img).convertTo(cv.CV_32F);
  const views = (m: cv.Mat) => (all ? orientations(m) : [m]).map(scaled);
  const p = { grey: views(grey), edges: views(gradientMagnitude(grey)) };
  planesOf.set(img, all ? { ...held, all: p } : { ...held, plain: p });
  return p;
}

/** One placement of the candidate's oriented thumbnail in the target's, and its correlation. */
interface Placement { value: number; orientation: number; candScale: number; targetScale: number; x: number; y: number }

function place(image: Prepared, template: Prepared): { value: number; x: number; y: number } {
  // A flat side has no defined correlation (and OpenCV returns a non-finite value for it).
  if (template.flat || image.flat) return { value: 0, x: 0, y: 0 };
  const r = image.mat.matchTemplate(template.mat, cv.TM_CCOEFF_NORMED).minMaxLoc();
  return Number.isFinite(r.maxVal) ? { value: r.maxVal, x: r.maxLoc.x, y: r.maxLoc.y } : { value: 0, x: 0, y: 0 };
}

/** Best correlation over the 8 orientations of the candidate and the crop scales, both ways. */
function bestAligned(cand: Prepared[][], target: Prepared[]): Placement {
  let best: Placement = { value: 0, orientation: 0, candScale: 0, targetScale: 0, x: 0, y: 0 };
  const keep = (p: { value: number; x: number; y: number }, orientation: number, candScale: number, targetScale: number) => {
    if (p.value > best.value) best = { ...p, orientation, candScale, targetScale };
  };
  for (const [o, cands] of cand.entries()) {
    keep(place(target[0]!, cands[0]!), o, 0, 0);
    for (let i = 1; i < DENSE_SCALES.length; i++) {
      keep(place(target[0]!, cands[i]!), o, i, 0);
      keep(place(cands[0]!, target[i]!), o, 0, i);
    }
  }
  return best;
}

/** INTER_AREA resize of an n-px side to m px, in pixel-centre coordinates. */
const resizeMap = (n: number, m: number) => [m / n, 0, (m / n - 1) / 2, 0, m / n, (m / n - 1) / 2, 0, 0, 1];
const shift = (x: number, y: number) => [1, 0, x, 0, 1, y, 0, 0, 1];

/**
 * A placement as a 3x3 map from the candidate's thumbnail pixels to the target's: orient,
 * then either the candidate shrunk and put at (x, y) inside the target, or the target
 * shrunk and put at (x, y) inside the oriented candidate (inverted).
 */
function placementMap(p: Placement, cand: Prepared[][], target: Prepared[]): number[] {
  const orient = ORIENTATION_MAPS[p.orientation]!;
  if (p.candScale > 0) return mul3(shift(p.x, p.y), mul3(resizeMap(DENSE_THUMB, cand[p.orientation]![p.candScale]!.side), orient));
  // oriented = resize(target) + (x, y)  =>  target = resize^-1(oriented - (x, y)).
  if (p.targetScale > 0) return mul3(resizeMap(target[p.targetScale]!.side, DENSE_THUMB), mul3(shift(-p.x, -p.y), orient));
  return orient;
}

export interface DenseResult {
  /** Mean of the best grey and the best gradient-magnitude correlation. */
  correlation: number;
  /**
   * Where the two searches put the candidate (grey, then gradient): 3x3 row-major maps from
   * the candidate's 32x32 thumbnail pixels to the target's.
   */
  placements: number[][];
}

/**
 * Normalised cross-correlation of small aligned thumbnails (best over the 8 orientations
 * and a few crop scales, candidate inside target and target inside candidate), averaged
 * over the grey levels and the gradient magnitude. Grey alone correlates highly between
 * unrelated smooth gradients; the gradient term needs the same edges in the same place.
 */
export function denseCheck(candThumb: GreyImage, targetThumb: GreyImage): DenseResult {
  const cand = planes(candThumb, true);
  const target = planes(targetThumb, false);
  const grey = bestAligned(cand.grey, target.grey[0]!);
  const edges = bestAligned(cand.edges, target.edges[0]!);
  return {
    correlation: (grey.value + edges.value) / 2,
    placements: [placementMap(grey, cand.grey, target.grey[0]!), placementMap(edges, cand.edges, target.edges[0]!)],
  };
}

export const denseCorrelation = (candThumb: GreyImage, targetThumb: GreyImage): number => denseCheck(candThumb, targetThumb).correlation;

/**
 * A map between 32x32 thumbnails (dense placement) expressed between the aspect-kept
 * overlap thumbnails of the same two images (the 32x32 one is squashed to a square).
 */
export function overlapMapOf(thumbMap: readonly number[], cand: { width: number; height: number }, target: { width: number; height: number }): number[] {
  const toSquare = [DENSE_THUMB / cand.width, 0, (DENSE_THUMB / cand.width - 1) / 2, 0, DENSE_THUMB / cand.height, (DENSE_THUMB / cand.height - 1) / 2, 0, 0, 1];
  const fromSquare = [target.width / DENSE_THUMB, 0, (target.width / DENSE_THUMB - 1) / 2, 0, target.height / DENSE_THUMB, (target.height / DENSE_THUMB - 1) / 2, 0, 0, 1];
  return mul3(fromSquare, mul3(thumbMap, toSquare));
}
