/** The matching logic: candidate preparation, cached target features, pair verification. */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { LRUCache } from 'lru-cache';
import { AppError, toItemError, type Logger } from '@doppel/service-kit';
import type { CompareRequest, MatchedItem, MatchingConfig, MatchRequest, MatchResponse, CompareResponse, PrepareRequest, PrepareResponse } from '@doppel/schemas';
import { decodeImage, type DecodedImage, type DecodeLimits } from './image.decode.js';
import { mirrorFeatures } from './sift.mirror.js';
import { ByteLru, fileKey } from './feature.cache.js';
import { decodeBase64, resolveImagePath as resolveUnder, type ResolvedImage } from '@doppel/image-source';
import { sharedBytes, type PairVerdict, type PreparedCandidate, type Shared, type TargetFeatures, type VerifyPolicy, type WorkerTask } from './verify.protocol.js';
import type { WorkerPool } from './worker.pool.js';
import { structureOf } from './structure.measure.js';
import type { ExtractOptions, Features } from './sift.extract.js';
import type { VerifyOptions } from './sift.verify.js';
import { clampedArea } from './transform.geometry.js';
import { OVERLAP_SIDE } from './overlap.check.js';
import { DENSE_THUMB } from './dense.check.js';
import pLimit from 'p-limit';

/** Inliers at which the SIFT score is 0.5; see the README for the formula. */
export const SCORE_HALF_INLIERS = 10;
/** Share of the query's area under which a verified neighbour is reported as `partial`. */
export const PARTIAL_AREA = 0.5;

/** score = n / (n + K): 0 without inliers, 0.5 at K, approaching 1; monotonic in n. */
export const siftScore = (inliers: number): number => inliers / (inliers + SCORE_HALF_INLIERS);

/** Smallest inlier count whose score reaches the threshold. */
export function inliersFor(threshold: number): number {
  if (threshold >= 1) return Number.POSITIVE_INFINITY;
  let n = Math.max(0, Math.floor((SCORE_HALF_INLIERS * threshold) / (1 - threshold)) - 1);
  while (siftScore(n) < threshold) n++;
  return n;
}

/**
 * Maps a thumbnail correlation onto the score scale: piecewise linear through
 * (0, 0), (cutoff, THRESHOLD) and (1, 1), so the calibrated dense cutoff lands on the
 * calibrated threshold and both paths share one decision rule.
 */
export function denseScore(correlation: number, cutoff: number, threshold: number): number {
  const c = Math.min(1, Math.max(0, correlation));
  if (c <= cutoff) return cutoff > 0 ? (threshold * c) / cutoff : threshold;
  return cutoff >= 1 ? 1 : threshold + ((1 - threshold) * (c - cutoff)) / (1 - cutoff);
}

/** How SIFT describes an image under this config. */
export const extractionOf = (config: MatchingConfig): ExtractOptions => ({
  maxKeypoints: config.MAX_KEYPOINTS,
  adaptBelow: config.SIFT_ADAPT_BELOW,
  lowContrast: config.SIFT_LOW_CONTRAST,
});

/** How SIFT describes a target's fine features (coarse-to-fine), or undefined when off. */
export const fineExtractionOf = (config: MatchingConfig): ExtractOptions | undefined =>
  config.FINE_SIDE > 0 ? { ...extractionOf(config), maxKeypoints: config.FINE_KEYPOINTS } : undefined;

/** How a pair's SIFT matches are found and fitted under this config (the service's policy starts from it; the benches use it as it is). */
export const verifyOptionsOf = (config: MatchingConfig): VerifyOptions => ({
  ratio: config.RATIO_TEST,
  kernel: config.DESCRIPTOR_KERNEL,
  model: config.RANSAC_MODEL,
  reprojPx: config.RANSAC_REPROJ_PX,
});

/** A target's features, and on demand its fine features and its features at a copy's resolution (extracted once, then cached). */
interface TargetSource {
  target: Shared<TargetFeatures>;
  fine: () => Promise<Shared<Features>>;
  /** The target described as if its long side were `long` pixels (a small copy's own size). */
  resampled: (long: number) => Promise<Shared<Features>>;
}

