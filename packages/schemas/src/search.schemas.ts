import { Type, type Static } from '@sinclair/typebox';
import { CommonConfigProps, PageOf, PageQueryProps, Envelope, Metadata, RelativePath, Score, schemaId } from './common.schemas.js';

export const MAX_NEIGHBORS = 1000;
export const MAX_DIMENSION = 4096;
export const MAX_UPSERT_ITEMS = 1000;
export const MAX_DELETE_ITEMS = 10000;
/** Serialized size cap of one item's metadata: it is kept in memory and in every snapshot. */
export const MAX_METADATA_BYTES = 16 * 1024;
/** Nesting depth cap of metadata: serialising and storing it must never exhaust the stack. */
export const MAX_METADATA_DEPTH = 32;
/** Regional fingerprints per image (the encoder's R-MAC grid has 13). */
export const MAX_REGIONS = 16;

const Vector = Type.Array(Type.Number(), { minItems: 1, maxItems: MAX_DIMENSION });

export const SearchRequest = Type.Object(
  {
    nb_neighbors: Type.Integer({ minimum: 1, maximum: MAX_NEIGHBORS }),
    vec_features: Vector,
    min_score: Type.Optional(Score),
    ef: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
  },
  { $id: schemaId('search/search-request'), additionalProperties: false },
);
export type SearchRequest = Static<typeof SearchRequest>;

/** Set when a region of the image scored best (its index in the image's `regions`), absent for the whole image. */
const RegionIndex = Type.Optional(Type.Integer({ minimum: 0 }));

export const Neighbor = Type.Object({
  relative_path: Type.String(),
  score: Score,
  region: RegionIndex,
  metadata: Type.Optional(Metadata),
});
export type Neighbor = Static<typeof Neighbor>;

export const SearchResponse = Envelope('search/search-response', Type.Object({ neighbors: Type.Array(Neighbor) }));
export type SearchResponse = Static<typeof SearchResponse>;

/** Vectors of one batch search (the 8 orientations of a query, its regions, ...). */
export const MAX_BATCH_QUERIES = 64;
/** Neighbours an image's hubness is averaged over, at most. */
export const MAX_HUBNESS_K = 100;

export const SearchBatchRequest = Type.Object(
  {
    queries: Type.Array(Type.Object({ vec_features: Vector }, { additionalProperties: false }), { minItems: 1, maxItems: MAX_BATCH_QUERIES }),
    /** Neighbours searched per vector, as in /search. */
    nb_neighbors: Type.Integer({ minimum: 1, maximum: MAX_NEIGHBORS }),
    min_score: Type.Optional(Score),
    ef: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
    /** At most this many merged neighbours are returned (default: the whole union). */
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_NEIGHBORS * MAX_BATCH_QUERIES })),
    /** Also give each returned image its `hubness`: the mean score of its this many nearest other images. */
    hubness_k: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_HUBNESS_K })),
  },
  { $id: schemaId('search/search-batch-request'), additionalProperties: false },
);
export type SearchBatchRequest = Static<typeof SearchBatchRequest>;

export const BatchNeighbor = Type.Object({
  relative_path: Type.String(),
  score: Score,
  /** Index (in `queries`) of the vector that scored best for this path. */
  query: Type.Integer({ minimum: 0 }),
  region: RegionIndex,
  metadata: Type.Optional(Metadata),
  /**
   * With `hubness_k`: the mean score of this image's hubness_k nearest other images. An image
   * close to much of the collection (flat, plain, generic) scores high against any query
   * too, so a re-ranker can discount it.
   */
  hubness: Type.Optional(Score),
});
export type BatchNeighbor = Static<typeof BatchNeighbor>;

/** The union of the neighbours of every vector, each path once with its best score, best first. */
export const SearchBatchResponse = Envelope('search/search-batch-response', Type.Object({ neighbors: Type.Array(BatchNeighbor) }));
export type SearchBatchResponse = Static<typeof SearchBatchResponse>;

