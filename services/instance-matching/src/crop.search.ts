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
import { gradientMagnitude, isFlat, pixelsOf } from './dense.check.js';
import { cv, toMat, type GreyImage } from './opencv.binding.js';
import { aspectGap } from './tone.check.js';
import { invert3x3, mul3 } from './transform.geometry.js';

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
interface CopyPlanes { oriented: cv.Mat[]; templates: Map<string, TargetPlanes | null>; shrunk?: TargetPlanes & { ones: cv.Mat } }
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

/** One plane pair to search: the neighbour's shrunk grey and gradient, and the map from its pixels to the neighbour's overlap thumbnail. */
interface SearchPlanes extends TargetPlanes { toTarget: number[] }

/**
 * The best placement of the copy's orientations `ks` inside `t` at each of `fractions`
 * (of t's long side), by the mean of the grey and gradient-magnitude correlations.
 */
function bestPlacement(copy: GreyImage, c: CopyPlanes, t: SearchPlanes, ks: readonly number[], fractions: readonly number[], best: CropPlacement): CropPlacement {
  const [tw, th] = [t.grey.cols, t.grey.rows];
  for (const k of ks) {
    const [ow, oh] = [c.oriented[k]!.cols, c.oriented[k]!.rows];
    for (const f of fractions) {
      const scale = (f * Math.max(tw, th)) / Math.max(ow, oh);
      const [w, h] = [Math.round(ow * scale), Math.round(oh * scale)];
      if (w > tw || h > th || Math.min(w, h) < MIN_TEMPLATE) continue;
      const tpl = template(c, k, w, h);
      if (!tpl) continue;
      const sum = t.grey.matchTemplate(tpl.grey, cv.TM_CCOEFF_NORMED).add(t.edges.matchTemplate(tpl.edges, cv.TM_CCOEFF_NORMED));
      const { maxVal, maxLoc } = sum.minMaxLoc();
      const value = maxVal / 2;
      if (!Number.isFinite(value) || value <= best.correlation) continue;
      // copy px -> oriented px -> template px -> shifted into the searched plane -> target overlap px.
      const place = mul3([1, 0, maxLoc.x, 0, 1, maxLoc.y, 0, 0, 1], resizeMap(w / ow, h / oh));
      best = { correlation: value, map: mul3(t.toTarget, mul3(place, orientationMap(k, copy.width, copy.height))), fraction: f };
    }
  }
  return best;
}

const NO_PLACEMENT: CropPlacement = { correlation: 0, map: [], fraction: 0 };

/**
 * The best placement of the copy inside the neighbour, its aspect kept, over the 8
 * orientations and DENSE_CROP_FRACTIONS, by the mean of the grey and gradient-magnitude
 * normalised cross-correlations (grey alone correlates between unrelated smooth gradients).
 */
export function cropSearch(copy: GreyImage, target: GreyImage): CropPlacement {
  if (copy.width < MIN_TEMPLATE || target.width < MIN_TEMPLATE * SHRINK) return NO_PLACEMENT;
  const t = targetPlanes(target);
  if (isFlat(t.grey) || isFlat(t.edges)) return NO_PLACEMENT;
  const up = resizeMap(target.width / t.grey.cols, target.height / t.grey.rows);
  return bestPlacement(copy, copyPlanes(copy), { ...t, toTarget: up }, [0, 1, 2, 3, 4, 5, 6, 7], DENSE_CROP_FRACTIONS, NO_PLACEMENT);
}

/**
 * Angles (degrees, either way) of the rotation search. A copy turned by a small angle is
 * either cropped to fill its frame again or shows the filled corners; turned by more than
 * about 20 degrees and cropped, it keeps under half of the picture (a 3:2 picture keeps
 * 0.69 of its side at 20 degrees). The 5-degree step leaves a copy at most 2.5 degrees off
 * an angle tried: about 2 px at the corners of the 96-px overlap thumbnail, under the
 * pinning slides (6 px), so the confirmation sees the placement as it is.
 */
