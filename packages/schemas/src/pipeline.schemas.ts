import { Type, type Static } from '@sinclair/typebox';
import { CommonConfigProps, Envelope, ItemError, RelativePath, Score, schemaId } from './common.schemas.js';
import { ImageSourceProps, exactlyOneImageSource } from './encoder.schemas.js';
import { MAX_NEIGHBORS } from './search.schemas.js';

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
});
export const ConfirmedDuplicate = Type.Object({
  relative_path: Type.String(),
  score: Score,
  inliers: Type.Integer({ minimum: 0 }),
  search_score: Type.Optional(Score),
});

export const DuplicatesResponse = Envelope(
  'pipeline/duplicates-response',
  Type.Object({
    duplicated: Type.Array(ConfirmedDuplicate),
    candidates: Type.Array(Candidate),
    timings_ms: Type.Object({ encode: Type.Number(), search: Type.Number(), match: Type.Number() }),
  }),
);
export type DuplicatesResponse = Static<typeof DuplicatesResponse>;

export const IndexRequest = Type.Object(
  {
    relative_path: RelativePath,
    recursive: Type.Optional(Type.Boolean()),
    force: Type.Optional(Type.Boolean()),
  },
  { $id: schemaId('pipeline/index-request'), additionalProperties: false },
);
export type IndexRequest = Static<typeof IndexRequest>;

export const IndexResponse = Envelope(
  'pipeline/index-response',
  Type.Object({
    total: Type.Integer(),
    indexed: Type.Integer(),
    skipped: Type.Integer(),
    failed: Type.Array(Type.Intersect([Type.Object({ relative_path: Type.String() }), ItemError])),
  }),
);
export type IndexResponse = Static<typeof IndexResponse>;

export const PipelineConfig = Type.Object(
  {
    ...CommonConfigProps,
    SERVER_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8000 }),
    IMAGES_ROOT: Type.String({ default: './images' }),
    ENCODER_URL: Type.String({ default: 'http://127.0.0.1:8500' }),
    SEARCH_URL: Type.String({ default: 'http://127.0.0.1:8800' }),
    MATCHING_URL: Type.String({ default: 'http://127.0.0.1:8300' }),
    NB_NEIGHBORS: Type.Integer({ minimum: 1, maximum: MAX_NEIGHBORS, default: 10 }),
    MIN_SCORE: Type.Number({ minimum: 0, maximum: 1, default: 0 }),
    DOWNSTREAM_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 30000 }),
  },
  { $id: schemaId('config/pipeline'), additionalProperties: true },
);
export type PipelineConfig = Static<typeof PipelineConfig>;
