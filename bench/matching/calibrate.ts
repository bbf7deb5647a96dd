/**
 * Calibration on the dev benchmark (not a test; prints figures).
 *
 *   DENSE_MIN_EDGE_STD=0 node --conditions=source --import tsx bench/matching/calibrate.ts [/work/shared/bench/dev]
 *
 * Every query is verified by the real service (HTTP, port 0) against ALL index images
 * (its true original and 43 hard negatives), with threshold=1 so every score comes back.
 * Env overrides (WIDTH, HEIGHT, MAX_KEYPOINTS, RANSAC_MODEL, RATIO_TEST, ...) are passed to
 * the service config, so alternatives can be measured with the same command.
 *
 * The dev set is split by originals (bench/matching/dev-split.bench.ts). The curves for
 * THRESHOLD, DENSE_MIN_CORRELATION and DENSE_MIN_EDGE_STD are printed on the calibration
 * half, and each is chosen there by a stated rule; the held-back half and both halves are
 * then reported at the chosen values, v2 and v3 transforms apart. Run with
 * DENSE_MIN_EDGE_STD=0 so that the service runs the dense check on every low-texture pair
 * and the structure gate can be swept offline (each side's structure is measured here with
 * the service's own function). STEP=n keeps every n-th query; RAW=file.json keeps the rows.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import sharp from 'sharp';
import { MatchingConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { listen } from '@doppel/service-kit/testing';
import { postJson } from './post-json.http.js';
import { buildService, decodeImage, denseScore, extractFeatures, structureOf } from '@doppel/instance-matching';
import { originalOfQuery, scoreQueries, transformOf } from '@doppel/cli';
import { devSplit, V2_TRANSFORMS, type Half } from './dev-split.bench.js';
import pLimit from 'p-limit';

const dev = process.argv[2] ?? '/work/shared/bench/dev';
const config = loadConfig(MatchingConfig, {
  ...process.env,
  LOG_LEVEL: 'silent',
  SOURCE_DIR: path.join(dev, 'queries'),
  TARGET_DIR: path.join(dev, 'index'),
  QUEUE_LIMIT: '100000',
});
const truth = (JSON.parse(await readFile(path.join(dev, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
const index = (await readdir(path.join(dev, 'index'))).filter((f) => !f.startsWith('.')).sort();
const queries = Object.keys(truth).sort();
const step = Number(process.env.STEP ?? 1);

interface Checked { relative_path: string; score: number; inliers: number; method: 'sift' | 'dense'; reason?: string }
interface Row { query: string; original: string; transform: string; truth: string | null; half: Half; checked: Checked[] }
const halfOf = devSplit(index, truth);

let rows: Row[] = [];
let elapsed = 0;
const edgeOf = new Map<string, number>();
if (process.env.FROM) {
  // Re-score rows kept by an earlier run (RAW=...), e.g. to report at other knobs without re-verifying.
  const kept = JSON.parse(await readFile(process.env.FROM, 'utf8')) as { rows: Row[]; edge: Record<string, number>; elapsed?: number };
  rows = kept.rows;
  elapsed = kept.elapsed ?? 0;
  for (const [k, v] of Object.entries(kept.edge)) edgeOf.set(k, v);
} else {
  const { base: baseUrl, close } = await listen(buildService(config));
  const t0 = performance.now();
  const todo = queries.filter((_, i) => i % step === 0);
  await pLimit(4).map(todo, async (q) => {
    const r = await postJson(baseUrl, '/match', { candidate: q, neighbors: index, threshold: 1 });
    if (r.status !== 200) throw new Error(`${q}: ${r.status} ${r.error}`);
    rows.push({ query: q, original: originalOfQuery(q), transform: transformOf(q), truth: truth[q] ?? null, half: halfOf(q), checked: (r.response as { checked: Checked[] }).checked });
  });
  elapsed = (performance.now() - t0) / 1000;
  await close();
  // Structure of every image, measured as the service measures it (its 32x32 thumbnail).
  const limits = { maxPixels: config.MAX_PIXELS, maxBytes: config.MAX_IMAGE_BYTES, width: config.WIDTH, height: config.HEIGHT, thumbSize: 32 };
  for (const f of index) edgeOf.set(`i/${f}`, structureOf((await decodeImage(await readFile(path.join(dev, 'index', f)), limits)).thumb).edgeStd);
  for (const r of rows) edgeOf.set(`q/${r.query}`, structureOf((await decodeImage(await readFile(path.join(dev, 'queries', r.query)), limits)).thumb).edgeStd);
  if (process.env.RAW) await writeFile(process.env.RAW, JSON.stringify({ config, rows, elapsed, edge: Object.fromEntries(edgeOf) }));
}

interface Knobs { t: number; cutoff: number; edge: number }
const chosenCutoff = config.DENSE_MIN_CORRELATION;
/** The thumbnail correlation behind a dense score (the inverse of the service's mapping). */
const correlationOf = (c: Checked) =>
  c.score <= config.THRESHOLD ? (c.score * chosenCutoff) / config.THRESHOLD : chosenCutoff + ((c.score - config.THRESHOLD) * (1 - chosenCutoff)) / (1 - config.THRESHOLD);
