import { Type, type Static } from '@sinclair/typebox';
import { Base64Image, CommonConfigProps, Envelope, ItemError, RelativePath, schemaId } from './common.schemas.js';

export const ORIENTATION_NAMES = [
  'identity', 'rot90', 'rot180', 'rot270', 'flip', 'flip_rot90', 'flip_rot180', 'flip_rot270',
] as const;

/**
 * Which orientations of an image are encoded: `none` its own; `turns` its 4 quarter turns
 * (the first 4 of ORIENTATION_NAMES); `all` the 8 turns and mirrors. One session.run each.
 */
export const Orientations = Type.Union([Type.Literal('none'), Type.Literal('turns'), Type.Literal('all')]);
export type Orientations = Static<typeof Orientations>;
/** Fingerprints (forward-pass rows) each choice of `orientations` makes. */
export const ORIENTATION_ROWS: Readonly<Record<Orientations, 1 | 4 | 8>> = Object.freeze({ none: 1, turns: 4, all: 8 });

/** The image source fields shared by every request that carries one image. */
export const ImageSourceProps = {
  relative_path: Type.Optional(RelativePath),
  image_base64: Type.Optional(Base64Image),
  url: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
};
/** Exactly one source: expressed as oneOf over `required`, so ajv names the problem. */
export const exactlyOneImageSource = {
  oneOf: [
    { required: ['relative_path'] },
    { required: ['image_base64'] },
    { required: ['url'] },
  ],
};

const EncodeItemProps = {
  request_id: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
  ...ImageSourceProps,
  orientations: Type.Optional(Orientations),
  /** Also return the image's entries to index beside its fingerprint: its regions (REGIONS on the encoder), then its greyscale fingerprint (GREY_ENTRY). */
  regions: Type.Optional(Type.Boolean()),
};

export const EncodeRequest = Type.Object(EncodeItemProps, {
  $id: schemaId('encoder/encode-request'),
  additionalProperties: false,
  ...exactlyOneImageSource,
});
export type EncodeRequest = Static<typeof EncodeRequest>;

const Fingerprint = Type.Array(Type.Number(), { minItems: 1 });
export const OrientationFingerprint = Type.Object({
  name: Type.Union(ORIENTATION_NAMES.map((n) => Type.Literal(n))),
  fingerprint: Fingerprint,
});

export const EncodeResult = Type.Object({
  request_id: Type.Integer(),
  fingerprint: Fingerprint,
  dimension: Type.Integer({ minimum: 1 }),
  model: Type.String(),
  orientations: Type.Optional(Type.Array(OrientationFingerprint)),
  /** When asked: fingerprints of regions of the (unrotated) image (REGIONS), then of its greyscale version (GREY_ENTRY, colour images only). */
  regions: Type.Optional(Type.Array(Fingerprint)),
});
export type EncodeResult = Static<typeof EncodeResult>;

export const EncodeResponse = Envelope('encoder/encode-response', EncodeResult);
export type EncodeResponse = Static<typeof EncodeResponse>;

export const MAX_ENCODE_BATCH = 64;
export const EncodeBatchRequest = Type.Object(
  {
    items: Type.Array(
      Type.Object(EncodeItemProps, { additionalProperties: false, ...exactlyOneImageSource }),
      { minItems: 1, maxItems: MAX_ENCODE_BATCH },
    ),
  },
  { $id: schemaId('encoder/encode-batch-request'), additionalProperties: false },
);
export type EncodeBatchRequest = Static<typeof EncodeBatchRequest>;

export const EncodeBatchItemError = Type.Intersect([
  Type.Object({ request_id: Type.Integer() }),
  ItemError,
]);
export type EncodeBatchItemError = Static<typeof EncodeBatchItemError>;
/** One item of a batch request (same fields as a single request). */
export type EncodeItem = EncodeBatchRequest['items'][number];
export const EncodeBatchResponse = Envelope(
  'encoder/encode-batch-response',
  Type.Object({ results: Type.Array(Type.Union([EncodeResult, EncodeBatchItemError])) }),
);
export type EncodeBatchResponse = Static<typeof EncodeBatchResponse>;

/**
 * The non-file fields of a multipart/form-data /encode (form fields are strings).
 * The file itself is the field `image`.
 */
export const EncodeMultipartFields = Type.Object(
  {
    request_id: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
    orientations: Type.Optional(Orientations),
  },
  { $id: schemaId('encoder/encode-multipart-fields'), additionalProperties: false },
);
export type EncodeMultipartFields = Static<typeof EncodeMultipartFields>;

