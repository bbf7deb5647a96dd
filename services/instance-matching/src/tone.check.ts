/**
 * The tone check: a copy that is the whole picture, upright, with its tones remapped
 * (greyscale, sepia, a colour boost that wraps or posterizes channels) against a neighbour
 * of the same aspect, for pairs SIFT leaves undecided.
 *
 * A posterized or wrapped channel keeps few of the picture's SIFT keypoints, and its grey
 * mix is a new picture (new edges where a channel wrapped, edge contrasts turned around),
 * so neither SIFT nor the grey dense check sees the copy. But a tone curve applied to one
 * colour plane, monotone or not, keeps that plane's level lines: wherever the plane changes
 * at all, its gradient keeps its orientation. So the double-angle gradient fields of the
 * three planes, averaged (overlap.check.ts), agree between the copy and its original where
 * the grey fields do not.
 *
 * Two different pictures under one overlay (a white frame, a caption bar, a template's
 * text) agree along the overlay's edges, and its text pins them. Two rules take that away:
 * - a frame's pixels are the same in both, and a remapped copy differs from its original
 *   almost everywhere: when the pictures differ over at least a quarter of the picture,
 *   the agreement is taken over the pixels where they differ, 3 px away from any they share
 *   (the gradients beside an overlay's edge see it);
 * - a semi-transparent bar is not the same pixels, but it lies along an edge of the
 *   picture, like frames and app chrome: the agreement floor must hold over the middle 60%
 *   of the picture too, where a copy agrees and two pictures under one overlay do not.
 *
 * There is one placement, the whole picture on the whole picture (their aspects agree to
 * the thumbnails' pixel rounding), so an unrelated pair gets one chance, not a search; the
 * agreement must be pinned there like the dense check's placements (slid along its edges it
 * drops), and both sides need structure. The floors come from
 * bench/matching/tone-check.bench.ts (calibration half against every other original and
 * sampled distractors of the same aspect).
 */
import { copyOut, cv, type GreyImage } from './opencv.binding.js';
import { alignedAgreement, clears, pinnedAgreement, type PinnedAgreement, type PlacementFloors } from './overlap.check.js';

/** |log| of the ratio of two aspects (width / height). */
export const aspectGap = (a: GreyImage, b: GreyImage): number => Math.abs(Math.log((a.width / a.height) / (b.width / b.height)));

/**
 * The agreement of the whole copy laid on the whole neighbour (colour planes of the overlap
 * thumbnails; pinned, and over the middle), or undefined when their aspects differ by more than `maxAspectGap` (then the
 * copy is not the whole picture, upright).
 */
export function toneAgreement(cand: readonly GreyImage[], target: readonly GreyImage[], maxAspectGap: number, floors?: PlacementFloors): ToneAgreement | undefined {
  const [c, t] = [cand[0], target[0]];
  if (!c || !t || c.width === 0 || t.width === 0 || aspectGap(c, t) > maxAspectGap) return undefined;
  const differ = awayFromShared(differingPixels(cand, target), t.width, t.height);
  const share = differ.reduce((n, v) => n + v, 0) / differ.length;
  const keep = share >= 1 - SHARED_AT_MOST ? differ : new Uint8Array(differ.length).fill(1);
  const whole = [t.width / c.width, 0, 0, 0, t.height / c.height, 0, 0, 0, 1];
  const centre = new Uint8Array(keep.length);
  for (let row = 0; row < t.height; row++) {
    const y = row / t.height;
    if (y < CENTRE_FROM || y >= 1 - CENTRE_FROM) continue;
    for (let col = 0; col < t.width; col++) {
      const x = col / t.width;
      const i = row * t.width + col;
      if (keep[i] && x >= CENTRE_FROM && x < 1 - CENTRE_FROM) centre[i] = 1;
    }
  }
  // With `floors` (the service), the work stops at the first floor missed; without (the
  // bench), every figure is measured.
  const a = alignedAgreement(cand, target, whole, keep);
  const missed = (x: Partial<PinnedAgreement>) => floors !== undefined && !clears({ ...a, pinning: Number.POSITIVE_INFINITY, ...x }, floors);
  if (missed({})) return { ...a, pinning: 0, centre: 0 };
  const inMiddle = alignedAgreement(cand, target, whole, centre).agreement;
  if (missed({ agreement: Math.min(a.agreement, inMiddle) })) return { ...a, pinning: 0, centre: inMiddle };
  return { ...pinnedAgreement(cand, target, whole, keep, a), centre: inMiddle };
}

export interface ToneAgreement extends PinnedAgreement {
  /**
   * The agreement over the middle of the picture alone: frames, caption bars and app chrome
   * sit at its edges, so two pictures under one overlay agree along the edges but not in
   * the middle, and a copy agrees in both.
   */
  centre: number;
}

/** The middle of the picture starts this far in (a share of each side): its middle 60%. */
const CENTRE_FROM = 0.2;

/**
 * Levels by which a channel may differ and still count as the same pixel: JPEG at quality
 * 40-90 and the resampling to 96 px move a flat area's pixels by a few levels, an edge's by
 * about ten.
 */
const SAME_LEVELS = 24;
/** Share of the picture an overlay can cover: past it, the pictures are taken as one with the same tones. */
const SHARED_AT_MOST = 0.75;

/**
 * The differing pixels at least 3 px from a shared one: an overlay's edge is seen by the
 * gradients of the pixels beside it (the field's smoothing and Sobel reach 2 px), and those
 * pixels differ between two pictures under one overlay.
 */
function awayFromShared(differ: Uint8Array, width: number, height: number): Uint8Array {
  const m = new cv.Mat(Buffer.from(differ.buffer, differ.byteOffset, differ.byteLength), height, width, cv.CV_8U);
  return copyOut(m.erode(new cv.Mat(7, 7, cv.CV_8U, 1)).getData(), new Uint8Array(differ.length));
}

/** 1 where the copy (nearest pixel of the whole picture) differs from the target in some channel by more than SAME_LEVELS. */
function differingPixels(cand: readonly GreyImage[], target: readonly GreyImage[]): Uint8Array {
  const [c, t] = [cand[0]!, target[0]!];
  const out = new Uint8Array(t.width * t.height);
  for (let y = 0; y < t.height; y++) {
    const cy = Math.min(c.height - 1, Math.floor(((y + 0.5) * c.height) / t.height));
    for (let x = 0; x < t.width; x++) {
      const ci = cy * c.width + Math.min(c.width - 1, Math.floor(((x + 0.5) * c.width) / t.width));
      const ti = y * t.width + x;
      for (let k = 0; k < Math.min(cand.length, target.length); k++) {
        if (Math.abs(cand[k]!.data[ci]! - target[k]!.data[ti]!) > SAME_LEVELS) {
          out[ti] = 1;
          break;
        }
      }
    }
  }
  return out;
}

