import { Type, type Static } from '@sinclair/typebox';
import { CommonConfigProps, Envelope, PageOf, PageQueryProps, ItemError, RelativePath, Score, schemaId } from './common.schemas.js';
import { ImageSourceProps, Orientations, exactlyOneImageSource } from './encoder.schemas.js';
import { MAX_NEIGHBORS } from './search.schemas.js';
import { MatchReason } from './matching.schemas.js';

/** What a query image and its search settings are, in /duplicates and POST /search alike. */
const QueryImageProps = {
  ...ImageSourceProps,
  nb_neighbors: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_NEIGHBORS })),
  threshold: Type.Optional(Score),
  min_score: Type.Optional(Score),
  all_orientations: Type.Optional(Type.Boolean({ description: 'Also search the query turned (its quarter turns; with SEARCH_MIRRORS its mirrors too) when its own orientation verifies nothing (default true).' })),
};

export const DuplicatesRequest = Type.Object(
  QueryImageProps,
  { $id: schemaId('pipeline/duplicates-request'), additionalProperties: false, ...exactlyOneImageSource },
);
export type DuplicatesRequest = Static<typeof DuplicatesRequest>;

export const Candidate = Type.Object({
  relative_path: Type.String(),
  score: Score,
  orientation: Type.Optional(Type.String()),
  /** instance-matching's score for this candidate, kept or rejected (absent when it was not verified). */
  verification_score: Type.Optional(Score),
});
export const ConfirmedDuplicate = Type.Object({
  relative_path: Type.String(),
  score: Score,
  inliers: Type.Integer({ minimum: 0 }),
  search_score: Type.Optional(Score),
  /** Passed through from instance-matching: how the pair was verified. */
  method: Type.Optional(Type.Union([Type.Literal('sift'), Type.Literal('dense')])),
  /** The query's corners in the duplicate's normalised coordinates (from instance-matching). */
  // [x, y] pairs as plain arrays: TypeBox tuples emit draft-07 `items` arrays, which the
  // 2020-12 ajv refuses to compile.
  region: Type.Optional(Type.Array(Type.Array(Type.Number(), { minItems: 2, maxItems: 2 }), { minItems: 4, maxItems: 4 })),
  /** From instance-matching: the duplicate's corners in the query, and whether it fills only part of it. */
  query_region: Type.Optional(Type.Array(Type.Array(Type.Number(), { minItems: 2, maxItems: 2 }), { minItems: 4, maxItems: 4 })),
  partial: Type.Optional(Type.Boolean()),
});
export type ConfirmedDuplicate = Static<typeof ConfirmedDuplicate>;

export const DuplicatesResponse = Envelope(
  'pipeline/duplicates-response',
  Type.Object({
    duplicated: Type.Array(ConfirmedDuplicate),
    candidates: Type.Array(Candidate),
    /** Orientations of the query that were searched: 1 (its own), or, when that verified nothing, 4 (its quarter turns) or 8 (and their mirrors: SEARCH_MIRRORS). */
    orientations_searched: Type.Optional(Type.Integer({ minimum: 1, maximum: 8 })),
    /** Where the query's own-orientation fingerprint came from: the index (a query by path of an indexed, unchanged file) or the encoder. */
    fingerprint: Type.Optional(Type.Union([Type.Literal('indexed'), Type.Literal('encoded')])),
    timings_ms: Type.Object({ encode: Type.Number(), search: Type.Number(), match: Type.Number() }),
    /** From instance-matching: why the query declares nothing (it is almost flat). */
    reason: Type.Optional(MatchReason),
  }),
);
export type DuplicatesResponse = Static<typeof DuplicatesResponse>;

export const MAX_INDEX_PATHS = 1000;
/**
 * One file or folder (`relative_path`), or an explicit list of files (`relative_paths`,
 * what the CLI sends chunk by chunk to draw its progress bar).
 */
