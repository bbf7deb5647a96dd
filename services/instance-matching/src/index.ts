export { buildService, SERVICE_NAME, type MatchingServiceDeps } from './app.js';
export { WorkerPool } from './worker.pool.js';
export { siftScore, denseScore, extractionOf, fineExtractionOf, inliersFor, SCORE_HALF_INLIERS, verifyOptionsOf } from './match.service.js';
// The building blocks the benchmarks (bench/matching) time one by one.
export { decodeImage } from './image.decode.js';
export { cv, type GreyImage } from './opencv.binding.js';
export { denseCheck, denseCorrelation, overlapMapOf } from './dense.check.js';
export { cropSearch, inFrameTurn, rotationSearch, DENSE_CROP_FRACTIONS, ROTATION_ANGLES } from './crop.search.js';
export { alignedAgreement, clears, pinnedAgreement, placementHolds, thumbTransform, OVERLAP_MIN_PIXELS, OVERLAP_SIDE, PIN_SLIDES } from './overlap.check.js';
export { linearScale, mul3 } from './transform.geometry.js';
export { structureOf } from './structure.measure.js';
export { extractAdaptive, extractFeatures, type Features } from './sift.extract.js';
export { extractCandidateFeatures, mirrorFeatures, type CandidateFeatures } from './sift.mirror.js';
export { MIN_SPREAD_CELLS, verifyPass, verifySift } from './sift.verify.js';
export { candidateMatches, oneToOneMatches, type DescriptorKernel } from './descriptor.match.js';
export type { Hypothesis, SiftVerification } from './sift.verify.js';
export { aspectGap, toneAgreement } from './tone.check.js';
