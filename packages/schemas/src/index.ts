export * from './common.schemas.js';
export * from './encoder.schemas.js';
export * from './search.schemas.js';
export * from './matching.schemas.js';
export * from './pipeline.schemas.js';
export * from './ajv.js';
export * from './openapi.js';
export { Type } from '@sinclair/typebox';
export type { Static, TSchema, TObject } from '@sinclair/typebox';