export const IndexRequest = Type.Object(
  {
    relative_path: Type.Optional(RelativePath),
    relative_paths: Type.Optional(Type.Array(RelativePath, { minItems: 1, maxItems: MAX_INDEX_PATHS })),
    recursive: Type.Optional(Type.Boolean()),
    force: Type.Optional(Type.Boolean()),
    prune: Type.Optional(Type.Boolean({
      description: 'With relative_path: also delete from the index the files under it (or the file itself) that no longer exist. Opt-in: an empty or unmounted folder would otherwise empty the index.',
    })),
  },
  {
    $id: schemaId('pipeline/index-request'),
    additionalProperties: false,
    oneOf: [{ required: ['relative_path'] }, { required: ['relative_paths'] }],
  },
);
export type IndexRequest = Static<typeof IndexRequest>;

export const IndexResponse = Envelope(
  'pipeline/index-response',
  Type.Object({
    total: Type.Integer(),
    indexed: Type.Integer(),
    skipped: Type.Integer(),
    /** Indexed files deleted because they no longer exist (only with prune). */
    removed: Type.Integer(),
    failed: Type.Array(Type.Intersect([Type.Object({ relative_path: Type.String() }), ItemError])),
  }),
);
export type IndexResponse = Static<typeof IndexResponse>;

export const PipelineConfig = Type.Object(
  {
    ...CommonConfigProps,
    SERVER_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8000 }),
    IMAGES_ROOT: Type.String({ default: './images', description: 'The shared image root (same folder as the encoder IMAGES_ROOT and the matcher SOURCE_DIR/TARGET_DIR); /index walks it.' }),
    ENCODER_URL: Type.String({ default: 'http://127.0.0.1:8500', description: 'Base URL of image-encoder.' }),
    SEARCH_URL: Type.String({ default: 'http://127.0.0.1:8800', description: 'Base URL of contextual-search.' }),
    MATCHING_URL: Type.String({ default: 'http://127.0.0.1:8300', description: 'Base URL of instance-matching.' }),
    NB_NEIGHBORS: Type.Integer({ minimum: 1, maximum: MAX_NEIGHBORS, default: 10, description: 'Candidates per query sent to verification (the best over its orientation searches).' }),
    MIN_SCORE: Type.Number({ minimum: 0, maximum: 1, default: 0, description: 'Search similarity below which a neighbour is not a candidate.' }),
    SEARCH_K: Type.Integer({ minimum: 1, maximum: MAX_NEIGHBORS, default: 100, description: 'Images fetched from search per query (the merged best of its orientations) and re-ranked; the best NB_NEIGHBORS go to verification. Measured: bench/encoder/rerank.bench.ts (pipeline README).' }),
    HUBNESS_WEIGHT: Type.Number({ minimum: 0, maximum: 2, default: 0.75, description: 'Re-ranking: a candidate ranks by its search score minus this times its hubness (the mean score of its 10 nearest indexed images), so images close to everything stop crowding out the original; 0: search order.' }),
    ORIENTATION_SEARCH: Type.Union([Type.Literal('cascade'), Type.Literal('all')], { default: 'cascade', description: 'cascade: a query is encoded and searched as it is (1 forward pass), and turned (SEARCH_MIRRORS) only when that verifies no candidate; all: always turned (a query with an upright verified copy is then also searched for turned ones). Measured: bench/pipeline/latency.bench.ts (pipeline README).' }),
    SEARCH_MIRRORS: Type.Boolean({ default: false, description: 'A turned search also encodes the 4 mirrors of the query (8 passes instead of its 4 quarter turns). Off: the fingerprint barely tells an image from its mirror (candidate recall@10 at 10,000 distractors 0.994 with the 4 turns, 0.993 with all 8: bench/encoder/rerank.bench.ts Q_ORIENTS, pipeline README), and verification checks the mirror itself.' }),
    DOWNSTREAM_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 30000, description: 'Deadline of one downstream call; past it the pipeline answers 504 DOWNSTREAM_TIMEOUT.' }),
    INDEX_BATCH_SIZE: Type.Integer({ minimum: 1, maximum: 64, default: 16, description: 'Images per encoder batch while indexing.' }),
    INDEX_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 16, default: 2, description: 'Encoder batches in flight while indexing.' }),
    URL_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 10000, description: 'Whole download of a `url` query, redirects included (fetched once; encoder and matcher get its bytes).' }),
    MAX_IMAGE_BYTES: Type.Integer({ minimum: 1, default: 20 * 1024 * 1024, description: 'Largest image a request brings (upload, base64 or url download).' }),
    ALLOW_PRIVATE_URLS: Type.Boolean({ default: false, description: 'Let `url` reach loopback/private/link-local addresses (tests, trusted networks).' }),
    URL_MAX_REDIRECTS: Type.Integer({ minimum: 0, maximum: 3, default: 3, description: 'Redirects followed when downloading `url`.' }),
    API_STATE_DIR: Type.String({
      default: '.doppel-api',
      description: 'Where POST /images keeps uploaded/downloaded images (content-addressed, refcounted by id) and each id\'s record; relative to IMAGES_ROOT and inside it, so the encoder and the matcher read the kept images by path like any indexed file.',
    }),
    COMPAT_ACCURACY: Type.Number({ minimum: 0, maximum: 1, default: 0.5, description: '/compat/image-matching: the default `accuracy` (verified score threshold) of the match_* requests.' }),
  },
  { $id: schemaId('config/pipeline'), additionalProperties: true },
);
export type PipelineConfig = Static<typeof PipelineConfig>;