export const VectorItem = Type.Object(
  {
    relative_path: RelativePath,
    vec_features: Vector,
    metadata: Type.Optional(Metadata),
    /** Fingerprints of regions of the image: stored, replaced and deleted with it; a search scores the image by its best one. */
    regions: Type.Optional(Type.Array(Vector, { maxItems: MAX_REGIONS })),
  },
  { additionalProperties: false },
);
export type VectorItem = Static<typeof VectorItem>;

export const UpsertRequest = Type.Object(
  { items: Type.Array(VectorItem, { minItems: 1, maxItems: MAX_UPSERT_ITEMS }) },
  { $id: schemaId('search/upsert-request'), additionalProperties: false },
);
export type UpsertRequest = Static<typeof UpsertRequest>;
export const UpsertResponse = Envelope(
  'search/upsert-response',
  Type.Object({ inserted: Type.Integer(), replaced: Type.Integer(), count: Type.Integer() }),
);
export type UpsertResponse = Static<typeof UpsertResponse>;

export const DeleteRequest = Type.Object(
  { relative_paths: Type.Array(RelativePath, { minItems: 1, maxItems: MAX_DELETE_ITEMS }) },
  { $id: schemaId('search/delete-request'), additionalProperties: false },
);
export type DeleteRequest = Static<typeof DeleteRequest>;
export const DeleteResponse = Envelope(
  'search/delete-response',
  Type.Object({ deleted: Type.Integer(), not_found: Type.Array(Type.String()), count: Type.Integer() }),
);
export type DeleteResponse = Static<typeof DeleteResponse>;

export const LookupRequest = Type.Object(
  { relative_paths: Type.Array(RelativePath, { minItems: 1, maxItems: MAX_DELETE_ITEMS }) },
  { $id: schemaId('search/lookup-request'), additionalProperties: false },
);
export type LookupRequest = Static<typeof LookupRequest>;
/** The stored vector and metadata of each known path (in the order asked); unknown paths are listed in not_found. */
export const LookupResponse = Envelope(
  'search/lookup-response',
  Type.Object({
    items: Type.Array(Type.Object({ relative_path: Type.String(), vec_features: Type.Array(Type.Number()), metadata: Type.Optional(Metadata) })),
    not_found: Type.Array(Type.String()),
  }),
);
export type LookupResponse = Static<typeof LookupResponse>;

export const ListQuery = Type.Object(
  {
    ...PageQueryProps,
    include_vectors: Type.Optional(Type.Boolean({ default: false })),
  },
  { $id: schemaId('search/list-query'), additionalProperties: false },
);
export type ListQuery = Static<typeof ListQuery>;
export const ListResponse = Envelope(
  'search/list-response',
  PageOf(
    Type.Object({
      relative_path: Type.String(),
      metadata: Type.Optional(Metadata),
      vec_features: Type.Optional(Type.Array(Type.Number())),
    }),
  ),
);
export type ListResponse = Static<typeof ListResponse>;

export const DistanceType = Type.Union([Type.Literal('Cosine'), Type.Literal('L2'), Type.Literal('InnerProduct')]);
export type DistanceType = Static<typeof DistanceType>;

export const StatsResponse = Envelope(
  'search/stats-response',
  Type.Object({
    count: Type.Integer(),
    dimension: Type.Integer(),
    distance: DistanceType,
    mode: Type.Union([Type.Literal('hnsw'), Type.Literal('exact')]),
    index: Type.Object({
      M: Type.Integer(),
      ef_construction: Type.Integer(),
      ef_search: Type.Integer(),
      capacity: Type.Integer(),
    }),
    last_persisted: Type.Union([Type.String(), Type.Null()]),
    wal_records: Type.Integer(),
    /** Slots of deleted vectors waiting to be reused by the next inserts. */
    deleted_slots: Type.Integer(),
    /** Deleted paths remembered so a JSONL seed cannot resurrect them. */
    tombstones: Type.Integer(),
    /** Regional fingerprints stored beside the images' own. */
    region_vectors: Type.Optional(Type.Integer()),
    ready: Type.Boolean(),
    /** Which store answers: the embedded hnswlib index or PostgreSQL + pgvector. */
    backend: Type.Optional(Type.Union([Type.Literal('hnswlib'), Type.Literal('pgvector')])),
  }),
);
export type StatsResponse = Static<typeof StatsResponse>;