export const EncoderConfig = Type.Object(
  {
    ...CommonConfigProps,
    SERVER_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8500 }),
    IMAGES_ROOT: Type.String({ default: './images', description: 'Root that relative_path is resolved under.' }),
    MODEL_PATH: Type.String({ default: '', description: 'ONNX model file; overrides MODELS_DIR/MODELS_NAME.' }),
    MODELS_DIR: Type.String({ default: './models', description: 'Directory holding models.' }),
    MODELS_NAME: Type.String({ default: 'resnet18.onnx', description: 'Model file name inside MODELS_DIR.' }),
    MODEL_PRECISION: Type.Union([Type.Literal('fp32'), Type.Literal('int8')], { default: 'fp32', description: 'int8: load the QDQ-quantised file written by `pnpm quantize` beside the model (`x.onnx` -> `x.int8.onnx`); fp32: the model itself.' }),
    FEATURE_TENSOR: Type.String({ default: '', description: 'Tensor to pool into the fingerprint; found automatically when empty.' }),
    INPUT_SIZE: Type.Integer({ minimum: 0, maximum: 2048, default: 0, description: 'Model input side; read from the model when 0.' }),
    RESIZE_MODE: Type.Union([Type.Literal('whole'), Type.Literal('center-crop')], { default: 'center-crop', description: 'center-crop: largest centred square (measured better recall, see the encoder README); whole: squash the whole image.' }),
    TRIM_BORDERS: Type.Boolean({ default: false, description: 'Cut uniform borders, bars and app frames off before resizing. Off: it lowered candidate recall on dev v3 with distractors (bench/encoder/candidates.bench.ts, encoder README).' }),
    REGIONS: Type.Union([Type.Literal('none'), Type.Literal('rmac')], { default: 'none', description: 'rmac: also pool 13 regions of the feature map (R-MAC grid, levels 2 and 3), indexed with the image so a crop meets its region. Off by default: +0.001 to +0.004 candidate recall@10 on dev v3 for 14x the vectors (encoder README).' }),
    GREY_ENTRY: Type.Boolean({ default: false, description: 'Index each colour image with a second, greyscale fingerprint (the last of its `regions`; one more forward pass per indexed image), so a greyscale copy meets the colourless version of its original. Off by default: at 10,000 distractors it lifted gray and thumb120_q40 but cost crop_strip, +0.001 candidate recall@10 overall for a second k-NN search per query vector (encoder README).' }),
    WHITENING_PATH: Type.String({ default: 'auto', description: 'PCA whitening applied to every fingerprint (the model name gets `+pca`). auto: the fit beside the model (`x.onnx` -> `x.pca.json`, written by `pnpm models`; for int8 `x.int8.pca.json`, written by `pnpm quantize`) when it is there, refusing to start if it was fitted for another model; plain fingerprints (and a warning) without it. none: plain. A path: that file (`fit-whitening`). Changes the fingerprints: re-index after changing it (the pipeline re-encodes files of another model). Measured with the fit `pnpm models` makes: candidate recall@10 with 10,000 distractors, re-ranked, 0.982 -> 0.993 (encoder README).' }),
    POOLING: Type.Union([Type.Literal('gap'), Type.Literal('gem')], { default: 'gap', description: 'Pooling of the feature map: average, or generalised mean (p = 3).' }),
    NB_WORKERS: Type.Integer({ minimum: 1, maximum: 64, default: 1, description: 'Inference worker threads.' }),
    INTRA_OP_THREADS: Type.Integer({ minimum: 1, maximum: 64, default: 2, description: 'onnxruntime intra-op threads per worker (NB_WORKERS x this should fit the cores).' }),
    INTRA_OP_SPINNING: Type.Boolean({ default: false, description: 'Let idle onnxruntime threads spin for the next run: a little less latency on an idle machine, a core burnt while waiting otherwise. Measured: bench/encoder/spinning.bench.ts (encoder README).' }),
    MAX_BATCH: Type.Integer({ minimum: 1, maximum: 256, default: 16, description: 'Largest micro-batch per session.run.' }),
    BATCH_WINDOW_MS: Type.Integer({ minimum: 0, maximum: 1000, default: 2, description: 'How long an idle worker waits for more images to batch.' }),
    QUEUE_LIMIT: Type.Integer({ minimum: 1, default: 256, description: 'Images waiting for inference before 429.' }),
    MAX_IMAGE_BYTES: Type.Integer({ minimum: 1, default: 20 * 1024 * 1024, description: 'Largest image (file, base64, upload or url download), in bytes.' }),
    MAX_PIXELS: Type.Integer({ minimum: 1, default: 50_000_000, description: 'Decompression-bomb guard.' }),
    URL_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 10000, description: 'Whole download of a `url` source, redirects included.' }),
    ALLOW_PRIVATE_URLS: Type.Boolean({ default: false, description: 'Let `url` reach loopback/private/link-local addresses (tests, trusted networks).' }),
    URL_MAX_REDIRECTS: Type.Integer({ minimum: 0, maximum: 3, default: 3, description: 'Redirects followed when downloading `url`.' }),
    MODEL_SHA256: Type.String({ default: '', pattern: '^([0-9a-f]{64})?$', description: 'Expected sha256 of the model file; checked at load when set.' }),
    MAX_BATCH_BODY_BYTES: Type.Integer({ minimum: 1, default: 100 * 1024 * 1024, description: 'Body limit of /encode/batch.' }),
    DECODE_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 64, default: 4, description: 'Images of one batch request decoded at once.' }),
  },
  { $id: schemaId('config/image-encoder'), additionalProperties: true },
);
export type EncoderConfig = Static<typeof EncoderConfig>;
