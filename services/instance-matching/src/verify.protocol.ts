/** Messages between the main thread and the verification workers (internal, not the HTTP contract). */
import type { GreyImage } from './opencv.binding.js';
import type { ExtractOptions, Features } from './sift.extract.js';
import type { CandidateFeatures } from './sift.mirror.js';
import type { SiftVerification, VerifyOptions } from './sift.verify.js';
import type { Structure } from './structure.measure.js';
import type { Quad } from './transform.geometry.js';
import type { MatchReason } from '@doppel/schemas';

export interface TargetFeatures {
  features: Features;
  thumb: GreyImage;
  /** Aspect-kept thumbnail of the overlap check (overlap.check.ts). */
  overlap: GreyImage;
  /** Its red, green and blue planes (the tone check); none when not decoded with them. */
  colour: GreyImage[];
  structure: Structure;
  /** The picture is larger than the working size, so a fine description (FINE_SIDE) adds keypoints. */
  refinable: boolean;
  /** The picture's own long side in pixels (whatever the working size). */
  ownLong: number;
}

export interface PreparedCandidate {
  features: CandidateFeatures;
  thumb: GreyImage;
  /** Aspect-kept thumbnail of the overlap check (overlap.check.ts). */
  overlap: GreyImage;
  /** Its red, green and blue planes (the tone check); none when not decoded with them. */
  colour: GreyImage[];
  structure: Structure;
  /** The picture's own long side in pixels: a copy smaller than a neighbour's working size holds none of its finer detail. */
  ownLong: number;
}

export interface VerifyPolicy extends VerifyOptions {
  /** Inliers at which the SIFT score reaches the threshold (the mirrored pass is skipped beyond). */
  acceptInliers: number;
  /** Below this many keypoints on either side, a failed SIFT check runs the dense check. */
  denseMinKeypoints: number;
  /** The dense check needs this much structure (Structure.edgeStd) on both sides. */
  denseMinEdgeStd: number;
  /**
   * A dense correlation reaching `minCorrelation` counts only when one of its placements is
   * confirmed on the overlap thumbnails: structure, size and agreement as the overlap check,
   * and pinned by at least `minPinning` (absent: the correlation alone decides).
   */
  denseConfirm?: { minCorrelation: number; minAgreement: number; minStructure: number; minPinning: number };
  /**
   * When the dense check's own placements are not confirmed: place the copy inside the
   * target with its aspect kept, at smaller sizes too (crop.search.ts), and confirm that
   * placement on the overlap thumbnails with these floors: a search over many more
   * placements gives an unrelated pair more chances, so its floors are its own (needs `denseConfirm`).
   */
  denseCropSearch?: { minAgreement: number; minPinning: number };
  /**
   * When the crop search's placement is not confirmed either: place the upright copy inside
   * the target turned by small angles, then as the target turned inside its own frame
   * (crop.search.ts rotationSearch, inFrameTurn), confirmed with these floors: their own,
   * as they try other placements than the crop search (needs `denseCropSearch`).
   */
  denseRotationSearch?: { minAgreement: number; minPinning: number };
  /**
   * The tone check (absent: never): a pair SIFT leaves undecided whose two pictures have one
   * aspect (within `maxAspectGap`, as a log ratio) is compared as a whole, upright copy on the
   * colour planes of the overlap thumbnails, and holds with these floors (overlap.check.ts).
   */
  tone?: { maxAspectGap: number; minStructure: number; minAgreement: number; minPinning: number };
  /**
   * Coarse-to-fine: an undecided pair with at least this many one-to-one matches is
   * verified again against the target's fine features (absent: never).
   */
  fineMinMatches?: number;
  /**
   * A copy smaller than the target's working size: an undecided pair with at least this
   * many one-to-one matches is verified again against the target described at the copy's
   * own resolution (absent: never).
   */
  resampleMinMatches?: number;
  /**
   * The overlap check (absent: never): a pair SIFT leaves undecided, with a side under
   * `belowKeypoints` keypoints and a plausible fit, is compared photometrically there.
   */
  overlap?: { belowKeypoints: number; minStructure: number; /** An agreement reaching this must be pinned by `minPinning` to count (absent: never asked). */ pinned?: { minAgreement: number; minPinning: number } };
}

