export { buildService, SERVICE_NAME, type MatchingServiceDeps } from './app.js';
export { WorkerPool } from './worker.pool.js';
export { siftScore, denseScore, inliersFor, SCORE_HALF_INLIERS } from './match.service.js';
// The building blocks the benchmarks (bench/matching) time one by one.
export { decodeImage } from './image.decode.js';
export {
  cv, denseCorrelation, extractCandidateFeatures, extractFeatures, MIN_SPREAD_CELLS, verifyPass, verifySift,
  type CandidateFeatures, type Features, type GreyImage,
} from './sift.features.js';
