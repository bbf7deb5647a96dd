export { buildService, createBackend, dataDirOf, SERVICE_NAME, type AppDeps } from './app.js';
export { scoreOf } from './hnsw.index.js';
// The two index engines, which bench/search compares outside the service.
export { ExactIndex } from './exact.index.js';
export { HnswIndex } from './hnsw.index.js';
export { HnswlibBackend } from './hnswlib.backend.js';
export { PgvectorBackend } from './pgvector.backend.js';
export type { VectorBackend } from './vector.backend.js';