export const ROTATION_STEP = 5;
export const ROTATION_ANGLES = [5, 10, 15, 20];
/** A quarter of the crop ladder's step (0.85) in size, as a factor. */
const ROTATION_REFINE = 0.85 ** 0.25;
/** A turned copy keeps at least about half of the turned neighbour's frame (the crop ladder down to 0.53). */
export const ROTATION_FRACTIONS = DENSE_CROP_FRACTIONS.filter((f) => f >= 0.5);

/**
 * The neighbour's shrunk thumbnail turned by `deg` about its centre onto a canvas that holds
 * all of it (edges replicated outwards, so the canvas border adds no edge of its own), and
 * the map from that canvas back to the neighbour's overlap thumbnail. Not kept with the
 * target (up to 14 angles of a few thousand pixels each, for a few of the targets a worker
 * holds): a turn costs a small fraction of the placements tried in it.
 */
function rotatedPlanes(target: GreyImage, deg: number): SearchPlanes | null {
  const t = targetPlanes(target);
  const [w, h] = [t.grey.cols, t.grey.rows];
  const [cos, sin] = [Math.cos((deg * Math.PI) / 180), Math.sin((deg * Math.PI) / 180)];
  const [W, H] = [Math.ceil(w * Math.abs(cos) + h * Math.abs(sin)), Math.ceil(w * Math.abs(sin) + h * Math.abs(cos))];
  // Shrunk px -> canvas px: about the centres (pixel-centre coordinates), turned by deg.
  const [cx, cy, Cx, Cy] = [(w - 1) / 2, (h - 1) / 2, (W - 1) / 2, (H - 1) / 2];
  const turn = [cos, -sin, Cx - cos * cx + sin * cy, sin, cos, Cy - sin * cx - cos * cy, 0, 0, 1];
  const grey = t.grey.warpAffine(new cv.Mat([turn.slice(0, 3), turn.slice(3, 6)], cv.CV_64F), new cv.Size(W, H), cv.INTER_LINEAR, cv.BORDER_REPLICATE);
  const edges = gradientMagnitude(grey);
  const back = invert3x3(turn)!;
  return isFlat(grey) || isFlat(edges) ? null : { grey, edges, toTarget: mul3(resizeMap(target.width / w, target.height / h), back) };
}

/**
 * Long side of a copy turned by `deg` and cropped to fill (the largest centred rectangle of
 * the picture's aspect without a filled corner, as a straighten tool crops) over the long
 * side of the turned canvas: where that copy sits on the crop ladder.
 */
function filledFraction(w: number, h: number, deg: number): number {
  const [c, s] = [Math.abs(Math.cos((deg * Math.PI) / 180)), Math.abs(Math.sin((deg * Math.PI) / 180))];
  const k = Math.min(h / (w * s + h * c), w / (w * c + h * s));
  return (k * Math.max(w, h)) / Math.max(w * c + h * s, w * s + h * c);
}

/** Placements the rotation searches return for confirmation: a few large shapes can correlate best at a wrong size. */
export const ROTATION_KEEP = 3;

/**
 * The rotation search: placements of the upright copy inside the neighbour turned by each of
 * ROTATION_ANGLES either way, at ROTATION_FRACTIONS of the turned frame and at the size a
 * copy cropped to fill would have. A copy cut out of the turned picture is an upright
 * rectangle in that frame, so the aspect-kept search above finds it there. The best
 * ROTATION_KEEP (angle, size) placements are each tried again a quarter ladder step either
 * way in size and half an angle step either way, and returned best first for the caller to
 * confirm. (Upright only: a turned copy is seldom also mirrored, and the mirrored search
 * would double the cost.)
 */
