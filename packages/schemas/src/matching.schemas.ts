import { Type, type Static } from '@sinclair/typebox';
import { Base64Image, CommonConfigProps, Envelope, ItemError, RelativePath, Score, schemaId } from './common.schemas.js';

export const MAX_MATCH_NEIGHBORS = 200;

/** A point in normalised image coordinates: x / width, y / height. */
// Not Type.Tuple: TypeBox emits draft-07 `additionalItems`, which the 2020-12 Ajv refuses.
const NormPoint = Type.Array(Type.Number(), { minItems: 2, maxItems: 2 });

/**
 * Why a pair was not declared a duplicate (or why the query declares nothing): the query
 * or the neighbour is almost flat, too few descriptor matches, no consistent geometry, a
 * fit that is implausible or confined to one corner or band, or a score under the threshold.
 */
export const MatchReason = Type.Union([
  Type.Literal('query_without_structure'),
  Type.Literal('neighbor_without_structure'),
  Type.Literal('too_few_matches'),
  Type.Literal('no_consistent_geometry'),
  Type.Literal('implausible_transform'),
  Type.Literal('inliers_in_one_region'),
  Type.Literal('below_threshold'),
]);
export type MatchReason = Static<typeof MatchReason>;

export const MatchedItem = Type.Object({
  relative_path: Type.String(),
  score: Score,
  inliers: Type.Integer({ minimum: 0 }),
  /** How the pair was verified: SIFT + RANSAC, or the dense check for low-texture images. */
  method: Type.Optional(Type.Union([Type.Literal('sift'), Type.Literal('dense')])),
  /** The candidate's corners projected into the neighbour image (the matched region). */
  region: Type.Optional(Type.Array(NormPoint, { minItems: 4, maxItems: 4 })),
  /**
   * The neighbour's corners projected into the candidate. With `partial`, the neighbour
   * fills only part of the candidate (a picture pasted into another, a screenshot).
   */
  query_region: Type.Optional(Type.Array(NormPoint, { minItems: 4, maxItems: 4 })),
  partial: Type.Optional(Type.Boolean()),
  /** Set when the pair is not a duplicate: why. */
  reason: Type.Optional(MatchReason),
});
export type MatchedItem = Static<typeof MatchedItem>;

/** A candidate prepared by POST /prepare: a random id, valid for PREPARED_TTL_MS. */
export const CandidateHandle = Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' });

export const PrepareRequest = Type.Object(
  {
    candidate: Type.Optional(RelativePath),
    candidate_base64: Type.Optional(Base64Image),
  },
  {
    $id: schemaId('matching/prepare-request'),
    additionalProperties: false,
    oneOf: [{ required: ['candidate'] }, { required: ['candidate_base64'] }],
  },
);
export type PrepareRequest = Static<typeof PrepareRequest>;

export const PrepareResponse = Envelope(
  'matching/prepare-response',
  Type.Object({
    candidate_handle: CandidateHandle,
    /** The handle is refused (410 HANDLE_EXPIRED) after this long without use. */
    expires_in_ms: Type.Integer({ minimum: 0 }),
    keypoints: Type.Integer({ minimum: 0 }),
    /** Server-side time of the decode and of the SIFT extraction. */
    timings_ms: Type.Object({ decode: Type.Number(), extract: Type.Number() }),
  }),
);
export type PrepareResponse = Static<typeof PrepareResponse>;

export const MatchRequest = Type.Object(
  {
    candidate: Type.Optional(RelativePath),
    candidate_base64: Type.Optional(Base64Image),
    /** A candidate prepared earlier by POST /prepare (its features are not extracted again). */
    candidate_handle: Type.Optional(CandidateHandle),
    neighbors: Type.Array(RelativePath, { minItems: 0, maxItems: MAX_MATCH_NEIGHBORS, description: 'Neighbours to verify, likeliest first (the pipeline sends them in search-rank order): the first REFINE_TOP of them are looked at again at finer and at the copy\'s resolution whenever the first pass leaves them undecided.' }),
    threshold: Type.Optional(Score),
  },
  {
    $id: schemaId('matching/match-request'),
    additionalProperties: false,
    oneOf: [{ required: ['candidate'] }, { required: ['candidate_base64'] }, { required: ['candidate_handle'] }],
  },
);
export type MatchRequest = Static<typeof MatchRequest>;

