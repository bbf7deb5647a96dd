/**
 * Re-exports for bench/matching: under pnpm, bare imports resolve only inside a package,
 * and the repository-level bench folder is not one. Never imported by the service itself.
 */
export { default as sharp } from 'sharp';
export { cv, type GreyImage } from './opencv.binding.js';
export { MatchingConfig } from '@doppel/schemas';
export { createLogger, loadConfig, Registry, serve } from '@doppel/service-kit';
export { createApp } from './app.js';
export { WorkerPool } from './worker.pool.js';
export { extractionOf, inliersFor } from './match.service.js';
export { decodeImage } from './image.decode.js';
export { denseCorrelation } from './dense.check.js';
export { structureOf } from './structure.measure.js';
export { extractAdaptive, extractFeatures, type Features } from './sift.extract.js';
export { extractCandidateFeatures, type CandidateFeatures } from './sift.mirror.js';
export { MIN_SPREAD_CELLS, verifyPass, verifySift } from './sift.verify.js';

/** POST JSON and parse the envelope (the bench has no access to the test helpers). */
export async function postJson(base: string, route: string, body: unknown): Promise<{ status: number; response: unknown; error: string }> {
  const r = await fetch(base + route, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const j = (await r.json()) as { response: unknown; error_message: string };
  return { status: r.status, response: j.response, error: j.error_message };
}