/** The score a pair would get under other dense knobs: the dense score is re-mapped from its correlation. */
function scoreUnder(r: Row, c: Checked, k: Knobs): number {
  if (c.method !== 'dense') return c.score;
  if (Math.min(edgeOf.get(`q/${r.query}`)!, edgeOf.get(`i/${c.relative_path}`)!) < k.edge) return c.inliers / (c.inliers + 10);
  // Invert the service's mapping (cutoff chosenCutoff -> THRESHOLD), then map with the swept cutoff.
  return Math.max(c.inliers / (c.inliers + 10), denseScore(correlationOf(c), k.cutoff, config.THRESHOLD));
}

/** The dev-set scoring of the pipeline bench, with every score >= t declared a duplicate. */
function evaluate(k: Knobs, subset: Row[]) {
  const s = scoreQueries(subset.map((r) => ({
    query: r.query,
    expected: r.truth,
    declared: r.checked.filter((c) => scoreUnder(r, c, k) >= k.t).map((c) => c.relative_path),
  })));
  return { ...s, fp: s.wrong };
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
const calib = rows.filter((r) => r.half === 'calibration');
const held = rows.filter((r) => r.half === 'held-back');
console.log(`config: WIDTH=${config.WIDTH} HEIGHT=${config.HEIGHT} MAX_KEYPOINTS=${config.MAX_KEYPOINTS} RANSAC_MODEL=${config.RANSAC_MODEL} DESCRIPTOR_KERNEL=${config.DESCRIPTOR_KERNEL} RATIO_TEST=${config.RATIO_TEST} RANSAC_REPROJ_PX=${config.RANSAC_REPROJ_PX} SIFT_ADAPT_BELOW=${config.SIFT_ADAPT_BELOW} SIFT_LOW_CONTRAST=${config.SIFT_LOW_CONTRAST} DENSE_MIN_KEYPOINTS=${config.DENSE_MIN_KEYPOINTS} DENSE_MIN_CORRELATION=${config.DENSE_MIN_CORRELATION} DENSE_MIN_EDGE_STD=${config.DENSE_MIN_EDGE_STD} THRESHOLD=${config.THRESHOLD} NB_WORKERS=${config.NB_WORKERS}`);
console.log(`${rows.length} queries (${calib.length} calibration, ${held.length} held back) x ${index.length} index images = ${rows.length * index.length} pairs in ${elapsed.toFixed(1)} s (${((1000 * elapsed) / (rows.length * index.length)).toFixed(2)} ms/pair wall, NB_WORKERS=${config.NB_WORKERS})`);

const line = (label: string, e: ReturnType<typeof evaluate>) =>
  `${label.padStart(10)}  ${String(e.declared).padStart(8)}  ${String(e.fp).padStart(6)}  ${pct(e.precision).padStart(9)}  ${pct(e.recall).padStart(6)}  ${pct(e.null_false_positive_rate).padStart(12)}`;
const header = '     value  declared  false+  precision  recall  null-FP-rate';

// 1. THRESHOLD (dense knobs at their configured values): the lowest grid value with no false positive on the calibration half.
const base: Knobs = { t: config.THRESHOLD, cutoff: config.DENSE_MIN_CORRELATION, edge: config.DENSE_MIN_EDGE_STD };
console.log('\n[calibration half] THRESHOLD curve');
console.log(header);
const thresholds = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9];
for (const t of thresholds) console.log(line(t.toFixed(2), evaluate({ ...base, t }, calib)));
const tPick = thresholds.find((t) => evaluate({ ...base, t }, calib).fp === 0);
console.log(`rule: lowest THRESHOLD with no false positive on the calibration half: ${tPick ?? 'none'}`);

// 2. DENSE_MIN_EDGE_STD: structure both sides need before appearance may count.
const k1: Knobs = { ...base, t: tPick ?? base.t };
console.log('\n[calibration half] DENSE_MIN_EDGE_STD curve (at that THRESHOLD)');
console.log(header);
const edges = [0, 0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8];
for (const edge of edges) console.log(line(edge.toFixed(1), evaluate({ ...k1, edge }, calib)));
const lowStructure = (r: Row) => r.truth !== null && edgeOf.get(`q/${r.query}`)! < 8;
console.log('  edgeStd of calibration queries whose original they copy, under 8: ' +
  calib.filter(lowStructure).map((r) => edgeOf.get(`q/${r.query}`)!.toFixed(2)).sort((a, b) => Number(a) - Number(b)).join(' '));

