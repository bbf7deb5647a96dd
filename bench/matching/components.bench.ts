/**
 * Cost of the pieces around a pair verification (not a test; prints figures): the
 * figures behind the design notes in services/instance-matching/README.md.
 *
 *   node --conditions=source --import tsx bench/matching/components.bench.ts [/work/shared/bench/dev]
 *
 * 1. Decoding one query in the service process (sharp: working size + thumbnail).
 * 2. 2-NN on 300x300 descriptors: the service's matcher (one matrix product through the BLAS,
 *    ratio test, one-to-one; plain and mirrored candidate in one product), against
 *    cv.batchDistance on float and on 8-bit input.
 * 3. The dense check of one pair of thumbnails.
 * 4. One verification through the worker pool: features sent in full every time, against
 *    held by the worker and sent by key; and a bare round trip of the pool.
 * 5. Coarse-to-fine: one undecided pair (both passes) against the working-size features and
 *    against the fine ones (FINE_SIDE, FINE_KEYPOINTS), in-process; and the fine extraction.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { MatchingConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import {
  candidateMatches, cv, decodeImage, denseCorrelation, mirrorFeatures, oneToOneMatches, extractAdaptive, extractCandidateFeatures, extractionOf, extractFeatures, fineExtractionOf, structureOf, verifySift, WorkerPool, type GreyImage, verifyOptionsOf,
} from '@doppel/instance-matching';

const dev = process.argv[2] ?? '/work/shared/bench/dev';
const config = loadConfig(MatchingConfig, { ...process.env, LOG_LEVEL: 'silent' });
const limits = { maxPixels: config.MAX_PIXELS, maxBytes: config.MAX_IMAGE_BYTES, width: config.WIDTH, height: config.HEIGHT, thumbSize: 32 };
const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
async function timeAsync(n: number, fn: () => Promise<unknown>): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
  }
  return p50(ms);
}
const time = (n: number, fn: () => unknown) => timeAsync(n, async () => fn());
cv.setNumThreads(1);

const queries = (await readdir(path.join(dev, 'queries'))).filter((f) => !f.startsWith('.')).sort().filter((_, i) => i % 30 === 0);
const bytes = await Promise.all(queries.map((q) => readFile(path.join(dev, 'queries', q))));
let k = 0;
console.log(`1. decode one query (sharp, ${queries.length} queries): p50 ${(await timeAsync(bytes.length * 2, () => decodeImage(bytes[k++ % bytes.length]!, limits))).toFixed(1)} ms`);

const index = (await readdir(path.join(dev, 'index'))).filter((f) => !f.startsWith('.')).sort();
const decoded = await Promise.all(index.map(async (f) => decodeImage(await readFile(path.join(dev, 'index', f)), limits)));
const full = decoded.map((d) => ({ d, f: extractFeatures(d.grey, config.MAX_KEYPOINTS) })).filter((x) => x.f.count === config.MAX_KEYPOINTS);
const [a, b] = [full[0]!.f, full[1]!.f];
const asMat = (desc: Uint8Array, n: number) => new cv.Mat(Buffer.from(desc.buffer, desc.byteOffset, n * 128), n, 128, cv.CV_8U);
const a8 = asMat(a.descriptors, a.count);
const b8 = asMat(b.descriptors, b.count);
const a32 = a8.convertTo(cv.CV_32F);
const b32 = b8.convertTo(cv.CV_32F);
const f32 = await time(200, () => cv.batchDistance(a32, b32, cv.CV_32F, cv.NORM_L2, 2));
const u8 = await time(50, () => cv.batchDistance(a8, b8, cv.CV_32F, cv.NORM_L2, 2));
// As in the service: the candidate's and the target's matrices are built once, then kept.
const viaProduct = await time(200, () => oneToOneMatches(a, b, config.RATIO_TEST, config.DESCRIPTOR_KERNEL));
const aBoth = { plain: a, mirrored: mirrorFeatures(a) };
const bothViaProduct = await time(200, () => {
  const m = candidateMatches(aBoth, b, config.DESCRIPTOR_KERNEL);
  return [m(false, config.RATIO_TEST), m(true, config.RATIO_TEST)];
});
console.log(`2. 2-NN, ${a.count}x${b.count}: the service's matcher (matrix product, ratio test, one-to-one) p50 ${viaProduct.toFixed(2)} ms, plain and mirrored candidate together ${bothViaProduct.toFixed(2)} ms; batchDistance alone: float p50 ${f32.toFixed(2)} ms, 8-bit p50 ${u8.toFixed(2)} ms`);

const thumbs: GreyImage[] = decoded.map((d) => d.thumb);
let j = 0;
console.log(`3. dense check, one pair of 32x32 thumbnails: p50 ${(await time(100, () => denseCorrelation(thumbs[j++ % thumbs.length]!, thumbs[(j + 7) % thumbs.length]!))).toFixed(2)} ms`);

const candidate = { features: extractCandidateFeatures(full[2]!.d.grey, extractionOf(config)), thumb: full[2]!.d.thumb, overlap: full[2]!.d.overlap, colour: full[2]!.d.colour, structure: structureOf(full[2]!.d.thumb), ownLong: Math.max(full[2]!.d.width, full[2]!.d.height) };
const targets = full.slice(3, 8).map((x) => ({ features: x.f, thumb: x.d.thumb, overlap: x.d.overlap, colour: x.d.colour, structure: structureOf(x.d.thumb), refinable: false, ownLong: Math.max(x.d.width, x.d.height) }));
const policy = { ...verifyOptionsOf(config), acceptInliers: 10, denseMinKeypoints: 0, denseMinEdgeStd: 0 };
for (const entries of [0, 2 ** 26]) {
  const pool = new WorkerPool({ size: 1, queueLimit: 10, sharedBytes: entries });
  await pool.run({ kind: 'probe' });
  let i = 0;
  const verify = () => {
    const n = i++ % targets.length;
    return pool.run({ kind: 'verify', candidate: { key: 'c', value: candidate }, target: { key: `t${n}`, value: targets[n]! }, policy });
  };
  for (let w = 0; w < targets.length; w++) await verify();
  const ms = await timeAsync(100, verify);
  const label = entries ? 'features held by the worker (sent by key)' : 'features sent with every pair';
  console.log(`4. verify through the pool, ${label}: p50 ${ms.toFixed(2)} ms`);
  if (!entries) console.log(`   bare round trip (probe): p50 ${(await timeAsync(100, () => pool.run({ kind: 'probe' }))).toFixed(2)} ms`);
  await pool.close();
}

// 5. The fine pass costs what a pair costs against a target with FINE_KEYPOINTS keypoints.
const fineOptions = fineExtractionOf(config) ?? { ...extractionOf(config), maxKeypoints: 4 * config.MAX_KEYPOINTS };
const fineSide = config.FINE_SIDE || 2 * config.WIDTH;
const fineBytes = await Promise.all(index.slice(0, 8).map((f) => readFile(path.join(dev, 'index', f))));
const fineImages = await Promise.all(fineBytes.map(async (b) => (await decodeImage(b, { ...limits, width: fineSide, height: fineSide })).grey));
let e = 0;
console.log(`5. fine extraction (${fineSide} px, ${fineOptions.maxKeypoints} keypoints): p50 ${(await time(8, () => extractAdaptive(fineImages[e++ % fineImages.length]!, fineOptions))).toFixed(1)} ms`);
const fines = fineImages.map((g) => extractAdaptive(g, fineOptions));
const coarses = full.slice(3, 8).map((x) => x.f);
const opts = verifyOptionsOf(config);
let u = 0;
const coarseMs = await time(100, () => verifySift(candidate.features, coarses[u++ % coarses.length]!, opts, 10));
const fineMs = await time(100, () => verifySift(candidate.features, fines[u++ % fines.length]!, opts, 10));
console.log(`   one unrelated pair, both passes: against working-size features p50 ${coarseMs.toFixed(2)} ms, against fine features (${fines.map((f) => f.count).join('/')} keypoints) p50 ${fineMs.toFixed(2)} ms`);
