/**
 * Photometric check of an aligned overlap, for low-texture pairs that SIFT cannot decide.
 *
 * A smooth wallpaper, a few soft shapes or a flat-shaded drawing keeps a handful of SIFT
 * keypoints, too few for 10 RANSAC inliers, yet a copy of it has the same edges in the same
 * places. SIFT still proposes where the candidate lies: its best plausible fit, even one
 * made of 3 consistent matches (sift.verify.ts). The candidate's small thumbnail is warped
 * there into the neighbour's, and the overlap is compared: one hypothesis, not a search, so
 * an unrelated pair gets no chance to pick its luckiest alignment.
 *
 * The field compared is the double-angle gradient (|g| cos 2t, |g| sin 2t) divided by the
 * local mean gradient magnitude. Doubling the angle makes an edge count the same whichever
 * side is brighter (a recoloured, sepia or posterized copy can swap which side of an edge
 * is lighter in grey); the local normalisation lets a faint soft shape count as much as a
 * hard one, and the constant in it keeps flat areas near zero. The correlation removes the
 * field's mean, so a flat panel or a linear gradient, whose field is zero or constant,
 * agrees with nothing. The structure each side holds in the overlap is measured too (the
 * coherent part of the field, which noise does not have): the caller requires it on both,
 * so a shared flat colour is never evidence.
 */
import { copyOut, cv, toMat, type GreyImage } from './opencv.binding.js';
import { mul3 } from './transform.geometry.js';

/** Long side of the aspect-kept thumbnail the check works on (image.decode.ts makes it). */
export const OVERLAP_SIDE = 96;
/**
 * Overlap (thumbnail pixels, inside both pictures) under which the agreement is not used:
 * a few hundred pixels of a 96-px thumbnail is a patch a few edges wide.
 */
export const OVERLAP_MIN_PIXELS = 400;
/**
 * Added to the local mean gradient magnitude before dividing (grey levels per pixel of the
 * thumbnail): a region whose gradients stay well under it is treated as flat.
 */
const CONTRAST_FLOOR = 2;

interface Field {
  /** Contrast-normalised double-angle field: the cos and sin planes. */
  nc: Float32Array;
  ns: Float32Array;
  /**
   * The raw double-angle field averaged over 5x5 pixels (cos and sin planes): the coherent
   * part of the orientations, where edges and shapes add up and noise cancels out.
   */
  cc: Float32Array;
  cs: Float32Array;
  /** The raw double-angle field (cos and sin planes). */
  rc: Float32Array;
  rs: Float32Array;
  width: number;
  height: number;
}

/**
 * Double-angle gradient fields of float Mats of one picture: a grey Mat, or its colour
 * planes. With planes, each plane's field is taken apart and the fields are averaged (the
 * colour structure tensor): any tone curve applied to a plane, even one that is not
 * monotone (a wrapped or posterized channel), keeps that plane's level lines and so the
 * orientation of its gradients, which a grey mix of remapped planes does not.
 */
function fieldOf(planes: readonly cv.Mat[]): Field {
  const w = planes[0]!.cols;
  const h = planes[0]!.rows;
  const n = w * h;
  const mag = new Float32Array(n);
  const rc = new Float32Array(n);
  const rs = new Float32Array(n);
  const gx = new Float32Array(n);
  const gy = new Float32Array(n);
  for (const plane of planes) {
    const smooth = plane.gaussianBlur(new cv.Size(3, 3), 0.8);
    copyOut(smooth.sobel(cv.CV_32F, 1, 0, 3).getData(), gx);
    copyOut(smooth.sobel(cv.CV_32F, 0, 1, 3).getData(), gy);
    for (let i = 0; i < n; i++) {
      // Sobel 3x3 sums 8 weighted differences: /8 gives grey levels per pixel.
      const x = gx[i]! / 8;
      const y = gy[i]! / 8;
      // Not Math.hypot: several times slower in V8, and nothing here can overflow.
      const m = Math.sqrt(x * x + y * y);
      if (m === 0) continue;
      mag[i]! += m / planes.length;
      // |g| (cos 2t, sin 2t) = ((x^2 - y^2) / |g|, 2xy / |g|).
      rc[i]! += (x * x - y * y) / m / planes.length;
      rs[i]! += (2 * x * y) / m / planes.length;
    }
  }
  const local = boxMean(mag, w, h, 3);
  const nc = new Float32Array(n);
  const ns = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (mag[i] === 0) continue;
    const k = 1 / (local[i]! + CONTRAST_FLOOR);
    nc[i] = rc[i]! * k;
    ns[i] = rs[i]! * k;
  }
  return { nc, ns, cc: boxMean(rc, w, h, 2), cs: boxMean(rs, w, h, 2), rc, rs, width: w, height: h };
}