// ------------------------------------------------------------------ the public image API

export const MAX_ID_LENGTH = 1024;
/** Serialized size cap of the metadata an id carries (kept in its record, returned with results). */
export const MAX_USER_METADATA_BYTES = 64 * 1024;
export const ImageId = Type.String({ minLength: 1, maxLength: MAX_ID_LENGTH });
export const UserMetadata = Type.Record(Type.String(), Type.Unknown(), { description: `Any JSON object up to ${MAX_USER_METADATA_BYTES} bytes serialized.` });
export type UserMetadata = Static<typeof UserMetadata>;

/** Every route that takes one image: these three JSON fields, or a multipart file field `image`. */
export const IMAGE_MULTIPART = { image: { type: 'string' as const, format: 'binary' as const } };

export const AddImageRequest = Type.Object(
  {
    ...ImageSourceProps,
    id: Type.Optional(ImageId),
    metadata: Type.Optional(UserMetadata),
  },
  { $id: schemaId('pipeline/add-image-request'), additionalProperties: false, ...exactlyOneImageSource },
);
export type AddImageRequest = Static<typeof AddImageRequest>;

/** Where an id's bytes are: a file under the image root, or a kept blob (itself under the root). */
export const ImageLocation = Type.Object({
  kind: Type.Union([Type.Literal('file'), Type.Literal('blob')]),
  /** Relative to IMAGES_ROOT: what the encoder and the matcher read. */
  relative_path: Type.String(),
  /** sha256 of the bytes, for kept blobs. */
  sha256: Type.Optional(Type.String()),
  bytes: Type.Optional(Type.Integer({ minimum: 0 })),
});
export type ImageLocation = Static<typeof ImageLocation>;

export const AddImageResponse = Envelope(
  'pipeline/add-image-response',
  Type.Object({ id: Type.String(), replaced: Type.Boolean(), dimension: Type.Integer(), location: ImageLocation }),
);

export const ImageRecord = Type.Object({
  id: Type.String(),
  metadata: UserMetadata,
  dimension: Type.Integer(),
  location: ImageLocation,
  /** ISO time of the last add (ids indexed by POST /index have none). */
  added_at: Type.Optional(Type.String()),
});
export type ImageRecord = Static<typeof ImageRecord>;
export const ImageResponse = Envelope('pipeline/image-response', ImageRecord);

export const ImageIdParams = Type.Object({ id: ImageId }, { $id: schemaId('pipeline/image-id-params'), additionalProperties: false });

export const DeleteImageResponse = Envelope(
  'pipeline/delete-image-response',
  Type.Object({ id: Type.String(), deleted: Type.Literal(true), blob_removed: Type.Boolean() }),
);

