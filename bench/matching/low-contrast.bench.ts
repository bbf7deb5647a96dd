/**
 * Calibrates SIFT_LOW_CONTRAST (not a test; prints the curve). In-process, on the
 * calibration half only (bench/matching/dev-split.bench.ts):
 * - positives: every calibration query of an original that has under SIFT_ADAPT_BELOW
 *   keypoints at the default contrast threshold, against that original;
 * - negatives: the same queries, and the calibration half's never-indexed low-texture
 *   queries, against every other index image.
 * For each contrast threshold, images under SIFT_ADAPT_BELOW keypoints are described again
 * at it (extractAdaptive, as the service does); SIFT alone decides (10 inliers, the
 * THRESHOLD 0.5 score), the dense check is not involved.
 *
 *   node --conditions=source --import tsx bench/matching/low-contrast.bench.ts [/work/shared/bench/dev]
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { MatchingConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { decodeImage, extractAdaptive, extractFeatures, mirrorFeatures, verifySift, type Features, type GreyImage, verifyOptionsOf } from '@doppel/instance-matching';
import { transformOf } from '@doppel/cli';
import { devSplit } from './dev-split.bench.js';

const dev = process.argv[2] ?? '/work/shared/bench/dev';
const config = loadConfig(MatchingConfig, { ...process.env, LOG_LEVEL: 'silent' });
const truth = (JSON.parse(await readFile(path.join(dev, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
const index = (await readdir(path.join(dev, 'index'))).sort();
const limits = { maxPixels: config.MAX_PIXELS, maxBytes: config.MAX_IMAGE_BYTES, width: config.WIDTH, height: config.HEIGHT, thumbSize: 32 };
const contrasts = (process.env.CT ?? '0.04,0.02,0.01,0.005').split(',').map(Number);
const below = config.SIFT_ADAPT_BELOW;
const opts = verifyOptionsOf(config);

const greys = new Map<string, GreyImage>();
for (const f of index) greys.set(f, (await decodeImage(await readFile(path.join(dev, 'index', f)), limits)).grey);
const low = new Set(index.filter((f) => extractFeatures(greys.get(f)!, config.MAX_KEYPOINTS).count < below));
const halfOf = devSplit(index, truth);
const queries = Object.keys(truth).sort().filter((q) => halfOf(q) === 'calibration' && (truth[q] ? low.has(truth[q]!) : true));
const queryGreys = new Map<string, GreyImage>();
for (const q of queries) queryGreys.set(q, (await decodeImage(await readFile(path.join(dev, 'queries', q)), limits)).grey);
console.log(`${low.size} index images under ${below} keypoints; ${queries.length} calibration queries considered`);
console.log('contrast  positives found  negative pairs  max negative inliers  negatives >= 5 inliers');
for (const ct of contrasts) {
  const ex = { maxKeypoints: config.MAX_KEYPOINTS, adaptBelow: below, lowContrast: ct };
  const targets = new Map<string, Features>(index.map((f) => [f, extractAdaptive(greys.get(f)!, ex)]));
  let pos = 0;
  let found = 0;
  let negPairs = 0;
  let negMax = 0;
  let neg5 = 0;
  const per = new Map<string, [number, number]>();
  for (const q of queries) {
    const plain = extractAdaptive(queryGreys.get(q)!, ex);
    // A never-indexed query only counts when it is itself low-texture.
    if (!truth[q] && extractFeatures(queryGreys.get(q)!, config.MAX_KEYPOINTS).count >= below) continue;
    const c = { plain, mirrored: mirrorFeatures(plain) };
    for (const t of index) {
      const n = verifySift(c, targets.get(t)!, opts, 10).inliers;
      if (t === truth[q]) {
        pos++;
        if (n >= 10) found++;
        const p = per.get(transformOf(q)) ?? [0, 0];
        p[0]++;
        if (n >= 10) p[1]++;
        per.set(transformOf(q), p);
      } else {
        negPairs++;
        negMax = Math.max(negMax, n);
        if (n >= 5) neg5++;
      }
    }
  }
  console.log(`${String(ct).padStart(8)}  ${`${found}/${pos}`.padStart(15)}  ${String(negPairs).padStart(14)}  ${String(negMax).padStart(20)}  ${String(neg5).padStart(22)}`);
  console.log(`          ${[...per].sort().map(([k, [n, f]]) => `${k} ${f}/${n}`).join(', ')}`);
}
