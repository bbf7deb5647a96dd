import { Type, type Static } from '@sinclair/typebox';
import { CommonConfigProps, Envelope, ItemError, RelativePath, Score, schemaId } from './common.schemas.js';
import { ImageSourceProps, exactlyOneImageSource } from './encoder.schemas.js';
import { MAX_NEIGHBORS } from './search.schemas.js';
import { MatchReason } from './matching.schemas.js';

export const DuplicatesRequest = Type.Object(
  {
    ...ImageSourceProps,
    nb_neighbors: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_NEIGHBORS })),
    threshold: Type.Optional(Score),
    min_score: Type.Optional(Score),
  },
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
    NB_NEIGHBORS: Type.Integer({ minimum: 1, maximum: MAX_NEIGHBORS, default: 10, description: 'Candidates per query sent to verification (best of the 8 orientation searches).' }),
    MIN_SCORE: Type.Number({ minimum: 0, maximum: 1, default: 0, description: 'Search similarity below which a neighbour is not a candidate.' }),
    DOWNSTREAM_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 30000, description: 'Deadline of one downstream call; past it the pipeline answers 504 DOWNSTREAM_TIMEOUT.' }),
    INDEX_BATCH_SIZE: Type.Integer({ minimum: 1, maximum: 64, default: 16, description: 'Images per encoder batch while indexing.' }),
    INDEX_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 16, default: 2, description: 'Encoder batches in flight while indexing.' }),
    URL_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 10000, description: 'Whole download of a `url` query, redirects included (fetched once; encoder and matcher get its bytes).' }),
    MAX_IMAGE_BYTES: Type.Integer({ minimum: 1, default: 20 * 1024 * 1024, description: 'Largest url query download.' }),
    ALLOW_PRIVATE_URLS: Type.Boolean({ default: false, description: 'Let `url` reach loopback/private/link-local addresses (tests, trusted networks).' }),
    URL_MAX_REDIRECTS: Type.Integer({ minimum: 0, maximum: 3, default: 3, description: 'Redirects followed when downloading `url`.' }),
  },
  { $id: schemaId('config/pipeline'), additionalProperties: true },
);
export type PipelineConfig = Static<typeof PipelineConfig>;
