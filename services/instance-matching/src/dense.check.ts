/** Dense check for low-texture pairs: correlation of aligned thumbnails over orientations and crops. */
import { cv, toMat, type GreyImage } from './opencv.binding.js';

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
 * Normalised cross-correlation of small aligned thumbnails (best over the 8 orientations
 * and a few crop scales, candidate inside target and target inside candidate), averaged
 * over the grey levels and the gradient magnitude. Grey alone correlates highly between
 * unrelated smooth gradients; the gradient term needs the same edges in the same place.
 */
export function denseCorrelation(candThumb: GreyImage, targetThumb: GreyImage): number {
  const target = toMat(targetThumb).convertTo(cv.CV_32F);
  const cand = toMat(candThumb).convertTo(cv.CV_32F);
  const grey = bestAligned(cand, target);
  const edges = bestAligned(gradientMagnitude(cand), gradientMagnitude(target));
  return (grey + edges) / 2;
}