export type MatchResult = MatchResponse['response'];
export type CompareResult = CompareResponse['response'];
export type PrepareResult = PrepareResponse['response'];

export interface MatcherDeps {
  config: MatchingConfig;
  pool: WorkerPool;
  /** Time source of the prepared-candidate TTL (tests move it instead of sleeping). */
  clock?: { now(): number };
}

const round4 = (v: number) => Math.round(v * 1e4) / 1e4;
const ownLongOf = (img: DecodedImage) => Math.max(img.width, img.height);


/**
 * Indices 0..n-1 in `k` runs of consecutive ones, as even as can be (the likeliest
 * neighbours, first in the caller's order, in the first run).
 */
export function runsOf(n: number, k: number): number[][] {
  const runs = Math.min(n, Math.max(1, k));
  return Array.from({ length: runs }, (_, r) => {
    const [from, to] = [Math.floor((r * n) / runs), Math.floor(((r + 1) * n) / runs)];
    return Array.from({ length: to - from }, (_, j) => from + j);
  });
}

/** Overload and shutdown concern the whole request, never a single neighbour. */
const isRequestLevel = (e: unknown) =>
  (e instanceof AppError && (e.code === 'OVERLOADED' || e.code === 'UNAVAILABLE')) || (e instanceof Error && e.name === 'AbortError');

