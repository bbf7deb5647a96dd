/** Messages between the main thread and the verification workers (internal, not the HTTP contract). */
import type { GreyImage } from './opencv.binding.js';
import type { Features } from './sift.extract.js';
import type { CandidateFeatures } from './sift.mirror.js';
import type { VerifyOptions } from './sift.verify.js';
import type { Quad } from './transform.geometry.js';

export interface TargetFeatures {
  features: Features;
  thumb: GreyImage;
}

export interface PreparedCandidate {
  features: CandidateFeatures;
  thumb: GreyImage;
}

export interface VerifyPolicy extends VerifyOptions {
  /** Inliers at which the SIFT score reaches the threshold (the mirrored pass is skipped beyond). */
  acceptInliers: number;
  /** Below this many keypoints on either side, a failed SIFT check runs the dense check. */
  denseMinKeypoints: number;
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

export const isShared = (v: unknown): v is Shared<unknown> =>
  typeof v === 'object' && v !== null && typeof (v as { key?: unknown }).key === 'string';

export type WorkerTask =
  | { kind: 'probe' }
  | { kind: 'extract-candidate'; image: GreyImage; maxKeypoints: number }
  | { kind: 'extract-target'; image: GreyImage; maxKeypoints: number }
  | { kind: 'verify'; candidate: Shared<PreparedCandidate>; target: Shared<TargetFeatures>; policy: VerifyPolicy };

export interface PairVerdict {
  method: 'sift' | 'dense';
  inliers: number;
  /** Dense check only: best thumbnail correlation. */
  correlation?: number;
  mirrored: boolean;
  region?: Quad;
}

export type WorkerResult =
  | { kind: 'probe'; sift: boolean }
  | { kind: 'extract-candidate'; features: CandidateFeatures }
  | { kind: 'extract-target'; features: Features }
  | { kind: 'verify'; verdict: PairVerdict };

export type WorkerReply =
  | { id: number; ok: true; result: WorkerResult }
  /** `missing`: a Shared value was referenced by key but the process does not hold it. */
  | { id: number; ok: false; message: string; missing?: boolean };