export function rotationSearch(copy: GreyImage, target: GreyImage): CropPlacement[] {
  if (copy.width < MIN_TEMPLATE || target.width < MIN_TEMPLATE * SHRINK) return [];
  const c = copyPlanes(copy);
  const turns = new Map<number, SearchPlanes | null>();
  const at = (deg: number, fraction: number) => {
    if (!turns.has(deg)) turns.set(deg, rotatedPlanes(target, deg));
    const t = turns.get(deg);
    return t ? bestPlacement(copy, c, t, [0], [fraction], NO_PLACEMENT) : NO_PLACEMENT;
  };
  const found: Array<CropPlacement & { angle: number }> = [];
  for (const a of ROTATION_ANGLES) {
    for (const deg of [a, -a]) {
      for (const f of [...ROTATION_FRACTIONS, filledFraction(target.width, target.height, deg)]) {
        const p = at(deg, f);
        if (p.correlation > 0) found.push({ ...p, angle: deg });
      }
    }
  }
  return refined(found, at);
}

/**
 * The best ROTATION_KEEP of `found`, each replaced by the best of it and its neighbours half
 * an angle step and a quarter ladder step either way (sizes past the whole frame left out).
 */
function refined(found: Array<CropPlacement & { angle: number }>, at: (deg: number, fraction: number) => CropPlacement): CropPlacement[] {
  return found.sort((x, y) => y.correlation - x.correlation).slice(0, ROTATION_KEEP).map((p) => {
    let best: CropPlacement = { correlation: p.correlation, map: p.map, fraction: p.fraction };
    for (const deg of [p.angle - ROTATION_STEP / 2, p.angle, p.angle + ROTATION_STEP / 2]) {
      for (const f of [p.fraction * ROTATION_REFINE, p.fraction, p.fraction / ROTATION_REFINE]) {
        if (f > 1 || (deg === p.angle && f === p.fraction)) continue;
        const q = at(deg, f);
        if (q.correlation > best.correlation) best = q;
      }
    }
    return best;
  });
}

/**
 * Largest |log| ratio of the two aspects a turn in the frame takes for one frame (a 96-px
 * thumbnail rounds its short side to whole pixels: 1 px in 54 is 1.9%).
 */
const SAME_FRAME_GAP = 0.03;
/** Content scales of a turn in the frame: as it is, then shrunk in half ladder steps while half the frame's area still shows it. */
export const IN_FRAME_SCALES = [1, 0.85, 0.72];

/**
 * copy px -> target px for a copy of the target's frame whose content is the target turned
 * by `deg` about the centre and scaled by `s` (the filled corners or frame around it map
 * outside the target, so the overlap check leaves them out).
 */
function inFrameMap(copy: GreyImage, target: GreyImage, deg: number, s: number): number[] {
  const [c, n] = [Math.cos((deg * Math.PI) / 180), Math.sin((deg * Math.PI) / 180)];
  const k = target.width / copy.width / s;
  const about = [1, 0, -(copy.width - 1) / 2, 0, 1, -(copy.height - 1) / 2, 0, 0, 1];
  const back = [1, 0, (target.width - 1) / 2, 0, 1, (target.height - 1) / 2, 0, 0, 1];
  return mul3(back, mul3([c * k, n * k, 0, -n * k, c * k, 0, 0, 0, 1], about));
}

/** The copy at the search's size (as the target's planes), and a plane of ones to warp for the valid mask. */
function shrunkCopy(copy: GreyImage, c: CopyPlanes): TargetPlanes & { ones: cv.Mat } {
  if (c.shrunk) return c.shrunk;
  const grey = c.oriented[0]!.resize(Math.round(copy.height / SHRINK), Math.round(copy.width / SHRINK), 0, 0, cv.INTER_AREA);
  c.shrunk = { grey, edges: gradientMagnitude(grey), ones: new cv.Mat(grey.rows, grey.cols, cv.CV_32F, 1) };
  return c.shrunk;
}

