export { createApp, dataDirOf, SERVICE_NAME, type AppDeps } from './app.js';
export { scoreOf } from './hnsw.index.js';
