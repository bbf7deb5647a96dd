/**
 * Dense check for low-texture pairs: correlation of aligned 32x32 thumbnails over the 8
 * orientations and a few crop scales, and where the best alignment puts the candidate.
 */
import { copyOut, cv, toMat, type GreyImage } from './opencv.binding.js';
import { mul3, project } from './transform.geometry.js';

/** Side of the square (aspect-squashed) thumbnail the dense check compares. */
export const DENSE_THUMB = 32;

/** Linear fraction of the other image that one side may cover (crops down to ~50% area, borders). */
export const DENSE_SCALES = [1, 0.85, 0.72, 0.62];

/** A thumbnail prepared for matchTemplate, with its flatness computed once. */
interface Prepared { mat: cv.Mat; flat: boolean; side: number }

/** No defined correlation: matchTemplate's normalisation divides by this spread. */
export const isFlat = (mat: cv.Mat): boolean => mat.meanStdDev().stddev.at(0, 0) < 1e-3;

const prepare = (mat: cv.Mat): Prepared => ({ mat, flat: isFlat(mat), side: mat.cols });

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

/** Grey levels and gradient magnitude of a thumbnail, each at every crop scale (plain orientation). */
interface Plane {
  scaled: Prepared[];
  /**
   * The 8 orientations side by side (DENSE_THUMB x 8 DENSE_THUMB): forward for a candidate,
   * inverse for a target (see bestAligned), built once per thumbnail.
   */
  oriented: cv.Mat;
}
interface Planes { grey: Plane; edges: Plane }

export function gradientMagnitude(m: cv.Mat): cv.Mat {
  const gx = m.sobel(cv.CV_32F, 1, 0, 3);
  const gy = m.sobel(cv.CV_32F, 0, 1, 3);
  return gx.hMul(gx).add(gy.hMul(gy)).sqrt();
}

const S = DENSE_THUMB;
const O = ORIENTATION_MAPS.length;
/** A float plane's pixels, row-major (a copy: the Mat's buffer may be reused). */
export const pixelsOf = (m: cv.Mat): Float32Array => copyOut(m.getData(), new Float32Array(m.rows * m.cols));

/**
 * The 8 orientations of a square plane side by side, so that one matchTemplate call
 * correlates a template with all of them (a window straddling two of them is never read).
 * `inverse`: the k-th holds pixel M_k(r) at r (the inverse orientation), which lets the
 * plain candidate stand for its k-th orientation inside a target (see bestAligned).
 */
function sideBySide(plane: Float32Array, inverse: boolean): cv.Mat {
  const out = new Float32Array(S * O * S);
  for (let o = 0; o < O; o++) {
    const [a, b, c, d, e, f] = ORIENTATION_MAPS[o]!;
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const u = a! * x + b! * y + c!;
        const v = d! * x + e! * y + f!;
        // forward: the oriented plane holds p at M(p); inverse: it holds M(r) at r.
        if (inverse) out[y * O * S + o * S + x] = plane[v * S + u]!;
        else out[v * O * S + o * S + u] = plane[y * S + x]!;
      }
    }
  }
  return new cv.Mat(Buffer.from(out.buffer), S, O * S, cv.CV_32F);
}

/**
 * Computed once per thumbnail and kept while it lives (a worker keeps its targets and a
 * request's candidate): a pair then costs only its matchTemplate calls.
 */
const planesOf = new WeakMap<GreyImage, { plain?: Planes; candidate?: Planes }>();
function planes(img: GreyImage, candidate: boolean): Planes {
  const held = planesOf.get(img) ?? {};
  const hit = candidate ? held.candidate : held.plain;
  if (hit) return hit;
  const grey = toMat(img).convertTo(cv.CV_32F);
  const plane = (m: cv.Mat): Plane => ({ scaled: scaled(m), oriented: sideBySide(pixelsOf(m), !candidate) });
  const p = { grey: plane(grey), edges: plane(gradientMagnitude(grey)) };
  planesOf.set(img, candidate ? { ...held, candidate: p } : { ...held, plain: p });
  return p;
}

/** One placement of the candidate's oriented thumbnail in the target's, and its correlation. */
interface Placement { value: number; orientation: number; candScale: number; targetScale: number; x: number; y: number }
interface Peak { value: number; x: number; y: number }
const NONE: Peak = { value: 0, x: 0, y: 0 };

