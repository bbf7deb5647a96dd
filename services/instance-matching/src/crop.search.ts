/**
 * Aspect-kept crop search for low-texture pairs: where inside the neighbour a copy cut out
 * of it (a strip, a corner, a zoom) lies, found on the overlap thumbnails.
 *
 * The dense check compares 32x32 thumbnails squashed to a square, and places one inside the
 * other at the same scale on both axes: right for a copy that kept the picture's aspect
 * (a resize, a centred crop), wrong for a full-width strip, whose squashed thumbnail is the
 * strip stretched three times in height. And its smallest placement covers 62% of a side,
 * so a corner crop or a zoom on the middle 40% is never tried. Here the copy keeps its own
 * aspect and is placed at a ladder of sizes, its long side from the whole of the
 * neighbour's down to DENSE_CROP_FRACTIONS' last, in each of the 8 orientations. The best
 * placement is only a hypothesis: the caller confirms it on the same 96-px thumbnails
 * with the overlap check's agreement and pinning rules (overlap.check.ts), exactly as it
 * confirms the dense check's own placements.
 */
import { gradientMagnitude, isFlat } from './dense.check.js';
import { cv, toMat, type GreyImage } from './opencv.binding.js';
import { mul3 } from './transform.geometry.js';

/**
 * Long side of the copy over the neighbour's long side, each step 0.85 of the last as in
 * DENSE_SCALES: from a resized whole down to a corner crop of about a seventh of the area
 * (0.38 linear), past the quarter-area crops copies are made of (0.5 linear).
 */
export const DENSE_CROP_FRACTIONS = [1, 0.85, 0.72, 0.62, 0.53, 0.45, 0.38];

/** The search runs at half the overlap thumbnail (48 px long side): a cell of the pinning slides. */
const SHRINK = 2;
/** A template smaller than this (pixels a side) holds too few gradients to correlate. */
const MIN_TEMPLATE = 8;

export interface CropPlacement {
  /** Mean of the grey and the gradient-magnitude correlation at the best placement (-1..1; 0: none). */
  correlation: number;
  /** 3x3 row-major map from the copy's overlap-thumbnail pixels to the neighbour's. */
  map: number[];
  /** The copy's long side over the neighbour's at that placement (one of DENSE_CROP_FRACTIONS). */
  fraction: number;
}

/** The copy's pixels -> its k-th orientation's (OpenCV's: flipped left-right for k >= 4, then turned clockwise k % 4 times). */
function orientationMap(k: number, w: number, h: number): number[] {
  const flip = k >= 4 ? [-1, 0, w - 1, 0, 1, 0, 0, 0, 1] : [1, 0, 0, 0, 1, 0, 0, 0, 1];
  const turns = [[1, 0, 0, 0, 1, 0, 0, 0, 1], [0, -1, h - 1, 1, 0, 0, 0, 0, 1], [-1, 0, w - 1, 0, -1, h - 1, 0, 0, 1], [0, 1, 0, -1, 0, w - 1, 0, 0, 1]];
  return mul3(turns[k % 4]!, flip);
}

function oriented(m: cv.Mat, k: number): cv.Mat {
  const x = k >= 4 ? m.flip(1) : m;
  const turn = [undefined, cv.ROTATE_90_CLOCKWISE, cv.ROTATE_180, cv.ROTATE_90_COUNTERCLOCKWISE][k % 4];
  return turn === undefined ? x : x.rotate(turn);
}

/** INTER_AREA resize of n px to m px, in pixel-centre coordinates, per axis. */
const resizeMap = (sx: number, sy: number) => [sx, 0, (sx - 1) / 2, 0, sy, (sy - 1) / 2, 0, 0, 1];

interface TargetPlanes { grey: cv.Mat; edges: cv.Mat }
interface CopyPlanes { oriented: cv.Mat[]; templates: Map<string, TargetPlanes | null> }
// Kept while the thumbnail lives: a worker keeps its targets, and a request's copy meets 10 of them.
const targets = new WeakMap<GreyImage, TargetPlanes>();
const copies = new WeakMap<GreyImage, CopyPlanes>();

function targetPlanes(img: GreyImage): TargetPlanes {
  const hit = targets.get(img);
  if (hit) return hit;
  const grey = toMat(img).convertTo(cv.CV_32F).resize(Math.round(img.height / SHRINK), Math.round(img.width / SHRINK), 0, 0, cv.INTER_AREA);
  const p = { grey, edges: gradientMagnitude(grey) };
  targets.set(img, p);
  return p;
}

function copyPlanes(img: GreyImage): CopyPlanes {
  const hit = copies.get(img);
  if (hit) return hit;
  const grey = toMat(img).convertTo(cv.CV_32F);
  const p = { oriented: Array.from({ length: 8 }, (_, k) => oriented(grey, k)), templates: new Map() };
  copies.set(img, p);
  return p;
}

/** The k-th orientation of the copy resized to w x h, grey and gradient; null when either is flat. */
function template(p: CopyPlanes, k: number, w: number, h: number): TargetPlanes | null {
  const key = `${k}:${w}x${h}`;
  if (p.templates.has(key)) return p.templates.get(key)!;
  const grey = p.oriented[k]!.resize(h, w, 0, 0, cv.INTER_AREA);
  const edges = gradientMagnitude(grey);
  const t = isFlat(grey) || isFlat(edges) ? null : { grey, edges };
  p.templates.set(key, t);
  return t;
}

/**
 * The best placement of the copy inside the neighbour, its aspect kept, over the 8
 * orientations and DENSE_CROP_FRACTIONS, by the mean of the grey and gradient-magnitude
 * normalised cross-correlations (grey alone correlates between unrelated smooth gradients).
 */
export function cropSearch(copy: GreyImage, target: GreyImage): CropPlacement {
  const none: CropPlacement = { correlation: 0, map: [], fraction: 0 };
  if (copy.width < MIN_TEMPLATE || target.width < MIN_TEMPLATE * SHRINK) return none;
  const t = targetPlanes(target);
  if (isFlat(t.grey) || isFlat(t.edges)) return none;
  const c = copyPlanes(copy);
  const [tw, th] = [t.grey.cols, t.grey.rows];
  let best = none;
  for (let k = 0; k < 8; k++) {
    const [ow, oh] = [c.oriented[k]!.cols, c.oriented[k]!.rows];
    for (const f of DENSE_CROP_FRACTIONS) {
      const scale = (f * Math.max(tw, th)) / Math.max(ow, oh);
      const [w, h] = [Math.round(ow * scale), Math.round(oh * scale)];
      if (w > tw || h > th || Math.min(w, h) < MIN_TEMPLATE) continue;
      const tpl = template(c, k, w, h);
      if (!tpl) continue;
      const sum = t.grey.matchTemplate(tpl.grey, cv.TM_CCOEFF_NORMED).add(t.edges.matchTemplate(tpl.edges, cv.TM_CCOEFF_NORMED));
      const { maxVal, maxLoc } = sum.minMaxLoc();
      const value = maxVal / 2;
      if (!Number.isFinite(value) || value <= best.correlation) continue;
      // copy px -> oriented px -> template px -> shifted into the shrunk target -> target overlap px.
      const up = resizeMap(target.width / tw, target.height / th);
      const place = mul3([1, 0, maxLoc.x, 0, 1, maxLoc.y, 0, 0, 1], resizeMap(w / ow, h / oh));
      best = { correlation: value, map: mul3(up, mul3(place, orientationMap(k, copy.width, copy.height))), fraction: f };
    }
  }
  return best;
}
