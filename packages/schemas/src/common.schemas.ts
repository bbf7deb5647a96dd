import { Type, type Static, type TSchema, type TObject } from '@sinclair/typebox';

/** Base of every schema `$id`; ids are stable identifiers, not fetchable URLs. */
export const SCHEMA_BASE = 'https://schemas.doppel.dev';
export const schemaId = (name: string): string => `${SCHEMA_BASE}/${name}.json`;

/**
 * The error catalogue. Codes are part of the public contract: clients branch on them,
 * so a code is never renamed, only added.
 */
export const ERROR_CATALOG = {
  INVALID_REQUEST: 400,
  INVALID_JSON: 400,
  FORBIDDEN_PATH: 403,
  IMAGE_NOT_FOUND: 404,
  NOT_FOUND: 404,
  REQUEST_TIMEOUT: 408,
  /** The index holds fingerprints of another model than the encoder's (re-index). */
  MODEL_MISMATCH: 409,
  HANDLE_EXPIRED: 410,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNDECODABLE_IMAGE: 422,
  OVERLOADED: 429,
  HEADERS_TOO_LARGE: 431,
  INTERNAL: 500,
  DOWNSTREAM_FAILURE: 502,
  UNAVAILABLE: 503,
  DOWNSTREAM_TIMEOUT: 504,
} as const;
export type ErrorCode = keyof typeof ERROR_CATALOG;
export const ERROR_CODES = Object.keys(ERROR_CATALOG) as ErrorCode[];

export const ErrorCodeSchema = Type.Union(ERROR_CODES.map((c) => Type.Literal(c)));

/** Failure envelope shared by every endpoint of every service. */
export const ErrorEnvelope = Type.Object(
  {
    global_status: Type.Literal(0),
    error_message: Type.String(),
    error_code: ErrorCodeSchema,
    response: Type.Object({}, { additionalProperties: false }),
  },
  { $id: schemaId('common/error-envelope'), additionalProperties: false },
);
export type ErrorEnvelope = Static<typeof ErrorEnvelope>;

/** Success envelope around a response body schema. */
export const Envelope = <T extends TSchema>(name: string, response: T) =>
  Type.Object(
    {
      global_status: Type.Literal(1),
      error_message: Type.Literal(''),
      response,
    },
    { $id: schemaId(name), additionalProperties: false },
  );

/** One failed item of a batch, reported in place of its result. */
export const ItemError = Type.Object(
  {
    error_code: ErrorCodeSchema,
    error_message: Type.String(),
    status: Type.Integer({ minimum: 400, maximum: 599 }),
  },
  { additionalProperties: true },
);
export type ItemError = Static<typeof ItemError>;

/** offset/limit of every paged listing. */
export const PageQueryProps = {
  offset: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
};

/** The answer of every paged listing: its items and where the page sits. */
export const PageOf = <T extends TSchema>(item: T) =>
  Type.Object({ total: Type.Integer(), offset: Type.Integer(), limit: Type.Integer(), items: Type.Array(item) });

export const RelativePath = Type.String({ minLength: 1, maxLength: 4096 });
/** base64 payloads are capped here too so a huge string is refused before decoding. */
export const Base64Image = Type.String({ minLength: 1, maxLength: 40 * 1024 * 1024 });
export const Score = Type.Number({ minimum: 0, maximum: 1 });
export const Metadata = Type.Record(Type.String({ maxLength: 256 }), Type.Unknown(), { maxProperties: 64 });

export const HealthResponse = Envelope(
  'common/health-response',
  Type.Object({ status: Type.Literal('ok'), service: Type.String() }),
);
export const ReadyCheck = Type.Object({ ok: Type.Boolean(), detail: Type.Optional(Type.String()) });
export const ReadyResponse = Envelope(
  'common/ready-response',
  Type.Object({
    ready: Type.Boolean(),
    service: Type.String(),
    checks: Type.Record(Type.String(), ReadyCheck),
    /** Services this one calls: reported, never part of `ready` (a restarting downstream must not take this one out of its load balancer). */
    downstream: Type.Optional(Type.Record(Type.String(), ReadyCheck)),
  }),
);
export const DownstreamHealthResponse = Envelope(
  'common/downstream-health-response',
  Type.Object({ ok: Type.Literal(true), service: Type.String(), downstream: Type.Record(Type.String(), ReadyCheck) }),
);
export type ReadyBody = Static<typeof ReadyResponse>['response'];

/**
 * Environment-variable config schemas: property names are the variable names. Only
 * string, integer, number and boolean leaves, so the kit can coerce env strings.
 */
export type ConfigSchema = TObject;

export const CommonConfigProps = {
  SERVER_HOST: Type.String({ default: '0.0.0.0', description: 'Interface to listen on.' }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info', description: 'pino log level.' },
  ),
  SHUTDOWN_TIMEOUT_MS: Type.Integer({ minimum: 0, default: 10000, description: 'Drain time on SIGTERM before forced exit.' }),
  BODY_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 30000, description: 'A request body must arrive whole within this time (slow clients get 408 and are dropped).' }),
  BODY_BUDGET_BYTES: Type.Integer({ minimum: 1, default: 268435456, description: 'Request body bytes (after decompression) buffered at once across all requests; past it new bodies get 503.' }),
  ADMIT_CONCURRENCY: Type.Integer({ minimum: 0, maximum: 1024, default: 0, description: 'Heavy requests worked on at once; 0: the service default (search 1, or 4 on pgvector; encoder max(4, 2 x NB_WORKERS); matcher 2 x NB_WORKERS; pipeline /duplicates 8, /index 2).' }),
  ADMIT_QUEUE: Type.Integer({ minimum: 0, default: 64, description: 'Heavy requests waiting for a slot before 429.' }),
  ADMIT_WAIT_MS: Type.Integer({ minimum: 1, default: 2000, description: 'Longest wait for a slot: a request whose expected wait is longer gets 429, one that waited this long 503 (both with Retry-After).' }),
};