export const ListImagesQuery = Type.Object(
  PageQueryProps,
  { $id: schemaId('pipeline/list-images-query'), additionalProperties: false },
);
export type ListImagesQuery = Static<typeof ListImagesQuery>;
export const ListImagesResponse = Envelope(
  'pipeline/list-images-response',
  PageOf(Type.Object({ id: Type.String(), metadata: UserMetadata })),
);

export const PipelineStatsResponse = Envelope(
  'pipeline/stats-response',
  Type.Object({
    count: Type.Integer(),
    dimension: Type.Integer(),
    model: Type.String(),
    /** contextual-search's index: exact or hnsw (or its storage backend when it reports one) and its distance. */
    backend: Type.String(),
    distance: Type.String(),
  }),
);

export const SearchImageRequest = Type.Object(
  {
    ...QueryImageProps,
    include_candidates: Type.Optional(Type.Boolean({ description: 'Also return the unverified search candidates (default false).' })),
  },
  { $id: schemaId('pipeline/search-image-request'), additionalProperties: false, ...exactlyOneImageSource },
);
export type SearchImageRequest = Static<typeof SearchImageRequest>;

export const SearchHit = Type.Object({
  id: Type.String(),
  metadata: UserMetadata,
  /** Verified score in [0,1] (instance-matching). */
  score: Score,
  inliers: Type.Integer({ minimum: 0 }),
  search_score: Type.Optional(Score),
  method: Type.Optional(Type.String()),
  region: Type.Optional(Type.Array(Type.Array(Type.Number(), { minItems: 2, maxItems: 2 }), { minItems: 4, maxItems: 4 })),
  reason: Type.Optional(Type.String()),
});
export type SearchHit = Static<typeof SearchHit>;

export const SearchImageResponse = Envelope(
  'pipeline/search-image-response',
  Type.Object({
    results: Type.Array(SearchHit),
    candidates: Type.Optional(Type.Array(Type.Object({ id: Type.String(), score: Score, orientation: Type.Optional(Type.String()) }))),
    timings_ms: Type.Object({ encode: Type.Number(), search: Type.Number(), match: Type.Number() }),
  }),
);

export const SearchVectorRequest = Type.Object(
  {
    vec_features: Type.Array(Type.Number(), { minItems: 1, maxItems: 4096 }),
    nb_neighbors: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_NEIGHBORS })),
    min_score: Type.Optional(Score),
  },
  { $id: schemaId('pipeline/search-vector-request'), additionalProperties: false },
);
export type SearchVectorRequest = Static<typeof SearchVectorRequest>;
export const SearchVectorResponse = Envelope(
  'pipeline/search-vector-response',
  Type.Object({ results: Type.Array(Type.Object({ id: Type.String(), metadata: UserMetadata, score: Score })) }),
);

/** One image in any of the JSON forms (the multipart forms are the files image1 / image2). */
const ImageSourceObject = Type.Object(ImageSourceProps, { additionalProperties: false, ...exactlyOneImageSource });
export const CompareImagesRequest = Type.Object(
  { image1: ImageSourceObject, image2: ImageSourceObject, threshold: Type.Optional(Score) },
  { $id: schemaId('pipeline/compare-images-request'), additionalProperties: false },
);
export type CompareImagesRequest = Static<typeof CompareImagesRequest>;
export const CompareImagesResponse = Envelope(
  'pipeline/compare-images-response',
  Type.Object({
    score: Score,
    inliers: Type.Integer({ minimum: 0 }),
    method: Type.Optional(Type.String()),
    region: Type.Optional(Type.Array(Type.Array(Type.Number(), { minItems: 2, maxItems: 2 }), { minItems: 4, maxItems: 4 })),
    reason: Type.Optional(Type.String()),
    duplicated: Type.Boolean(),
  }),
);

export const FingerprintRequest = Type.Object(
  { ...ImageSourceProps, orientations: Type.Optional(Orientations) },
  { $id: schemaId('pipeline/fingerprint-request'), additionalProperties: false, ...exactlyOneImageSource },
);
export type FingerprintRequest = Static<typeof FingerprintRequest>;

export const PingResponse = Envelope('pipeline/ping-response', Type.Object({ status: Type.Literal('ok'), service: Type.String() }));