/** A picture for the check: its grey thumbnail, or its colour planes (all of one size). */
export type Planes = GreyImage | readonly GreyImage[];
const planesOf = (img: Planes): readonly GreyImage[] => (Array.isArray(img) ? img : [img as GreyImage]);

/** The target's field, computed once per thumbnail (a worker keeps its targets, and so their fields). */
const targetFields = new WeakMap<object, Field>();
function targetField(img: Planes): Field {
  let f = targetFields.get(img);
  if (!f) {
    f = fieldOf(planesOf(img).map((p) => toMat(p).convertTo(cv.CV_32F)));
    targetFields.set(img, f);
  }
  return f;
}

/** Mean over a (2r+1)^2 window, clamped at the borders (summed-area table). */
function boxMean(v: Float32Array, w: number, h: number, r: number): Float32Array {
  const sat = new Float64Array((w + 1) * (h + 1));
  for (let y = 0; y < h; y++) {
    let row = 0;
    for (let x = 0; x < w; x++) {
      row += v[y * w + x]!;
      sat[(y + 1) * (w + 1) + x + 1] = sat[y * (w + 1) + x + 1]! + row;
    }
  }
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    const y0 = Math.max(0, y - r);
    const y1 = Math.min(h, y + r + 1);
    for (let x = 0; x < w; x++) {
      const x0 = Math.max(0, x - r);
      const x1 = Math.min(w, x + r + 1);
      const s = sat[y1 * (w + 1) + x1]! - sat[y0 * (w + 1) + x1]! - sat[y1 * (w + 1) + x0]! + sat[y0 * (w + 1) + x0]!;
      out[y * w + x] = s / ((y1 - y0) * (x1 - x0));
    }
  }
  return out;
}

/** Sizes of the working-size features and the overlap thumbnail of one image. */
export interface Frames { work: { width: number; height: number }; thumb: { width: number; height: number } }

/**
 * A hypothesis (candidate -> target in working-size pixels; with `mirrored`, from the
 * left-right flipped candidate, as the mirrored SIFT pass fits it) expressed between the
 * two overlap thumbnails.
 */
export function thumbTransform(matrix: readonly number[], mirrored: boolean, cand: Frames, target: Frames): number[] {
  const sc = cand.thumb.width / cand.work.width;
  const st = target.thumb.width / target.work.width;
  // thumb -> work of the candidate, then the flip the mirrored pass applied (x -> w - 1 - x).
  const fromThumb = [1 / sc, 0, 0, 0, cand.work.height / cand.thumb.height, 0, 0, 0, 1];
  const flip = mirrored ? [-1, 0, cand.work.width - 1, 0, 1, 0, 0, 0, 1] : [1, 0, 0, 0, 1, 0, 0, 0, 1];
  const toThumb = [st, 0, 0, 0, target.thumb.height / target.work.height, 0, 0, 0, 1];
  return mul3(toThumb, mul3(matrix, mul3(flip, fromThumb)));
}

export interface AlignedAgreement {
  /** Correlation of the contrast-normalised double-angle gradient fields over the overlap (-1..1). */
  agreement: number;
  /** Correlation of the grey levels over the overlap (-1..1), for the benchmark. */
  grey: number;
  /**
   * Structure in the overlap: the smaller, over the two sides, of the coherent field's RMS
   * around its mean there (grey levels/px). Zero for a flat panel or a linear gradient, and
   * near zero for noise, whose orientations cancel out over a few pixels.
   */
  structure: number;
  /** Thumbnail pixels in the overlap (inside both pictures, away from the warped border). */
  pixels: number;
  /** The direction the target's edges in the overlap mostly run along (radians, thumbnail frame). */
  edgeAngle: number;
}

const NONE: AlignedAgreement = { agreement: 0, grey: 0, structure: 0, pixels: 0, edgeAngle: 0 };

interface Warped { field: Field; valid: Uint8Array; grey: Float32Array }