/**
 * A value a worker process keeps once it has received it. The pool sends `value` only to
 * a process that does not hold `key` yet: features are ~45-90 KB, and sending them with
 * every pair cost about 1 ms per pair over the IPC pipe (bench/matching/components.bench.ts).
 */
export interface Shared<T> {
  key: string;
  value?: T;
}

/**
 * Bytes a worker spends on a Shared value: its typed arrays, plus the float copy of each
 * descriptor block that the worker builds for matching (4 bytes per descriptor byte) and
 * keeps with it. The pool's mirror and the worker compute it from the same value.
 */
export function sharedBytes(v: unknown, depth = 0): number {
  if (ArrayBuffer.isView(v)) return v.byteLength;
  if (typeof v !== 'object' || v === null || depth > 4) return 8;
  let n = 64;
  for (const [k, x] of Object.entries(v)) n += sharedBytes(x, depth + 1) * (k === 'descriptors' ? 5 : 1);
  return n;
}

export const isShared = (v: unknown): v is Shared<unknown> =>
  typeof v === 'object' && v !== null && typeof (v as { key?: unknown }).key === 'string';

export type WorkerTask =
  | { kind: 'probe' }
  | { kind: 'extract-candidate'; image: GreyImage; extraction: ExtractOptions }
  | { kind: 'extract-target'; image: GreyImage; extraction: ExtractOptions }
  /**
   * `fine`: the target's fine features, sent when a first answer asked for them (`needsFine`);
   * `resampled`: the target described at the candidate's resolution (`needsResampled`);
   * `passes`: that first answer's SIFT passes, sent back so they are not computed again.
   */
  | { kind: 'verify'; candidate: Shared<PreparedCandidate>; target: Shared<TargetFeatures>; policy: VerifyPolicy; fine?: Shared<Features>; resampled?: Shared<Features>; passes?: SiftPasses }
  /**
   * One candidate against several targets in one message, each under `policies[pair.policy]`:
   * between the pairs of one message there is no round trip to the main process, which cost
   * about 0.6 ms per pair (bench/matching/pair-cost.bench.ts CANDIDATES=). A pair that asks
   * for a second description (`needsFine`, `needsResampled`) is asked again alone, as `verify`.
   */
  | { kind: 'verify-many'; candidate: Shared<PreparedCandidate>; pairs: Array<{ target: Shared<TargetFeatures>; policy: number }>; policies: VerifyPolicy[] };

export interface PairVerdict {
  method: 'sift' | 'dense';
  inliers: number;
  /** Dense check only: best thumbnail correlation. */
  correlation?: number;
  /** Overlap check only: gradient agreement over the aligned overlap. */
  agreement?: number;
  /** Tone check only: colour-plane gradient agreement of the whole, upright pictures (set only when it holds). */
  toneAgreement?: number;
  mirrored: boolean;
  region?: Quad;
  queryRegion?: Quad;
  /** Why the pair did not verify (when it did not). */
  reason?: MatchReason;
  /** The first pass is undecided and passed the fine gate: ask again with the target's fine features. */
  needsFine?: boolean;
  /** Verified by the fine pass (coarse-to-fine). */
  fine?: boolean;
  /** Undecided, and the candidate is smaller than the target's working size: ask again with the target at the candidate's resolution. */
  needsResampled?: boolean;
  /** Verified against the target described at the candidate's resolution. */
  resampled?: boolean;
  /** With `needsFine` or `needsResampled`: the SIFT passes made so far, for the task that asks again. */
  passes?: SiftPasses;
}

/** The SIFT passes of a pair against its target's working-size and fine descriptions. */
export interface SiftPasses { target: SiftVerification; fine?: SiftVerification }

export type WorkerResult =
  | { kind: 'probe'; sift: boolean }
  | { kind: 'extract-candidate'; features: CandidateFeatures }
  | { kind: 'extract-target'; features: Features }
  | { kind: 'verify'; verdict: PairVerdict }
  /** In the order of the pairs; a pair whose verification threw has its message instead (the others stand). */
  | { kind: 'verify-many'; verdicts: Array<PairVerdict | { error: string }> };

export type WorkerReply =
  | { id: number; ok: true; result: WorkerResult }
  /** `missing`: a Shared value was referenced by key but the process does not hold it. */
  | { id: number; ok: false; message: string; missing?: boolean };