export const SearchConfig = Type.Object(
  {
    ...CommonConfigProps,
    SERVER_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8800 }),
    LOCATION: Type.String({ default: './embeddings', description: 'Folder of *.jsonl embedding files; also holds the persisted index.' }),
    DATA_DIR: Type.String({ default: '', description: 'Where the snapshot and WAL live; LOCATION/.index when empty.' }),
    BATCH_SIZE: Type.Integer({ minimum: 1, default: 1000, description: 'Lines per chunk when loading JSONL.' }),
    DIMENSION: Type.Integer({ minimum: 1, maximum: MAX_DIMENSION, default: 256 }),
    DISTANCE_TYPE: Type.Union([Type.Literal('Cosine'), Type.Literal('L2'), Type.Literal('InnerProduct')], { default: 'Cosine' }),
    HNSW_M: Type.Integer({ minimum: 2, maximum: 128, default: 16 }),
    HNSW_EF_CONSTRUCTION: Type.Integer({ minimum: 1, maximum: 4096, default: 100 }),
    HNSW_EF_SEARCH: Type.Integer({ minimum: 1, maximum: 10000, default: 64, description: 'The least ef (HNSW beam width) of a search that names none.' }),
    HNSW_EF_PER_K: Type.Integer({ minimum: 1, maximum: 100, default: 4, description: 'A search that names no ef runs with ef = max(HNSW_EF_SEARCH, HNSW_EF_PER_K x k).' }),
    INDEX_MODE: Type.Union([Type.Literal('auto'), Type.Literal('hnsw'), Type.Literal('exact')], { default: 'auto' }),
    EXACT_MAX: Type.Integer({ minimum: 0, default: 50, description: 'In auto mode, collections up to this size are searched exactly (measured crossover: bench/search).' }),
    SNAPSHOT_INTERVAL_MS: Type.Integer({ minimum: 0, default: 60000 }),
    SNAPSHOT_WAL_RECORDS: Type.Integer({ minimum: 1, default: 10000, description: 'Snapshot after this many logged mutations.' }),
    SNAPSHOT_KEEP: Type.Integer({ minimum: 1, maximum: 10, default: 2, description: 'Snapshots kept on disk; older ones are the fallback when the newest is corrupt.' }),
    WAL_RECOVERY: Type.Union([Type.Literal('strict'), Type.Literal('truncate')], {
      default: 'strict',
      description: 'strict: a corrupt WAL record or a missing segment stops the start naming it; truncate: accept the loss (the log is cut at the bad record, a copy kept as *.corrupt).',
    }),
    SEARCH_BACKEND: Type.Union([Type.Literal('hnswlib'), Type.Literal('pgvector')], {
      default: 'hnswlib',
      description: 'hnswlib: embedded index with WAL and snapshots; pgvector: PostgreSQL table with an HNSW index (stateless replicas).',
    }),
    DATABASE_URL: Type.String({ default: '', description: 'PostgreSQL connection string (pgvector backend), e.g. postgres://user:pass@host:5432/db.' }),
    DATABASE_TABLE: Type.String({ default: 'doppel_vectors', pattern: '^[a-z_][a-z0-9_]{0,62}$', description: 'Table of the pgvector backend (created with its HNSW index when missing).' }),
    DATABASE_POOL_SIZE: Type.Integer({ minimum: 1, maximum: 100, default: 10, description: 'PostgreSQL connections per process (pgvector backend).' }),
  },
  { $id: schemaId('config/contextual-search'), additionalProperties: true },
);
export type SearchConfig = Static<typeof SearchConfig>;