// 3. DENSE_MIN_CORRELATION.
console.log('\n[calibration half] DENSE_MIN_CORRELATION curve (at that THRESHOLD and the configured DENSE_MIN_EDGE_STD)');
console.log(header);
const cutoffs = [0.75, 0.78, 0.8, 0.82, 0.84, 0.85, 0.86, 0.88, 0.9];
for (const cutoff of cutoffs) console.log(line(cutoff.toFixed(2), evaluate({ ...k1, cutoff }, calib)));
const bestNegative = Math.max(0, ...calib.flatMap((r) => r.checked.filter((c) => c.method === 'dense' && c.relative_path !== r.truth).map(correlationOf)));
console.log(`  best dense correlation of a wrong pair on the calibration half (any structure): ${bestNegative.toFixed(3)}`);

// 4. Report at the configured values (which the rules above chose), per half, v2 / v3 apart.
const at: Knobs = { t: Number(process.env.AT ?? config.THRESHOLD), cutoff: config.DENSE_MIN_CORRELATION, edge: config.DENSE_MIN_EDGE_STD };
console.log(`\nreport at THRESHOLD=${at.t} DENSE_MIN_CORRELATION=${at.cutoff} DENSE_MIN_EDGE_STD=${at.edge}`);
console.log('  set                     queries  precision  recall  null-FP-rate  false+');
for (const [name, set] of [['calibration', calib], ['held-back', held], ['both', rows]] as const) {
  for (const [part, sub] of [['v2', set.filter((r) => V2_TRANSFORMS.has(r.transform))], ['v3', set.filter((r) => !V2_TRANSFORMS.has(r.transform))], ['all', set]] as const) {
    const e = evaluate(at, sub);
    console.log(`  ${`${name} ${part}`.padEnd(22)}  ${String(sub.length).padStart(7)}  ${pct(e.precision).padStart(9)}  ${pct(e.recall).padStart(6)}  ${pct(e.null_false_positive_rate).padStart(12)}  ${String(e.fp).padStart(6)}`);
  }
}
console.log('\nrecall per transform (calibration / held-back / both)');
for (const tr of [...new Set(rows.map((r) => r.transform))].sort((a, b) => Number(V2_TRANSFORMS.has(b)) - Number(V2_TRANSFORMS.has(a)) || a.localeCompare(b))) {
  const cells = [calib, held, rows].map((set) => pct(evaluate(at, set.filter((r) => r.transform === tr)).recall).padStart(6));
  console.log(`  ${V2_TRANSFORMS.has(tr) ? 'v2' : 'v3'} ${tr.padEnd(16)} ${cells.join('  ')}`);
}

// Low-texture originals: under 40 keypoints at 512 px, measured on each group's grey copy.
const lowTexture = new Set<string>();
for (const original of new Set(rows.map((r) => r.original))) {
  const q = rows.find((r) => r.original === original && r.transform === 'gray') ?? rows.find((r) => r.original === original)!;
  const { data, info } = await sharp(path.join(dev, 'queries', q.query)).greyscale().resize({ width: 512, height: 512, fit: 'inside', withoutEnlargement: true }).raw().toBuffer({ resolveWithObject: true });
  const f = extractFeatures({ width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) }, 5000);
  if (f.count < 40) lowTexture.add(original);
}
console.log(`\nlow-texture originals (<40 keypoints at 512 px): ${lowTexture.size}: ${[...lowTexture].join(', ')}`);
for (const [name, set] of [['calibration', calib], ['held-back', held]] as const) {
  const low = set.filter((r) => lowTexture.has(r.original));
  const e = evaluate(at, low);
  const by = (m: string) => low.filter((r) => r.truth && r.checked.some((c) => c.relative_path === r.truth && c.method === m && scoreUnder(r, c, at) >= at.t)).length;
  console.log(`  ${name}: ${low.length} queries (${low.filter((r) => r.truth).length} with an original): recall ${pct(e.recall)}, precision ${pct(e.precision)}, false+ ${e.fp}, null-FP-rate ${pct(e.null_false_positive_rate)}; found by SIFT ${by('sift')}, by dense ${by('dense')}`);
}

// Which false positives, for inspection (both halves).
for (const r of rows) {
  for (const c of r.checked) if (scoreUnder(r, c, at) >= at.t && c.relative_path !== r.truth) console.log(`  FP [${r.half}] ${r.query} -> ${c.relative_path} score ${c.score} inliers ${c.inliers} ${c.method}`);
}