/**
 * The best window of each orientation in a side-by-side correlation (first in row order on
 * ties, as minMaxLoc). A flat side has no defined correlation (OpenCV returns a non-finite
 * value for it): it places nothing, and neither does a correlation of 0 or below.
 */
function peaks(image: cv.Mat, template: Prepared, flat: boolean): Peak[] {
  if (flat || template.flat) return Array.from({ length: O }, () => NONE);
  const side = template.side;
  const width = O * S - side + 1;
  const r = pixelsOf(image.matchTemplate(template.mat, cv.TM_CCOEFF_NORMED));
  const out: Peak[] = [];
  for (let o = 0; o < O; o++) {
    let best = NONE;
    for (let y = 0; y <= S - side; y++) {
      for (let x = 0; x <= S - side; x++) {
        const v = r[y * width + o * S + x]!;
        if (v > best.value && Number.isFinite(v)) best = { value: v, x, y };
      }
    }
    out.push(best);
  }
  return out;
}

/** Top-left corner of the side x side square at (x, y) after an orientation map (affine: never undefined). */
function mappedCorner(m: readonly number[], x: number, y: number, side: number): { x: number; y: number } {
  const corners = [[x, y], [x + side - 1, y], [x, y + side - 1], [x + side - 1, y + side - 1]].map(([u, v]) => project(m, u!, v!)!);
  return { x: Math.min(...corners.map((c) => c[0])), y: Math.min(...corners.map((c) => c[1])) };
}

/**
 * Best correlation over the 8 orientations of the candidate and the crop scales, both ways,
 * in 7 matchTemplate calls instead of 56 (a call on 32x32 pictures is almost all binding
 * overhead). The target inside the oriented candidate: the target's shrinks against the
 * candidate's orientations side by side. The oriented candidate shrunk inside the target:
 * correlation is unchanged when both sides are permuted alike, so the window at p of the
 * target against orientation k of the candidate equals the same window carried by the
 * inverse orientation against the plain candidate; the target's inverse orientations side
 * by side take the plain shrinks, and each peak is carried back to the target's frame.
 */
function bestAligned(cand: Plane, target: Plane): Placement {
  const candFlat = cand.scaled[0]!.flat;
  const targetFlat = target.scaled[0]!.flat;
  const same = peaks(cand.oriented, target.scaled[0]!, candFlat);
  const targetIn: Peak[][] = [];
  const candIn: Peak[][] = [];
  for (let i = 1; i < DENSE_SCALES.length; i++) {
    targetIn[i] = peaks(cand.oriented, target.scaled[i]!, candFlat);
    const side = cand.scaled[i]!.side;
    candIn[i] = peaks(target.oriented, cand.scaled[i]!, targetFlat).map((p, o) => (p === NONE ? p : { value: p.value, ...mappedCorner(ORIENTATION_MAPS[o]!, p.x, p.y, side) }));
  }
  let best: Placement = { value: 0, orientation: 0, candScale: 0, targetScale: 0, x: 0, y: 0 };
  const keep = (p: Peak, orientation: number, candScale: number, targetScale: number) => {
    if (p.value > best.value) best = { ...p, orientation, candScale, targetScale };
  };
  // The order of the one-call-per-placement search this replaces: the same winner on ties.
  for (let o = 0; o < O; o++) {
    keep(same[o]!, o, 0, 0);
    for (let i = 1; i < DENSE_SCALES.length; i++) {
      keep(candIn[i]![o]!, o, i, 0);
      keep(targetIn[i]![o]!, o, 0, i);
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
function placementMap(p: Placement, cand: Plane, target: Plane): number[] {
  const orient = ORIENTATION_MAPS[p.orientation]!;
  if (p.candScale > 0) return mul3(shift(p.x, p.y), mul3(resizeMap(DENSE_THUMB, cand.scaled[p.candScale]!.side), orient));
  // oriented = resize(target) + (x, y)  =>  target = resize^-1(oriented - (x, y)).
  if (p.targetScale > 0) return mul3(resizeMap(target.scaled[p.targetScale]!.side, DENSE_THUMB), mul3(shift(-p.x, -p.y), orient));
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
  const grey = bestAligned(cand.grey, target.grey);
  const edges = bestAligned(cand.edges, target.edges);
  return {
    correlation: (grey.value + edges.value) / 2,
    placements: [placementMap(grey, cand.grey, target.grey), placementMap(edges, cand.edges, target.edges)],
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
