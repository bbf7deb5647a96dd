export { createApp, createBackend, dataDirOf, SERVICE_NAME, type AppDeps } from './app.js';
export { scoreOf } from './hnsw.index.js';
export type { VectorBackend } from './vector.backend.js';