/**
 * The last candidate's last few warps: one placement and target size give one warp, and the
 * tone check lays a copy on every neighbour of one size with the same scaling (a worker
 * verifies one query's neighbours one after another). One candidate only, so the memory
 * stays a few fields whatever the worker holds.
 */
let warps: { of: object; kept: Map<string, Warped> } | undefined;
const WARPS_KEPT = 8;

/** The candidate warped into a target of this size: its field, the valid mask, the first plane. */
function warpedCandidate(candImage: Planes, toTarget: readonly number[], width: number, height: number): Warped {
  const key = `${width}x${height}:${toTarget.join(',')}`;
  if (warps?.of !== candImage) warps = { of: candImage, kept: new Map() };
  const { kept } = warps;
  const hit = kept.get(key);
  if (hit) return hit;
  const cand = planesOf(candImage)[0]!;
  const size = new cv.Size(width, height);
  const m = new cv.Mat([toTarget.slice(0, 3), toTarget.slice(3, 6), toTarget.slice(6, 9)], cv.CV_64F);
  const warp = (p: GreyImage) => toMat(p).convertTo(cv.CV_32F).warpPerspective(m, size, cv.INTER_LINEAR, cv.BORDER_REPLICATE);
  const planes = planesOf(candImage).map(warp);
  const ones = new cv.Mat(cand.height, cand.width, cv.CV_8U, 255);
  // Pixels near the warped border mix picture and outside: shrink the mask past the Sobel and blur support.
  const valid = ones.warpPerspective(m, size, cv.INTER_NEAREST, cv.BORDER_CONSTANT).erode(new cv.Mat(5, 5, cv.CV_8U, 1));
  const n = width * height;
  const w = { field: fieldOf(planes), valid: copyOut(valid.getData(), new Uint8Array(n)), grey: copyOut(planes[0]!.getData(), new Float32Array(n)) };
  if (kept.size >= WARPS_KEPT) kept.delete(kept.keys().next().value!);
  kept.set(key, w);
  return w;
}

/**
 * Warps the candidate's thumbnail into the target's with `toTarget` (3x3, thumbnail
 * pixels) and compares the overlap: the correlation of the two gradient fields there, the
 * structure each side holds there, and its size.
 */
export function alignedAgreement(candImage: Planes, targetImage: Planes, toTarget: readonly number[], keep?: Uint8Array): AlignedAgreement {
  const [cand, target] = [planesOf(candImage)[0]!, planesOf(targetImage)[0]!];
  if (cand.width < 4 || target.width < 4) return NONE;
  const n = target.width * target.height;
  const w = warpedCandidate(candImage, toTarget, target.width, target.height);
  const mask = w.valid.slice();
  if (keep) for (let i = 0; i < n; i++) if (keep[i] === 0) mask[i] = 0;
  const a = w.field;
  const b = targetField(targetImage);
  const wg = w.grey;
  let count = 0;
  const sums = new Float64Array(14);
  for (let i = 0; i < n; i++) {
    if (mask[i] === 0) continue;
    count++;
    const ac = a.nc[i]!, as = a.ns[i]!, bc = b.nc[i]!, bs = b.ns[i]!;
    sums[0]! += ac; sums[1]! += as; sums[2]! += bc; sums[3]! += bs;
    sums[4]! += ac * bc + as * bs; sums[5]! += ac * ac + as * as; sums[6]! += bc * bc + bs * bs;
    const ga = wg[i]!, gb = target.data[i]!;
    sums[7]! += ga; sums[8]! += gb; sums[9]! += ga * gb; sums[10]! += ga * ga; sums[11]! += gb * gb;
  }
  if (count < 16) return NONE;
  const cov = sums[4]! - (sums[0]! * sums[2]! + sums[1]! * sums[3]!) / count;
  const va = sums[5]! - (sums[0]! ** 2 + sums[1]! ** 2) / count;
  const vb = sums[6]! - (sums[2]! ** 2 + sums[3]! ** 2) / count;
  const gcov = sums[9]! - (sums[7]! * sums[8]!) / count;
  const gva = sums[10]! - sums[7]! ** 2 / count;
  const gvb = sums[11]! - sums[8]! ** 2 / count;
  return {
    agreement: va > 0 && vb > 0 ? cov / Math.sqrt(va * vb) : 0,
    grey: gva > 0 && gvb > 0 ? gcov / Math.sqrt(gva * gvb) : 0,
    structure: Math.min(spreadIn(a, mask), spreadIn(b, mask)),
    pixels: count,
    edgeAngle: edgeAngleIn(b, mask),
  };
}

