/** Verification child process: runs the OpenCV work so the service's event loop never blocks on it. */
import { ByteLru } from './feature.cache.js';
import { cropSearch, inFrameTurn, rotationSearch } from './crop.search.js';
import { denseCheck, overlapMapOf } from './dense.check.js';
import { alignedAgreement, clears, OVERLAP_MIN_PIXELS, pinnedAgreement, placementHolds, thumbTransform } from './overlap.check.js';
import { siftAvailable } from './opencv.binding.js';
import { toneAgreement } from './tone.check.js';
import { extractAdaptive, type Features } from './sift.extract.js';
import { extractCandidateFeatures } from './sift.mirror.js';
import { verifySift, type SiftVerification } from './sift.verify.js';
import { sharedBytes, type PairVerdict, type PreparedCandidate, type Shared, type SiftPasses, type TargetFeatures, type VerifyPolicy, type WorkerReply, type WorkerResult, type WorkerTask } from './verify.protocol.js';

/** A referenced value this process does not hold (evicted, or never sent): the pool resends it. */
class MissingShared extends Error {}

// Capacity in bytes from the pool (argv, see worker.pool.ts): the pool mirrors this LRU to know what is held.
const held = new ByteLru<NonNullable<unknown>>(Number(process.argv[2] ?? 0));

/** Same operations, in the same order, as the pool's mirror: set when sent, get when referenced. */
function resolve<T>(ref: Shared<T>): T {
  if (ref.value !== undefined) {
    held.set(ref.key, ref.value as NonNullable<unknown>, sharedBytes(ref.value));
    return ref.value;
  }
  const v = held.get(ref.key);
  if (v === undefined) throw new MissingShared(`worker does not hold ${ref.key}`);
  return v as T;
}

/**
 * `passes`: the SIFT passes an earlier answer for this pair made before it asked for a
 * second description. verifySift is a pure function of the pair and the policy, and the
 * task asking again carries the same ones, so they are taken as they are instead of being
 * computed again (the verdict is the same).
 */