export const MatchResponse = Envelope(
  'matching/match-response',
  Type.Object({
    duplicated: Type.Array(MatchedItem),
    /** Every neighbour that was verified, with its score, duplicated or not. */
    checked: Type.Array(MatchedItem),
    /** Neighbours that could not be verified (missing file, bad image), per item. */
    errors: Type.Array(Type.Intersect([Type.Object({ relative_path: Type.String() }), ItemError])),
    /** Set when the query itself cannot prove anything (almost flat): nothing is declared. */
    reason: Type.Optional(MatchReason),
  }),
);
export type MatchResponse = Static<typeof MatchResponse>;

export const CompareRequest = Type.Object(
  {
    candidate: Type.Optional(RelativePath),
    candidate_base64: Type.Optional(Base64Image),
    target: Type.Optional(RelativePath),
    target_base64: Type.Optional(Base64Image),
  },
  {
    $id: schemaId('matching/compare-request'),
    additionalProperties: false,
    allOf: [
      { oneOf: [{ required: ['candidate'] }, { required: ['candidate_base64'] }] },
      { oneOf: [{ required: ['target'] }, { required: ['target_base64'] }] },
    ],
  },
);
export type CompareRequest = Static<typeof CompareRequest>;

export const CompareResponse = Envelope(
  'matching/compare-response',
  Type.Object({ score: Score, inliers: Type.Integer({ minimum: 0 }), duplicated: Type.Boolean() }),
);
export type CompareResponse = Static<typeof CompareResponse>;