/** Correlation of two planes over the pixels where `valid` is 1 (0 when either is flat there). */
function maskedCorrelation(a: Float32Array, b: Float32Array, valid: Float32Array): number {
  let n = 0, sa = 0, sb = 0, sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < valid.length; i++) {
    if (valid[i]! < 0.999) continue;
    const x = a[i]!, y = b[i]!;
    n++; sa += x; sb += y; sab += x * y; saa += x * x; sbb += y * y;
  }
  if (n === 0) return 0;
  const va = saa - (sa * sa) / n;
  const vb = sbb - (sb * sb) / n;
  return va > 1e-6 && vb > 1e-6 ? (sab - (sa * sb) / n) / Math.sqrt(va * vb) : 0;
}

const MARGIN = 2;
const ERODE = new cv.Mat(2 * MARGIN + 1, 2 * MARGIN + 1, cv.CV_8U, 1);

/**
 * A turn in the frame: the copy keeps the target's frame and shows the picture turned by a
 * small angle inside it, with filled corners (a rotation without a crop) or shrunk inside a
 * filled frame. The fill takes a fifth of such a copy and correlates with nothing in the
 * target, so the template search above misses it; but the placement is fixed by the angle
 * and the scale. So each (ROTATION_ANGLES either way, IN_FRAME_SCALES) is scored directly:
 * the copy warped into the target's frame, the mean of the grey and gradient correlations
 * over the pixels that land inside it (the fill lands outside), at the search's half size;
 * the best ROTATION_KEEP are each tried again half an angle step and a quarter ladder step
 * either way, and returned for the caller to confirm like the rotation search's.
 */
export function inFrameTurn(copy: GreyImage, target: GreyImage): CropPlacement[] {
  if (copy.width < MIN_TEMPLATE * SHRINK || target.width < MIN_TEMPLATE * SHRINK || aspectGap(copy, target) > SAME_FRAME_GAP) return [];
  const t = targetPlanes(target);
  if (isFlat(t.grey) || isFlat(t.edges)) return [];
  const c = shrunkCopy(copy, copyPlanes(copy));
  const [tg, te] = [pixelsOf(t.grey), pixelsOf(t.edges)];
  const [W, H] = [t.grey.cols, t.grey.rows];
  const size = new cv.Size(W, H);
  // Overlap-thumbnail px <-> search px, each way (pixel centres).
  const down = (w: number, h: number, W: number, H: number) => resizeMap(w / W, h / H);
  const copyUp = down(copy.width, copy.height, c.grey.cols, c.grey.rows);
  const targetDown = invert3x3(down(target.width, target.height, t.grey.cols, t.grey.rows))!;
  const score = (deg: number, s: number) => {
    const map = inFrameMap(copy, target, deg, s);
    const m = mul3(targetDown, mul3(map, copyUp));
    const affine = new cv.Mat([m.slice(0, 3), m.slice(3, 6)], cv.CV_64F);
    const warped = (p: cv.Mat) => p.warpAffine(affine, size, cv.INTER_LINEAR, cv.BORDER_CONSTANT);
    const warp = (p: cv.Mat) => pixelsOf(warped(p));
    // Two pixels in from both frames: at the true placement the copy's fill border lands on
    // the target's frame, and the copy's gradient there is that border's, not the picture's.
    const valid = pixelsOf(warped(c.ones).erode(ERODE));
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) if (x < MARGIN || y < MARGIN || x >= W - MARGIN || y >= H - MARGIN) valid[y * W + x] = 0;
    }
    return { correlation: (maskedCorrelation(warp(c.grey), tg, valid) + maskedCorrelation(warp(c.edges), te, valid)) / 2, map, fraction: s };
  };
  return refined(ROTATION_ANGLES.flatMap((a) => [a, -a]).flatMap((angle) => IN_FRAME_SCALES.map((s) => ({ ...score(angle, s), angle }))), score);
}