export function createMatcher(deps: MatcherDeps) {
  const { config, pool } = deps;
  // Keyed for the worker processes' own caches (see Shared): path, size and mtime for files,
  // a fresh key for anything that arrives in a request body.
  const cache = new ByteLru<Shared<TargetFeatures | Features>>(config.CACHE_MAX_MB * 2 ** 20);
  let seq = 0;
  const freshKey = (kind: string) => `${kind}\u0000${++seq}`;
  const limits: DecodeLimits = {
    maxPixels: config.MAX_PIXELS,
    maxBytes: config.MAX_IMAGE_BYTES,
    width: config.WIDTH,
    height: config.HEIGHT,
    thumbSize: DENSE_THUMB,
    enlargeBelow: config.ENLARGE_BELOW,
    // The overlap thumbnail serves the overlap check, the confirmation of the dense check and the tone check.
    overlapSide: config.OVERLAP_BELOW_KEYPOINTS > 0 || config.DENSE_MIN_PINNING > 0 || config.TONE_CHECK ? OVERLAP_SIDE : 0,
  };
  const fineLimits: DecodeLimits = { ...limits, width: config.FINE_SIDE, height: config.FINE_SIDE, overlapSide: 0 };
  const extraction = extractionOf(config);
  const fineExtraction = fineExtractionOf(config);
  // Worth a fine description only if the picture has more pixels than the working size kept.
  const refinableAt = (img: DecodedImage) => fineExtraction !== undefined && Math.max(img.width, img.height) > Math.max(img.grey.width, img.grey.height);
  async function readLimited(file: string, size: number): Promise<Buffer> {
    if (size > config.MAX_IMAGE_BYTES) throw new AppError('PAYLOAD_TOO_LARGE', `image is larger than ${config.MAX_IMAGE_BYTES} bytes`);
    return readFile(file);
  }

  interface Extracted { cand: Shared<PreparedCandidate>; refinable: boolean; decodeMs: number; extractMs: number }
  async function extractCandidate(bytes: Buffer, signal?: AbortSignal): Promise<Extracted> {
    const t0 = performance.now();
    const img = await decodeImage(bytes, limits);
    const t1 = performance.now();
    const r = await pool.run({ kind: 'extract-candidate', image: img.grey, extraction }, { signal });
    if (r.kind !== 'extract-candidate') throw new Error('unexpected worker result');
    const cand = { key: freshKey('candidate'), value: { features: r.features, thumb: img.thumb, overlap: img.overlap, colour: img.colour, structure: structureOf(img.thumb), ownLong: ownLongOf(img) } };
    return { cand, refinable: refinableAt(img), decodeMs: t1 - t0, extractMs: performance.now() - t1 };
  }

  /**
   * A file is described the same way as a candidate and as a target (the same decode, the
   * same SIFT; a candidate adds the mirrored permutation), so a file that is both, as every
   * file of a folder scan is, is decoded and described once: a candidate by path is taken
   * from the target cache, and a candidate read from a file is cached as that file's target.
   */
  async function candidateOf(body: { candidate?: string; candidate_base64?: string }, signal?: AbortSignal): Promise<Extracted> {
    if (body.candidate_base64 !== undefined || body.candidate === undefined) return extractCandidate(await candidateBytes(body), signal);
    const f = await resolveUnder(config.SOURCE_DIR, body.candidate);
    const key = fileKey(f.file, f.size, f.mtimeMs);
    const held = cache.get(key) as Shared<TargetFeatures> | undefined;
    if (held?.value && 'refinable' in held.value) {
      const t = held.value;
      const value: PreparedCandidate = { features: { plain: t.features, mirrored: mirrorFeatures(t.features) }, thumb: t.thumb, overlap: t.overlap, colour: t.colour, structure: t.structure, ownLong: t.ownLong };
      return { cand: { key: freshKey('candidate'), value }, refinable: t.refinable, decodeMs: 0, extractMs: 0 };
    }
    const x = await extractCandidate(await readLimited(f.file, f.size), signal);
    const c = x.cand.value!;
    const target: Shared<TargetFeatures> = { key, value: { features: c.features.plain, thumb: c.thumb, overlap: c.overlap, colour: c.colour, structure: c.structure, refinable: x.refinable, ownLong: c.ownLong } };
    cache.set(key, target, sharedBytes(target.value));
    return x;
  }

  /**
   * Candidates prepared ahead of /match (the pipeline starts this when a query arrives, so
   * the extraction runs while the query is encoded and searched). Short-lived: a handle
   * unused for PREPARED_TTL_MS is gone, and /match then answers 410.
   */
  const prepared = new LRUCache<string, Shared<PreparedCandidate>>({
    max: config.PREPARED_MAX, ttl: config.PREPARED_TTL_MS, updateAgeOnGet: true,
    ...(deps.clock ? { perf: deps.clock, ttlResolution: 0 } : {}),
  });

  async function prepare(body: PrepareRequest): Promise<PrepareResult> {
    const { cand, decodeMs, extractMs } = await candidateOf(body);
    const handle = randomUUID();
    prepared.set(handle, cand);
    return {
      candidate_handle: handle,
      expires_in_ms: config.PREPARED_TTL_MS,
      keypoints: cand.value?.features.plain.count ?? 0,
      timings_ms: { decode: round4(decodeMs), extract: round4(extractMs) },
    };
  }

  function preparedCandidate(handle: string): Shared<PreparedCandidate> {
    const cand = prepared.get(handle);
    if (!cand) throw new AppError('HANDLE_EXPIRED', `candidate_handle ${handle} is unknown or expired (prepared candidates live ${config.PREPARED_TTL_MS} ms): prepare it again or send the candidate`);
    return cand;
  }

  async function targetFromBytes(bytes: Buffer, key: string): Promise<Shared<TargetFeatures>> {
    const img = await decodeImage(bytes, limits);
    const r = await pool.run({ kind: 'extract-target', image: img.grey, extraction });
    if (r.kind !== 'extract-target') throw new Error('unexpected worker result');
    return { key, value: { features: r.features, thumb: img.thumb, overlap: img.overlap, colour: img.colour, structure: structureOf(img.thumb), refinable: refinableAt(img), ownLong: ownLongOf(img) } };
  }

  /** The target's SIFT features only, decoded under other limits (its fine or its resampled description). */
  async function describedFromBytes(bytes: Buffer, key: string, decodeLimits: DecodeLimits, how: ExtractOptions): Promise<Shared<Features>> {
    const img = await decodeImage(bytes, decodeLimits);
    const r = await pool.run({ kind: 'extract-target', image: img.grey, extraction: how });
    if (r.kind !== 'extract-target') throw new Error('unexpected worker result');
    return { key, value: r.features };
  }
  const fineFromBytes = (bytes: Buffer, key: string) => describedFromBytes(bytes, key, fineLimits, fineExtraction ?? extraction);
  // Shrunk to the copy's long side, then the copy's own working-size and enlargement rules.
  const resampledFromBytes = (bytes: Buffer, key: string, long: number) => describedFromBytes(bytes, key, { ...limits, overlapSide: 0, resampleTo: long }, extraction);

  /** Cached under `key`, else built from the file's bytes (and cached). */
  async function cachedOr<T extends TargetFeatures | Features>(key: string, build: () => Promise<Shared<T>>): Promise<Shared<T>> {
    const hit = cache.get(key) as Shared<T> | undefined;
    if (hit) return hit;
    const t = await build();
    cache.set(key, t, sharedBytes(t.value));
    return t;
  }

  async function targetFromPath(relative: string, resolved?: Promise<ResolvedImage>): Promise<TargetSource> {
    const f = await (resolved ?? resolveUnder(config.TARGET_DIR, relative));
    const key = fileKey(f.file, f.size, f.mtimeMs);
    const target = await cachedOr(key, async () => targetFromBytes(await readLimited(f.file, f.size), key));
    const fineKey = `${key}\u0000fine`;
    const atKey = (long: number) => `${key}\u0000at${long}`;
    return {
      target,
      fine: () => cachedOr(fineKey, async () => fineFromBytes(await readLimited(f.file, f.size), fineKey)),
      resampled: (long) => cachedOr(atKey(long), async () => resampledFromBytes(await readLimited(f.file, f.size), atKey(long), long)),
    };
  }

  async function candidateBytes(body: { candidate?: string; candidate_base64?: string }): Promise<Buffer> {
    if (body.candidate_base64 !== undefined) return decodeBase64(body.candidate_base64, config.MAX_IMAGE_BYTES, 'candidate_base64');
    const f = await resolveUnder(config.SOURCE_DIR, body.candidate ?? '');
    return readLimited(f.file, f.size);
  }

  const policyFor = (threshold: number): VerifyPolicy => ({
    ...verifyOptionsOf(config),
    acceptInliers: inliersFor(threshold),
    denseMinKeypoints: config.DENSE_MIN_KEYPOINTS,
    denseMinEdgeStd: config.DENSE_MIN_EDGE_STD,
    ...(config.DENSE_MIN_PINNING > 0
      ? { denseConfirm: { minCorrelation: config.DENSE_MIN_CORRELATION, minAgreement: config.OVERLAP_MIN_AGREEMENT, minStructure: config.OVERLAP_MIN_STRUCTURE, minPinning: config.DENSE_MIN_PINNING }, ...(config.DENSE_CROP_SEARCH ? { denseCropSearch: { minAgreement: config.DENSE_CROP_MIN_AGREEMENT, minPinning: config.DENSE_CROP_MIN_PINNING } } : {}) }
      : {}),
    ...(config.TONE_CHECK
      ? { tone: { maxAspectGap: config.TONE_MAX_ASPECT_GAP, minStructure: config.TONE_MIN_STRUCTURE, minAgreement: config.TONE_MIN_AGREEMENT, minPinning: config.TONE_MIN_PINNING } }
      : {}),
    ...(fineExtraction ? { fineMinMatches: config.FINE_MIN_MATCHES } : {}),
    ...(config.RESAMPLE_SMALL ? { resampleMinMatches: config.RESAMPLE_MIN_MATCHES } : {}),
    ...(config.OVERLAP_BELOW_KEYPOINTS > 0
      ? {
          overlap: {
            belowKeypoints: config.OVERLAP_BELOW_KEYPOINTS,
            minStructure: config.OVERLAP_MIN_STRUCTURE,
            ...(config.OVERLAP_MIN_PINNING > 0 ? { pinned: { minAgreement: config.OVERLAP_MIN_AGREEMENT, minPinning: config.OVERLAP_MIN_PINNING } } : {}),
          },
          fewMatchHypothesisBelow: config.OVERLAP_BELOW_KEYPOINTS,
        }
      : {}),
  });

  /**
   * The policy of a pair the caller ranks first (REFINE_TOP): the fine and resampled passes
   * open whatever the first-pass matches, and a low-texture pair the crop search leaves
   * unconfirmed gets the rotation searches.
   */
  const ungated = (policy: VerifyPolicy): VerifyPolicy => ({
    ...policy,
    ...(policy.fineMinMatches !== undefined ? { fineMinMatches: 0 } : {}),
    ...(policy.resampleMinMatches !== undefined ? { resampleMinMatches: 0 } : {}),
    ...(policy.denseCropSearch && config.DENSE_ROTATION_SEARCH ? { denseRotationSearch: { minAgreement: config.DENSE_ROTATION_MIN_AGREEMENT, minPinning: config.DENSE_ROTATION_MIN_PINNING } } : {}),
  });

  /**
   * Score of a verdict: SIFT from inliers, dense from the thumbnail correlation or the
   * overlap agreement (each mapped so its calibrated cut-off lands on THRESHOLD); the best wins.
   */
  function scoreOf(v: PairVerdict): { score: number; method: 'sift' | 'dense' } {
    const sift = siftScore(v.inliers);
    if (v.method === 'dense') {
      const dense = Math.max(
        v.correlation !== undefined ? denseScore(v.correlation, config.DENSE_MIN_CORRELATION, config.THRESHOLD) : 0,
        v.agreement !== undefined ? denseScore(v.agreement, config.OVERLAP_MIN_AGREEMENT, config.THRESHOLD) : 0,
        v.toneAgreement !== undefined ? denseScore(v.toneAgreement, config.TONE_MIN_AGREEMENT, config.THRESHOLD) : 0,
      );
      if (dense > sift) return { score: dense, method: 'dense' };
    }
    return { score: sift, method: 'sift' };
  }

  /** `first`: the pair's answer so far (from a verify-many task), when it asked for a second description. */
  async function verifyPair(cand: Shared<PreparedCandidate>, source: TargetSource, policy: VerifyPolicy, signal?: AbortSignal, first?: PairVerdict): Promise<PairVerdict> {
    let task: Extract<WorkerTask, { kind: 'verify' }> = { kind: 'verify', candidate: cand, target: source.target, policy };
    let v = first;
    // An undecided pair may ask for the target's fine description, then for the target at the
    // candidate's resolution: each is sent once, with what was sent before.
    for (;;) {
      if (v === undefined) {
        const r = await pool.run(task, { signal });
        if (r.kind !== 'verify') throw new Error('unexpected worker result');
        v = r.verdict;
      }
      if (v.needsFine && !task.fine) task = { ...task, fine: await source.fine(), ...(v.passes ? { passes: v.passes } : {}) };
      else if (v.needsResampled && !task.resampled) task = { ...task, resampled: await source.resampled(cand.value!.ownLong), ...(v.passes ? { passes: v.passes } : {}) };
      else if (v.needsFine || v.needsResampled) throw new Error('worker asked again for a description it was sent');
      else return v;
      v = undefined;
    }
  }

  function itemOf(relative: string, v: PairVerdict, threshold: number): MatchedItem {
    const { score, method } = scoreOf(v);
    const item: MatchedItem = { relative_path: relative, score: round4(score), inliers: v.inliers, method };
    if (score < threshold) {
      item.reason = v.reason ?? 'below_threshold';
      return item;
    }
    if (method === 'sift' && v.region) item.region = v.region;
    if (method === 'sift' && v.queryRegion) {
      item.query_region = v.queryRegion;
      // The neighbour fills under half of the query: the rest of the query is other content.
      item.partial = clampedArea(v.queryRegion) < PARTIAL_AREA;
    }
    return item;
  }

  /** `signal`: aborted when the client has gone; queued work for it is dropped. */
  async function match(body: MatchRequest, log?: Logger, signal?: AbortSignal): Promise<MatchResult> {
    const threshold = body.threshold ?? config.THRESHOLD;
    const policy = policyFor(threshold);
    const cand = body.candidate_handle !== undefined
      ? preparedCandidate(body.candidate_handle)
      : (await candidateOf(body, signal)).cand;
    type Outcome = { item: MatchedItem } | { error: MatchResult['errors'][number] };
    // A caller that has gone stops the neighbours not yet started (signal checked per run).
    // The first neighbours (the likeliest, in the caller's order) open the second descriptions
    // whatever their first-pass matches; the rest keep the match gates.
    const policies = [policy, ungated(policy)];
    const policyOf = (i: number) => (i < config.REFINE_TOP ? 1 : 0);
    // Every neighbour's path is resolved at once (a few file-system calls each). A failure is
    // settled here and thrown where the neighbour is verified, as its own error.
    const paths = body.neighbors.map((rel) => {
      const p = resolveUnder(config.TARGET_DIR, rel);
      p.catch(() => undefined);
      return p;
    });
    const outcomes: Outcome[] = [];
    const failed = (rel: string, e: unknown): Outcome => {
      if (isRequestLevel(e)) throw e;
      if (!(e instanceof AppError)) log?.error({ err: e, neighbor: rel }, 'neighbour verification failed');
      return { error: { relative_path: rel, ...toItemError(e) } };
    };
    // The neighbours go to the workers in runs of consecutive ones, one verify-many task each:
    // two runs per worker, so that each has one to work on while the answer to the other
    // travels back (pLimit keeps them in flight).
    await pLimit(Math.max(2, config.NB_WORKERS * 2)).map(runsOf(body.neighbors.length, config.NB_WORKERS * 2), async (run) => {
      signal?.throwIfAborted();
      const ready: Array<{ i: number; source: TargetSource }> = [];
      // One after the other: an uncached neighbour is extracted by a worker, and a run holds
      // one pool task at a time, as a single pair did.
      for (const i of run) {
        try {
          ready.push({ i, source: await targetFromPath(body.neighbors[i]!, paths[i]) });
        } catch (e) {
          outcomes[i] = failed(body.neighbors[i]!, e);
        }
      }
      if (ready.length === 0) return;
      let verdicts: Array<PairVerdict | { error: string }>;
      try {
        const r = await pool.run({ kind: 'verify-many', candidate: cand, pairs: ready.map(({ i, source }) => ({ target: source.target, policy: policyOf(i) })), policies }, { signal });
        if (r.kind !== 'verify-many') throw new Error('unexpected worker result');
        verdicts = r.verdicts;
      } catch (e) {
        for (const { i } of ready) outcomes[i] = failed(body.neighbors[i]!, e);
        return;
      }
      for (const [j, { i, source }] of ready.entries()) {
        const rel = body.neighbors[i]!;
        const v = verdicts[j]!;
        try {
          if ('error' in v) throw new Error(v.error);
          outcomes[i] = { item: itemOf(rel, await verifyPair(cand, source, policies[policyOf(i)]!, signal, v), threshold) };
        } catch (e) {
          outcomes[i] = failed(rel, e);
        }
      }
    });
    const checked: MatchedItem[] = [];
    const errors: MatchResult['errors'] = [];
    for (const o of outcomes) {
      if ('item' in o) checked.push(o.item);
      else errors.push(o.error);
    }
    const duplicated = checked.filter((c) => c.score >= threshold).sort((a, b) => b.score - a.score || b.inliers - a.inliers);
    // Nothing proven and nothing to prove it with: say so, rather than a bare empty list.
    if (duplicated.length === 0 && cand.value!.structure.edgeStd < config.DENSE_MIN_EDGE_STD) {
      return { duplicated, checked, errors, reason: 'query_without_structure' };
    }
    return { duplicated, checked, errors };
  }

  async function compare(body: CompareRequest): Promise<CompareResult> {
    // The one pair asked about is the first (and only) neighbour.
    const policy = config.REFINE_TOP > 0 ? ungated(policyFor(config.THRESHOLD)) : policyFor(config.THRESHOLD);
    const fromBody = async (bytes: Buffer): Promise<TargetSource> => {
      const key = freshKey('target');
      return {
        target: await targetFromBytes(bytes, key),
        fine: () => fineFromBytes(bytes, `${key}\u0000fine`),
        resampled: (long) => resampledFromBytes(bytes, `${key}\u0000at${long}`, long),
      };
    };
    const [cand, target] = await Promise.all([
      candidateOf(body).then((x) => x.cand),
      body.target_base64 !== undefined
        ? fromBody(decodeBase64(body.target_base64, config.MAX_IMAGE_BYTES, 'target_base64'))
        : targetFromPath(body.target ?? ''),
    ]);
    const item = itemOf('', await verifyPair(cand, target, policy), config.THRESHOLD);
    return { score: item.score, inliers: item.inliers, duplicated: item.score >= config.THRESHOLD };
  }

  return { match, compare, prepare, cache, prepared };
}

export type Matcher = ReturnType<typeof createMatcher>;