export const MatchingConfig = Type.Object(
  {
    ...CommonConfigProps,
    SERVER_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8300 }),
    SOURCE_DIR: Type.String({ default: './images', description: 'Root for `candidate` paths.' }),
    TARGET_DIR: Type.String({ default: './images', description: 'Root for `neighbors` paths.' }),
    THRESHOLD: Type.Number({ minimum: 0, maximum: 1, default: 0.5 }),
    WIDTH: Type.Integer({ minimum: 128, maximum: 4096, default: 384, description: 'Working size: images are shrunk to fit WIDTH x HEIGHT before SIFT.' }),
    HEIGHT: Type.Integer({ minimum: 128, maximum: 4096, default: 384 }),
    NB_WORKERS: Type.Integer({ minimum: 1, maximum: 64, default: 2, description: 'Verification child processes (OpenCV is not safe in worker threads).' }),
    MAX_KEYPOINTS: Type.Integer({ minimum: 16, maximum: 20000, default: 300, description: 'SIFT keypoints kept per image (strongest first).' }),
    ENLARGE_BELOW: Type.Integer({
      minimum: 0,
      maximum: 4096,
      default: 192,
      description: 'An image whose long side is under this many pixels is enlarged 2x before SIFT (a thumbnail\'s detail is then at scales SIFT detects; 0: never).',
    }),
    FINE_SIDE: Type.Integer({
      minimum: 0,
      maximum: 8192,
      default: 768,
      description: 'Coarse-to-fine: a neighbour is described again at this size (fit inside, never enlarged) for pairs the first pass leaves undecided (0: no fine pass).',
    }),
    FINE_KEYPOINTS: Type.Integer({ minimum: 16, maximum: 20000, default: 1200, description: 'SIFT keypoints kept in a neighbour\'s fine description.' }),
    FINE_MIN_MATCHES: Type.Integer({
      minimum: 0,
      maximum: 20000,
      default: 10,
      description: 'A pair the first pass leaves undecided goes to the fine pass when it has at least this many one-to-one matches (0: every undecided pair).',
    }),
    RESAMPLE_SMALL: Type.Boolean({
      default: true,
      description: 'A copy smaller than a neighbour\'s working size (a thumbnail) that the first passes leave undecided is verified again against the neighbour shrunk to the copy\'s own long side (then enlarged like the copy): the neighbour\'s finer keypoints are at scales the copy lost.',
    }),
    RESAMPLE_MIN_MATCHES: Type.Integer({
      minimum: 0,
      maximum: 20000,
      default: 9,
      description: 'With RESAMPLE_SMALL, an undecided pair is verified at the copy\'s resolution when its first pass has at least this many one-to-one matches (0: every such pair).',
    }),
    REFINE_TOP: Type.Integer({
      minimum: 0,
      maximum: 1000,
      default: 1,
      description: 'The first REFINE_TOP neighbours of a /match request (callers list the likeliest first: the pipeline sends search-rank order) go to the fine and the resampled passes whenever the first pass leaves them undecided, whatever their matches: a zoom or crop has few first-pass matches because the working size under-describes the overlap (0: the match gates alone).',
    }),
    SIFT_ADAPT_BELOW: Type.Integer({
      minimum: 0,
      maximum: 20000,
      default: 100,
      description: 'An image with fewer SIFT keypoints than this at the default contrast threshold is described again at SIFT_LOW_CONTRAST (0: never).',
    }),
    SIFT_LOW_CONTRAST: Type.Number({
      exclusiveMinimum: 0,
      maximum: 0.04,
      default: 0.01,
      description: 'SIFT contrast threshold for low-texture images (OpenCV default 0.04).',
    }),
    CACHE_MAX_MB: Type.Number({
      minimum: 0,
      default: 512,
      description: 'Megabytes of target features the service keeps (LRU keyed by path, size and mtime; 0 disables).',
    }),
    WORKER_CACHE_MB: Type.Number({
      minimum: 0,
      default: 256,
      description: 'Megabytes of features (with their float matching copies) each verification process keeps, so a target or candidate crosses the IPC pipe once per process (0: always sent).',
    }),
    TASK_TIMEOUT_MS: Type.Integer({
      minimum: 0,
      default: 30000,
      description: 'A verification task running longer fails and its process is replaced (0: no limit).',
    }),
    QUEUE_LIMIT: Type.Integer({ minimum: 1, default: 1024 }),
    PREPARED_TTL_MS: Type.Integer({ minimum: 1, default: 30000, description: 'How long a candidate prepared by POST /prepare stays usable after its last use.' }),
    PREPARED_MAX: Type.Integer({ minimum: 1, default: 256, description: 'Prepared candidates kept at once (least recently used go first).' }),
    MAX_IMAGE_BYTES: Type.Integer({ minimum: 1, default: 20 * 1024 * 1024 }),
    MAX_PIXELS: Type.Integer({ minimum: 1, default: 50_000_000 }),
    DESCRIPTOR_KERNEL: Type.Union([Type.Literal('rootsift'), Type.Literal('l2')], {
      default: 'rootsift',
      description: 'How SIFT descriptors are compared: rootsift (each L1-normalised and square-rooted, so L2 between them is the Hellinger distance) or l2 (raw). Chosen with RATIO_TEST on the calibration half (instance-matching README).',
    }),
    RATIO_TEST: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.8, description: "Lowe's ratio: best/second-best descriptor distance." }),
    RANSAC_MODEL: Type.Union([Type.Literal('similarity'), Type.Literal('homography'), Type.Literal('similarity+homography')], {
      default: 'similarity+homography',
      description: 'Geometric model verified by RANSAC; `similarity+homography` tries the homography (MAGSAC) only when the similarity fails.',
    }),
    RANSAC_REPROJ_PX: Type.Number({ exclusiveMinimum: 0, maximum: 50, default: 4, description: 'RANSAC inlier distance, pixels at the working size.' }),
    DENSE_MIN_KEYPOINTS: Type.Integer({
      minimum: 0,
      maximum: 20000,
      default: 40,
      description: 'Below this many keypoints on either side, a failed SIFT check falls back to the dense check (0 disables it).',
    }),
    DENSE_MIN_EDGE_STD: Type.Number({
      minimum: 0,
      default: 2,
      description: 'Structure (std of the 32x32 thumbnail gradient magnitude, grey levels/px) both sides need for the dense check; a query under it that matches nothing says why.',
    }),
    DENSE_MIN_CORRELATION: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 0.85,
      description: 'Thumbnail correlation (mean of grey and gradient NCC) that the dense check maps to THRESHOLD.',
    }),
    DENSE_MIN_PINNING: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 0.05,
      description: 'A dense-check match counts only if its placement is confirmed on the 96-px thumbnails (the overlap check\'s structure and agreement rules) and pinned: slid 6 or 10 px along its edges, the agreement drops by at least this much (0: the correlation alone decides, unconfirmed).',
    }),
    DENSE_CROP_SEARCH: Type.Boolean({
      default: true,
      description: 'When the dense check\'s placements are not confirmed, also place the copy inside the neighbour with its own aspect (strips) and down to 0.38 of its long side (corner crops, zooms), in the 8 orientations, and confirm that placement on the 96-px thumbnails with DENSE_CROP_MIN_AGREEMENT and DENSE_CROP_MIN_PINNING (needs DENSE_MIN_PINNING > 0).',
    }),
    DENSE_ROTATION_SEARCH: Type.Boolean({
      default: true,
      description: 'For the first REFINE_TOP neighbours, when the crop search\'s placement is not confirmed either: place the upright copy inside the neighbour turned by 5 to 20 degrees either way (a copy turned and cropped to fill), then try the copy as the neighbour turned inside its own frame (filled corners, or shrunk inside a filled frame); confirmed on the 96-px thumbnails with DENSE_ROTATION_MIN_AGREEMENT and DENSE_ROTATION_MIN_PINNING (needs DENSE_CROP_SEARCH).',
    }),
    DENSE_ROTATION_MIN_AGREEMENT: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 0.95,
      description: 'Gradient agreement a rotation search\'s placement needs over the aligned overlap (bench/matching/crop-search.bench.ts SEARCH=rotation).',
    }),
    DENSE_ROTATION_MIN_PINNING: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 0.1,
      description: 'Pinning a rotation search\'s placement needs: slid 6 or 10 px along its edges, the agreement drops by at least this much (bench/matching/crop-search.bench.ts SEARCH=rotation).',
    }),
    DENSE_CROP_MIN_AGREEMENT: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 0.8,
      description: 'Gradient agreement the crop search\'s placement needs over the aligned overlap (bench/matching/crop-search.bench.ts).',
    }),
    DENSE_CROP_MIN_PINNING: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 0.25,
      description: 'Pinning the crop search\'s placement needs: slid 6 or 10 px along its edges, the agreement drops by at least this much (bench/matching/crop-search.bench.ts).',
    }),
    TONE_CHECK: Type.Boolean({
      default: true,
      description: 'A pair SIFT leaves undecided whose pictures have one aspect (within TONE_MAX_ASPECT_GAP) is also compared as a whole, upright copy on the colour planes of the 96-px thumbnails, so greyscale, sepia and posterized or channel-wrapped copies verify (bench/matching/tone-check.bench.ts).',
    }),
    TONE_MAX_ASPECT_GAP: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 0.03,
      description: 'Largest |log| ratio of the two aspects the tone check takes for one picture (a 96-px thumbnail rounds its short side to whole pixels: 1 px in 54 is 1.9%).',
    }),
    TONE_MIN_STRUCTURE: Type.Number({
      minimum: 0,
      default: 3,
      description: 'Structure both sides need for the tone check (RMS of the coherent colour-plane double-angle gradient field around its mean, levels/px of the 96-px thumbnail; bench/matching/tone-check.bench.ts).',
    }),
    TONE_MIN_AGREEMENT: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 0.5,
      description: 'Colour-plane gradient agreement that the tone check needs, over the whole pictures and over their middle 60%, and maps to THRESHOLD (bench/matching/tone-check.bench.ts).',
    }),
    TONE_MIN_PINNING: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 0.15,
      description: 'Pinning the tone check needs: slid 6 or 10 px along its edges, the agreement drops by at least this much (bench/matching/tone-check.bench.ts).',
    }),
    OVERLAP_BELOW_KEYPOINTS: Type.Integer({
      minimum: 0,
      maximum: 20000,
      default: 100,
      description: 'Below this many keypoints on either side, a pair SIFT leaves undecided gets the overlap check: the candidate warped by SIFT\'s best plausible fit, even from 3 matches, and its overlap compared photometrically (0 disables it).',
    }),
    OVERLAP_MIN_STRUCTURE: Type.Number({
      minimum: 0,
      default: 1.5,
      description: 'Structure both sides need inside the aligned overlap (RMS of the coherent double-angle gradient field around its mean, grey levels/px of the 96-px thumbnail) before the overlap check may count.',
    }),
    OVERLAP_MIN_AGREEMENT: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 0.7,
      description: 'Gradient agreement over the aligned overlap (correlation of contrast-normalised double-angle gradients) that the overlap check maps to THRESHOLD.',
    }),
    OVERLAP_MIN_PINNING: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 0.03,
      description: 'An overlap-check agreement reaching OVERLAP_MIN_AGREEMENT counts only if its placement is pinned: slid 6 or 10 px along its edges, the agreement drops by at least this much (bench/matching/overlap.bench.ts, section 4; 0: not asked).',
    }),
  },
  { $id: schemaId('config/instance-matching'), additionalProperties: true },
);
export type MatchingConfig = Static<typeof MatchingConfig>;
