import { Type, type Static } from '@sinclair/typebox';
import { Base64Image, CommonConfigProps, Envelope, ItemError, RelativePath, schemaId } from './common.schemas.js';

export const ORIENTATION_NAMES = [
  'identity', 'rot90', 'rot180', 'rot270', 'flip', 'flip_rot90', 'flip_rot180', 'flip_rot270',
] as const;

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
  orientations: Type.Optional(Type.Union([Type.Literal('none'), Type.Literal('all')])),
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
export const EncodeBatchResponse = Envelope(
  'encoder/encode-batch-response',
  Type.Object({ results: Type.Array(Type.Union([EncodeResult, EncodeBatchItemError])) }),
);
export type EncodeBatchResponse = Static<typeof EncodeBatchResponse>;

export const EncoderConfig = Type.Object(
  {
    ...CommonConfigProps,
    SERVER_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8500 }),
    IMAGES_ROOT: Type.String({ default: './images', description: 'Root that relative_path is resolved under.' }),
    MODEL_PATH: Type.String({ default: '', description: 'ONNX model file; overrides MODELS_DIR/MODELS_NAME.' }),
    MODELS_DIR: Type.String({ default: './models', description: 'Directory holding models.' }),
    MODELS_NAME: Type.String({ default: 'resnet18.onnx', description: 'Model file name inside MODELS_DIR.' }),
    FEATURE_TENSOR: Type.String({ default: '', description: 'Tensor to pool into the fingerprint; found automatically when empty.' }),
    INPUT_SIZE: Type.Integer({ minimum: 0, maximum: 2048, default: 0, description: 'Model input side; read from the model when 0.' }),
    RESIZE_MODE: Type.Union([Type.Literal('whole'), Type.Literal('center-crop')], { default: 'whole' }),
    NB_WORKERS: Type.Integer({ minimum: 1, maximum: 64, default: 1, description: 'Inference worker threads.' }),
    INTRA_OP_THREADS: Type.Integer({ minimum: 1, maximum: 64, default: 2 }),
    MAX_BATCH: Type.Integer({ minimum: 1, maximum: 256, default: 16, description: 'Largest micro-batch per session.run.' }),
    BATCH_WINDOW_MS: Type.Integer({ minimum: 0, maximum: 1000, default: 2 }),
    QUEUE_LIMIT: Type.Integer({ minimum: 1, default: 256, description: 'Images waiting for inference before 429.' }),
    MAX_IMAGE_BYTES: Type.Integer({ minimum: 1, default: 20 * 1024 * 1024 }),
    MAX_PIXELS: Type.Integer({ minimum: 1, default: 50_000_000, description: 'Decompression-bomb guard.' }),
    URL_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 10000 }),
    ALLOW_PRIVATE_URLS: Type.Boolean({ default: false }),
  },
  { $id: schemaId('config/image-encoder'), additionalProperties: true },
);
export type EncoderConfig = Static<typeof EncoderConfig>;
