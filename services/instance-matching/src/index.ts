export { createApp, SERVICE_NAME, type AppDeps } from './app.js';
export { WorkerPool } from './worker.pool.js';
export { siftScore, denseScore, inliersFor, SCORE_HALF_INLIERS } from './match.service.js';