/** RMS around its mean of the coherent field over the masked pixels. */
function spreadIn(f: Field, mask: Uint8Array): number {
  let n = 0, sc = 0, ss = 0, q = 0;
  for (let i = 0; i < mask.length; i++) {
    if (mask[i] === 0) continue;
    const c = f.cc[i]!, s = f.cs[i]!;
    n++; sc += c; ss += s; q += c * c + s * s;
  }
  return n > 0 ? Math.sqrt(Math.max(0, (q - (sc * sc + ss * ss) / n) / n)) : 0;
}

/**
 * The direction edges mostly run along over the masked pixels: the mean of the raw
 * double-angle field (magnitude-weighted), halved, is the dominant gradient direction, and
 * edges run across it.
 */
function edgeAngleIn(f: Field, mask: Uint8Array): number {
  let c = 0, s = 0;
  for (let i = 0; i < mask.length; i++) {
    if (mask[i] === 0) continue;
    c += f.rc[i]!; s += f.rs[i]!;
  }
  return Math.atan2(s, c) / 2 + Math.PI / 2;
}

/**
 * Slides (thumbnail pixels) of the pinning test: past the uncertainty of a placement found on
 * 32x32 thumbnails (one cell there is 3 px here), up to a tenth of the thumbnail.
 */
export const PIN_SLIDES = [6, 10];

export interface PinnedAgreement extends AlignedAgreement {
  /**
   * The agreement minus the best agreement of the same placement slid by PIN_SLIDES pixels
   * either way along the edges: how much the placement is pinned in the direction its
   * edges leave free.
   */
  pinning: number;
}

const shifted = (dx: number, dy: number, m: readonly number[]) => mul3([1, 0, dx, 0, 1, dy, 0, 0, 1], m);

/**
 * The agreement at a placement, and whether the placement is pinned there: the same
 * placement slid by PIN_SLIDES pixels either way along the edges. Parallel straight edges
 * (flag bands, a single border) agree as well slid along themselves as in place (the
 * aperture problem), so the best of many placements of such a picture is a coincidence of
 * one line; curved edges, edges in two directions or edges ending inside the overlap agree
 * only in place. (Refining the placement first, by the best of a 3x3 grid of 3-px and 1.5-px
 * shifts, was tried: it let a flag with a T-junction reach 0.087 against a facade, and the
 * floor the curve then picks loses ten true pairs; bench/matching/dense-confirm.bench.ts.)
 */
export function pinnedAgreement(cand: Planes, target: Planes, toTarget: readonly number[], keep?: Uint8Array, inPlace?: AlignedAgreement): PinnedAgreement {
  // `inPlace`: the agreement at this placement, when the caller has it already.
  const a = inPlace ?? alignedAgreement(cand, target, toTarget, keep);
  if (a.pixels === 0) return { ...a, pinning: 0 };
  const [dx, dy] = [Math.cos(a.edgeAngle), Math.sin(a.edgeAngle)];
  let slid = Number.NEGATIVE_INFINITY;
  for (const px of PIN_SLIDES) {
    for (const d of [px, -px]) slid = Math.max(slid, alignedAgreement(cand, target, shifted(d * dx, d * dy, toTarget), keep).agreement);
  }
  return { ...a, pinning: a.agreement - slid };
}

/** Floors a placement must clear on the overlap thumbnails to be confirmed. */
export interface PlacementFloors { minStructure: number; minAgreement: number; minPinning: number }

/** Whether an agreement clears the floors: enough overlap, structure on both sides, agreement, and pinned. */
export const clears = (a: PinnedAgreement, floors: PlacementFloors): boolean =>
  a.pixels >= OVERLAP_MIN_PIXELS && a.structure >= floors.minStructure && a.agreement >= floors.minAgreement && a.pinning >= floors.minPinning;

/**
 * Whether a placement is confirmed (`clears` at that placement). The slides are only
 * measured for a placement that clears the other floors in place: the answer is the same.
 */
export function placementHolds(cand: Planes, target: Planes, toTarget: readonly number[], floors: PlacementFloors): boolean {
  const a = alignedAgreement(cand, target, toTarget);
  if (!clears({ ...a, pinning: Number.POSITIVE_INFINITY }, floors)) return false;
  return clears(pinnedAgreement(cand, target, toTarget, undefined, a), floors);
}