function verify(candidate: PreparedCandidate, target: TargetFeatures, policy: VerifyPolicy, fineTarget?: Features, resampledTarget?: Features, passes?: SiftPasses): PairVerdict {
  const first = passes?.target ?? verifySift(candidate.features, target.features, policy, policy.acceptInliers);
  let finePass: SiftVerification | undefined;
  let sift = first;
  let fine = false;
  let resampled = false;
  /** The target features the kept SIFT result (and its hypothesis) refers to. */
  let against = target.features;
  /** A second description of the target: the better result, or at least its hypothesis, is kept. */
  const tryAgainst = (features: Features, again = verifySift(candidate.features, features, policy, policy.acceptInliers)): boolean => {
    if (again.inliers > sift.inliers) {
      [sift, against] = [again, features];
      return true;
    }
    if (!sift.hypothesis && again.hypothesis) [sift, against] = [{ ...sift, hypothesis: again.hypothesis }, features];
    return false;
  };
  // Coarse-to-fine: a small overlap (corner crop, zoom) has few of the target's working-size
  // keypoints; the target's fine description has about as many there as the candidate.
  if (sift.inliers < policy.acceptInliers && policy.fineMinMatches !== undefined && target.refinable && first.matches >= policy.fineMinMatches) {
    if (!fineTarget) return { method: 'sift', inliers: sift.inliers, mirrored: sift.mirrored, needsFine: true, passes: { target: first } };
    finePass = passes?.fine ?? verifySift(candidate.features, fineTarget, policy, policy.acceptInliers);
    fine = tryAgainst(fineTarget, finePass);
  }
  // A copy smaller than the target's working size (a thumbnail) holds none of the target's
  // finer detail, and the target's strongest keypoints are mostly at scales the copy lost:
  // described at the copy's own resolution, the target keeps the keypoints the copy has.
  if (sift.inliers < policy.acceptInliers && policy.resampleMinMatches !== undefined && first.matches >= policy.resampleMinMatches
    && candidate.ownLong < Math.max(target.features.width, target.features.height)) {
    if (!resampledTarget) return { method: 'sift', inliers: sift.inliers, mirrored: sift.mirrored, needsResampled: true, passes: { target: first, ...(finePass ? { fine: finePass } : {}) } };
    if (tryAgainst(resampledTarget)) [fine, resampled] = [false, true];
  }
  const verdict: PairVerdict = { method: 'sift', inliers: sift.inliers, mirrored: sift.mirrored, region: sift.region, queryRegion: sift.queryRegion, ...(fine ? { fine } : {}), ...(resampled ? { resampled } : {}) };
  if (sift.inliers >= policy.acceptInliers) return verdict;
  const siftFailed: PairVerdict = { ...verdict, reason: sift.failure ?? 'below_threshold' };
  // A whole, upright copy with its tones remapped: whatever the keypoint counts, since a
  // posterized copy of a detailed picture loses its keypoints too. A near-flat side proves
  // nothing here either.
  const tone = policy.tone;
  if (tone && candidate.structure.edgeStd >= policy.denseMinEdgeStd && target.structure.edgeStd >= policy.denseMinEdgeStd) {
    const a = toneAgreement(candidate.colour, target.colour, tone.maxAspectGap, tone);
    if (a && clears(a, tone) && a.centre >= tone.minAgreement) return { ...verdict, method: 'dense', toneAgreement: a.agreement };
  }
  const fewest = Math.min(candidate.features.plain.count, target.features.count);
  const overlapDue = policy.overlap !== undefined && fewest < policy.overlap.belowKeypoints && sift.hypothesis !== undefined;
  if (fewest >= policy.denseMinKeypoints && !overlapDue) return siftFailed;
  // Appearance alone proves nothing between pictures without structure (flat panels,
  // smooth gradients): they all look alike. Only geometry (SIFT above) may match them.
  if (candidate.structure.edgeStd < policy.denseMinEdgeStd) return { ...siftFailed, reason: 'query_without_structure' };
  if (target.structure.edgeStd < policy.denseMinEdgeStd) return { ...siftFailed, reason: 'neighbor_without_structure' };
  const dense: PairVerdict = { ...verdict, method: 'dense' };
  if (fewest < policy.denseMinKeypoints) {
    const d = denseCheck(candidate.thumb, target.thumb);
    const confirm = policy.denseConfirm;
    // The best of thousands of placements of two pictures made of a few straight edges is a
    // coincidence of one line: it counts only where the finer overlap agrees and pins it.
    const held = confirm !== undefined && d.correlation >= confirm.minCorrelation
      && d.placements.some((m) => placementHolds(candidate.overlap, target.overlap, overlapMapOf(m, candidate.overlap, target.overlap), confirm));
    // Under the cut-off the correlation is kept as is: it scores under the threshold anyway.
    if (!confirm || d.correlation < confirm.minCorrelation || held) dense.correlation = d.correlation;
    // A strip, a corner or a zoom: the squashed, large-scale placements above cannot hold it.
    const crop = policy.denseCropSearch;
    if (confirm && crop && !held) {
      const holdsWith = (floors: { minAgreement: number; minPinning: number }) => (c: { correlation: number; map: number[] }) =>
        c.correlation >= confirm.minCorrelation && placementHolds(candidate.overlap, target.overlap, c.map, { ...confirm, ...floors });
      const c = cropSearch(candidate.overlap, target.overlap);
      // A copy turned by a small angle, cropped to fill or in its frame: the likeliest
      // neighbours only (REFINE_TOP), as it costs as much again.
      const turn = policy.denseRotationSearch;
      const turned = (holds: ReturnType<typeof holdsWith>) => rotationSearch(candidate.overlap, target.overlap).find(holds) ?? inFrameTurn(candidate.overlap, target.overlap).find(holds);
      const r = holdsWith(crop)(c) ? c : turn ? turned(holdsWith(turn)) : undefined;
      if (r) dense.correlation = Math.max(r.correlation, dense.correlation ?? 0);
    }
  }
  if (overlapDue) {
    const h = sift.hypothesis!;
    const frames = (work: { width: number; height: number }, thumb: { width: number; height: number }) => ({ work, thumb });
    const map = thumbTransform(h.matrix, h.mirrored, frames(candidate.features.plain, candidate.overlap), frames(against, target.overlap));
    const a = alignedAgreement(candidate.overlap, target.overlap, map);
    // Too little structure or too small an overlap: the agreement there proves nothing. An
    // agreement that would count must also be pinned, as the dense check's placements are: a
    // fit from 3 matches between two pictures of long straight edges (terrain tiles, a rotated
    // copy's filled corners) agrees as well slid along them. Under the cut-off it is kept as
    // is: it scores under the threshold anyway.
    const pinned = policy.overlap!.pinned;
    const holds = () => !pinned || a.agreement < pinned.minAgreement
      || pinnedAgreement(candidate.overlap, target.overlap, map, undefined, a).pinning >= pinned.minPinning;
    if (a.structure >= policy.overlap!.minStructure && a.pixels >= OVERLAP_MIN_PIXELS && holds()) dense.agreement = a.agreement;
  }
  return dense;
}

function run(task: WorkerTask): WorkerResult {
  switch (task.kind) {
    case 'probe':
      return { kind: 'probe', sift: siftAvailable() };
    case 'extract-candidate':
      return { kind: 'extract-candidate', features: extractCandidateFeatures(task.image, task.extraction) };
    case 'extract-target':
      return { kind: 'extract-target', features: extractAdaptive(task.image, task.extraction) };
    case 'verify': {
      // Resolved up front, in the task's order, like every Shared value (the pool's mirror does the same).
      const candidate = resolve(task.candidate);
      const target = resolve(task.target);
      const fine = task.fine ? resolve(task.fine) : undefined;
      const resampled = task.resampled ? resolve(task.resampled) : undefined;
      return { kind: 'verify', verdict: verify(candidate, target, task.policy, fine, resampled, task.passes) };
    }
    case 'verify-many': {
      const candidate = resolve(task.candidate);
      const targets = task.pairs.map((p) => resolve(p.target));
      // One pair's failure (a native exception) is that pair's error, as it is when each pair is its own task.
      return {
        kind: 'verify-many',
        verdicts: task.pairs.map((p, i) => {
          try {
            return verify(candidate, targets[i]!, task.policies[p.policy]!);
          } catch (e) {
            return { error: (e as Error).message };
          }
        }),
      };
    }
  }
}

function handle(msg: { id: number; task: WorkerTask }): WorkerReply {
  try {
    return { id: msg.id, ok: true, result: run(msg.task) };
  } catch (e) {
    return { id: msg.id, ok: false, message: (e as Error).message, missing: e instanceof MissingShared };
  }
}

if (!process.send) throw new Error('verify.worker must run as a forked child process');
process.on('message', (msg: { id: number; task: WorkerTask }) => process.send?.(handle(msg)));
// The parent is gone (crash or exit): nothing left to serve.
process.on('disconnect', () => process.exit(0));
