import { Type, type Static } from '@sinclair/typebox';
import { schemaId } from './common.schemas.js';
import { MAX_ID_LENGTH } from './pipeline.schemas.js';

/*
 * The drop-in routes speak other systems' formats (see the pipeline README, "Drop-in
 * routes"). Form fields and query parameters are strings on the wire: numbers and
 * booleans are declared as such and coerced by the kit's query parser.
 */

const Url = Type.String({ minLength: 1, maxLength: 2048 });
const FilePath = Type.String({ minLength: 1, maxLength: MAX_ID_LENGTH });

// ------------------------------------------------------------- /compat/match
export const MatchAddForm = Type.Object(
  { filepath: FilePath, url: Type.Optional(Url), metadata: Type.Optional(Type.String({ maxLength: 64 * 1024 })) },
  { $id: schemaId('compat/match-add-form'), additionalProperties: false },
);
export const MatchDeleteForm = Type.Object({ filepath: FilePath }, { $id: schemaId('compat/match-delete-form'), additionalProperties: false });
export const MatchSearchForm = Type.Object(
  { url: Type.Optional(Url), all_orientations: Type.Optional(Type.String({ maxLength: 8 })) },
  { $id: schemaId('compat/match-search-form'), additionalProperties: false },
);
export const MatchCompareForm = Type.Object(
  { url1: Type.Optional(Url), url2: Type.Optional(Url) },
  { $id: schemaId('compat/match-compare-form'), additionalProperties: false },
);
export const MatchListQuery = Type.Object(
  { offset: Type.Optional(Type.Integer({ minimum: 0 })), limit: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })) },
  { $id: schemaId('compat/match-list-query'), additionalProperties: false },
);
export const MatchEnvelope = Type.Object(
  {
    status: Type.Union([Type.Literal('ok'), Type.Literal('fail')]),
    error: Type.Array(Type.String()),
    method: Type.String(),
    result: Type.Array(Type.Unknown()),
  },
  { $id: schemaId('compat/match-envelope'), additionalProperties: false },
);
export type MatchEnvelope = Static<typeof MatchEnvelope>;

// ------------------------------------------------------------- /compat/image-matching
export const IMAGE_MATCHING_TYPES = [
  'get_feature_filename', 'get_feature_base64', 'get_feature_link',
  'match_filename', 'match_base64', 'match_link', 'match_feature',
] as const;
export const ImageMatchingRequest = Type.Object(
  {
    type: Type.Union(IMAGE_MATCHING_TYPES.map((t) => Type.Literal(t))),
    image: Type.String({ minLength: 1, maxLength: 40 * 1024 * 1024 }),
    accuracy: Type.Optional(Type.Union([Type.Number({ minimum: 0, maximum: 1 }), Type.String({ pattern: '^(0(\\.[0-9]+)?|1(\\.0+)?)$' })])),
  },
  { $id: schemaId('compat/image-matching-request'), additionalProperties: false },
);
export type ImageMatchingRequest = Static<typeof ImageMatchingRequest>;
export const ImageMatchingResponse = Type.Object(
  {
    result: Type.Union([
      Type.Object({ feature: Type.String() }),
      Type.Object({ match: Type.Array(Type.Object({ filename: Type.String(), score: Type.Number(), metadata: Type.Optional(Type.Unknown()) })) }),
      Type.Object({}),
    ]),
    error: Type.Optional(Type.String()),
  },
  { $id: schemaId('compat/image-matching-response') },
);

// ------------------------------------------------------------- /compat/image-search
export const ImageSearchAddQuery = Type.Object(
  { image: Type.String({ minLength: 1, maxLength: 4096 }), limit: Type.Optional(Type.Integer({ minimum: 1 })) },
  { $id: schemaId('compat/image-search-add-query'), additionalProperties: false },
);
export const ImageSearchSearchQuery = Type.Object(
  { image: Type.String({ minLength: 1, maxLength: 4096 }), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) },
  // `compare` (the original's optional re-rankers, repeatable) is dropped before validation: see the README.
  { $id: schemaId('compat/image-search-search-query'), additionalProperties: false },
);
export const ImageSearchAddResponse = Type.Object(
  { message: Type.String(), added: Type.Integer(), skipped: Type.Integer() },
  { $id: schemaId('compat/image-search-add-response') },
);
export const ImageSearchSearchResponse = Type.Object(
  { results: Type.Array(Type.Object({ image: Type.String(), distance: Type.Number() })) },
  { $id: schemaId('compat/image-search-search-response') },
);
export const ImageSearchStatsResponse = Type.Object({ images: Type.Integer() }, { $id: schemaId('compat/image-search-stats-response') });
export const ImageSearchError = Type.Object({ error: Type.String() }, { $id: schemaId('compat/image-search-error') });

// ------------------------------------------------------------- /compat/imagenet-feature
const ItemId = Type.Union([Type.String({ minLength: 1, maxLength: MAX_ID_LENGTH }), Type.Integer()]);
export const SaveImagenetFeatureRequest = Type.Object(
  { item_id: ItemId, img_url: Url },
  { $id: schemaId('compat/save-imagenet-feature-request'), additionalProperties: true },
);
export const SaveAllImageInfoRequest = Type.Object(
  { item_id: ItemId, item_name: Type.String({ maxLength: 4096 }), category_id: Type.Union([Type.String({ maxLength: 256 }), Type.Integer()]), img_url: Url },
  { $id: schemaId('compat/save-all-image-info-request'), additionalProperties: true },
);
export const GetImagenetFeatureQuery = Type.Object({ img_url: Url }, { $id: schemaId('compat/get-imagenet-feature-query'), additionalProperties: false });
export const ImagenetFeatureResponse = Type.Object(
  { imagenet_feature: Type.Array(Type.Number()) },
  { $id: schemaId('compat/imagenet-feature-response') },
);
/** saveImagenetFeature / saveAllImageInfo answer the index operation's result as text, like Elasticsearch's `result`. */
export const SaveResultText = Type.Union([Type.Literal('created'), Type.Literal('updated')], { $id: schemaId('compat/save-result-text') });
