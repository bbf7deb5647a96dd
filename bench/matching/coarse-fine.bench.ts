/**
 * Coarse-to-fine verification and the enlargement of small images (not a test; prints the
 * curves FINE_MIN_MATCHES and ENLARGE_BELOW were chosen on). In-process, SIFT only (the
 * dense check is not involved), every query against every index image:
 *
 *   node --conditions=source --import tsx bench/matching/coarse-fine.bench.ts [/work/shared/bench/dev]
 *
 * First pass as the service runs it (working size, MAX_KEYPOINTS, images under ENLARGE_BELOW
 * enlarged 2x). Every undecided pair with at least 3 one-to-one matches whose target is
 * larger than the working size is then verified against the target's fine features
 * (FINE_SIDE, FINE_KEYPOINTS), as the service's fine pass does. Prints, on the calibration
 * half (bench/matching/dev-split.bench.ts):
 * 1. why the true pairs of the weak transforms fail the first pass: the candidate's keypoints,
 *    the target's working-size keypoints inside the overlap (where the fine pass located it),
 *    matches, and what the fine pass makes of them;
 * 2. the FINE_MIN_MATCHES curve: pairs sent to the fine pass (cost), true pairs it verifies,
 *    wrong pairs it verifies, and the most inliers a wrong pair reaches there; then (2b) a
 *    second gate that was tried and not adopted: pairs under that many matches also sent when
 *    3 consistent matches place the candidate in the target at a linear scale under a bound
 *    (a zoom whose overlap the target's working size under-describes may keep 2-6 matches);
 *    BELOW_SCALE=b adds it to section 3;
 * 3. recall of SIFT alone per half, v2 / v3 apart, first pass against coarse-to-fine.
 * ENLARGE_BELOW=0 measures without the enlargement. STEP=n keeps every n-th query;
 * CACHE=rows.json keeps the pair rows, FROM=rows.json re-prints from them.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MatchingConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { decodeImage, extractAdaptive, linearScale, extractCandidateFeatures, extractionOf, fineExtractionOf, verifySift, type Features, verifyOptionsOf } from '@doppel/instance-matching';
import { transformOf } from '@doppel/cli';
import { devSplit, V2_TRANSFORMS, type Half } from './dev-split.bench.js';

const dev = process.argv[2] ?? '/work/shared/bench/dev';
const config = loadConfig(MatchingConfig, { ...process.env, LOG_LEVEL: 'silent' });
const accept = 10;
const step = Number(process.env.STEP ?? 1);
const truth = (JSON.parse(await readFile(path.join(dev, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
const index = (await readdir(path.join(dev, 'index'))).filter((f) => !f.startsWith('.')).sort();
const halfOf = devSplit(index, truth);
const limits = (side: number) => ({ maxPixels: config.MAX_PIXELS, maxBytes: config.MAX_IMAGE_BYTES, width: side, height: side, thumbSize: 32, enlargeBelow: config.ENLARGE_BELOW });
const extraction = extractionOf(config);
const fineExtraction = fineExtractionOf(config) ?? { ...extraction, maxKeypoints: 4 * config.MAX_KEYPOINTS };
const fineSide = config.FINE_SIDE || 2 * config.WIDTH;
// Every pass keeps its best plausible fit, even from fewer than 8 matches (the fine gate's second sign).
const opts = { ...verifyOptionsOf(config), fewMatchHypothesisBelow: Number.POSITIVE_INFINITY };
const WEAK = ['crop_corner45', 'zoom_center40', 'crop_strip', 'thumb120_q40'];

/** One query x target pair. */
interface PairRow {
  query: string; target: string; half: Half; transform: string; positive: boolean;
  first: number; matches: number; failure?: string; candidateKeypoints: number;
  /** Inliers of the fine pass (undecided pairs with >= 3 matches and a refinable target). */
  fine?: number;
  /** Working-size keypoints of the target inside the region the fine pass located. */
  overlapKeypoints?: number;
  /** The first pass's best plausible fit (even from 3 consistent matches): its inliers and linear scale. */
  hypothesis?: { inliers: number; scale: number };
}

/** Keypoints of f inside the bounding box of a normalised quad. */
function keypointsIn(f: Features, quad: Array<[number, number]> | number[][]): number {
  const xs = quad.map((p) => p[0]!);
  const ys = quad.map((p) => p[1]!);
  let n = 0;
  for (let i = 0; i < f.count; i++) {
    const x = f.points[2 * i]! / f.width;
    const y = f.points[2 * i + 1]! / f.height;
    if (x >= Math.min(...xs) && x <= Math.max(...xs) && y >= Math.min(...ys) && y <= Math.max(...ys)) n++;
  }
  return n;
}

let rows: PairRow[];
let elapsed = 0;
if (process.env.FROM) ({ rows, elapsed } = JSON.parse(await readFile(process.env.FROM, 'utf8')) as { rows: PairRow[]; elapsed: number });
else {
  const t0 = performance.now();
  const coarse = new Map<string, Features>();
  const fine = new Map<string, Features | undefined>();
  for (const f of index) {
    const bytes = await readFile(path.join(dev, 'index', f));
    const img = await decodeImage(bytes, limits(config.WIDTH));
    coarse.set(f, extractAdaptive(img.grey, extraction));
    // The service's rule: a fine description only for a picture larger than its working size.
    const refinable = Math.max(img.width, img.height) > Math.max(img.grey.width, img.grey.height);
    fine.set(f, refinable ? extractAdaptive((await decodeImage(bytes, limits(fineSide))).grey, fineExtraction) : undefined);
  }
  rows = [];
  const queries = Object.keys(truth).sort().filter((_, i) => i % step === 0);
  for (const [n, q] of queries.entries()) {
    const cand = extractCandidateFeatures((await decodeImage(await readFile(path.join(dev, 'queries', q)), limits(config.WIDTH))).grey, extraction);
    for (const t of index) {
      const v = verifySift(cand, coarse.get(t)!, opts, accept);
      const row: PairRow = { query: q, target: t, half: halfOf(q), transform: transformOf(q), positive: truth[q] === t, first: v.inliers, matches: v.matches, candidateKeypoints: cand.plain.count };
      if (v.failure) row.failure = v.failure;
      if (v.hypothesis) row.hypothesis = { inliers: v.hypothesis.inliers, scale: Number(linearScale(v.hypothesis.matrix).toFixed(3)) };
      const f = fine.get(t);
      if (v.inliers < accept && v.matches >= 3 && f) {
        const w = verifySift(cand, f, opts, accept);
        row.fine = w.inliers;
        if (w.region) row.overlapKeypoints = keypointsIn(coarse.get(t)!, w.region);
      }
      rows.push(row);
    }
    if (n % 200 === 0) process.stderr.write(`${n}/${queries.length} queries, ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  }
  elapsed = (performance.now() - t0) / 1000;
  if (process.env.CACHE) await writeFile(process.env.CACHE, JSON.stringify({ rows, elapsed }));
}

const calib = rows.filter((r) => r.half === 'calibration');
console.log(`WIDTH=${config.WIDTH} MAX_KEYPOINTS=${config.MAX_KEYPOINTS} ENLARGE_BELOW=${config.ENLARGE_BELOW} FINE_SIDE=${fineSide} FINE_KEYPOINTS=${fineExtraction.maxKeypoints}; ${rows.length} pairs (${calib.length} calibration) in ${elapsed.toFixed(0)} s`);

console.log('\n1. [calibration half] true pairs of the weak transforms that the first pass misses');
console.log('   query                                              cand-kp  matches  first-pass                  fine  target-kp-in-overlap');
for (const r of calib.filter((x) => x.positive && WEAK.includes(x.transform) && x.first < accept).sort((a, b) => a.transform.localeCompare(b.transform) || a.query.localeCompare(b.query))) {
  console.log(`   ${r.query.slice(0, 50).padEnd(50)} ${String(r.candidateKeypoints).padStart(7)}  ${String(r.matches).padStart(7)}  ${`${r.first} ${r.failure ?? ''}`.padEnd(26)}  ${String(r.fine ?? '-').padStart(4)}  ${String(r.overlapKeypoints ?? '-').padStart(20)}`);
}

console.log('\n2. [calibration half] FINE_MIN_MATCHES curve: an undecided pair with at least this many matches goes to the fine pass');
console.log('   min-matches  sent (share of undecided)  true-sent  true-verified  wrong-sent  wrong-verified  max-wrong-inliers');
const undecided = calib.filter((r) => r.first < accept);
for (const m of [3, 4, 5, 6, 7, 8, 10, 12]) {
  const sent = undecided.filter((r) => r.fine !== undefined && r.matches >= m);
  const tp = sent.filter((r) => r.positive);
  const fp = sent.filter((r) => !r.positive);
  console.log(`   ${String(m).padStart(11)}  ${`${sent.length} (${((100 * sent.length) / undecided.length).toFixed(1)}%)`.padStart(25)}  ${String(tp.length).padStart(9)}  ${String(tp.filter((r) => r.fine! >= accept).length).padStart(13)}  ${String(fp.length).padStart(10)}  ${String(fp.filter((r) => r.fine! >= accept).length).padStart(14)}  ${String(Math.max(0, ...fp.map((r) => r.fine!))).padStart(17)}`);
}
console.log(`   (${undecided.length} undecided calibration pairs; the fine pass costs about FINE_KEYPOINTS / MAX_KEYPOINTS first passes)`);
// Rule: the fine pass costs about 4 first passes, so sending under 5% of the undecided pairs
// keeps the average cost per pair within +20%; and no wrong pair may verify there.
const pick = [3, 4, 5, 6, 7, 8, 10, 12].find((m) => {
  const sent = undecided.filter((r) => r.fine !== undefined && r.matches >= m);
  return sent.length < 0.05 * undecided.length && !sent.some((r) => !r.positive && r.fine! >= accept);
});
console.log(`   rule: lowest value sending under 5% of the undecided pairs, with no wrong pair verified: ${pick ?? 'none'}`);

const gate = config.FINE_MIN_MATCHES;
/** The service's gate (enough matches), or with below > 0 also a few-match fit shrinking the candidate under that scale (tried, not adopted). */
const sentAt = (r: PairRow, below: number) => r.fine !== undefined && (r.matches >= gate || (below > 0 && r.hypothesis !== undefined && r.hypothesis.scale < below));

console.log(`\n2b. [calibration half] a second gate, tried: at FINE_MIN_MATCHES=${gate}, a pair with fewer matches also goes to the fine pass when 3 consistent matches place the candidate at a linear scale under this`);
console.log('   below-scale  sent (share of undecided)  true-sent  true-verified  wrong-sent  wrong-verified  max-wrong-inliers');
const SCALES = [0, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25];
for (const b of SCALES) {
  const sent = undecided.filter((r) => sentAt(r, b));
  const tp = sent.filter((r) => r.positive);
  const fp = sent.filter((r) => !r.positive);
  console.log(`   ${String(b).padStart(11)}  ${`${sent.length} (${((100 * sent.length) / undecided.length).toFixed(1)}%)`.padStart(25)}  ${String(tp.length).padStart(9)}  ${String(tp.filter((r) => r.fine! >= accept).length).padStart(13)}  ${String(fp.length).padStart(10)}  ${String(fp.filter((r) => r.fine! >= accept).length).padStart(14)}  ${String(Math.max(0, ...fp.map((r) => r.fine!))).padStart(17)}`);
}
// The same rule as FINE_MIN_MATCHES (under 5% of the undecided pairs sent, so the average
// pair costs at most a fifth more; no wrong pair verified), here the largest such scale.
const pickScale = [...SCALES].reverse().find((b) => {
  const sent = undecided.filter((r) => sentAt(r, b));
  return sent.length < 0.05 * undecided.length && !sent.some((r) => !r.positive && r.fine! >= accept);
});
console.log(`   rule: largest scale sending under 5% of the undecided pairs, with no wrong pair verified: ${pickScale ?? 'none'}`);

const below = Number(process.env.BELOW_SCALE ?? 0);
const verified = (r: PairRow, fineToo: boolean) => r.first >= accept || (fineToo && sentAt(r, below) && r.fine! >= accept);
console.log(`\n3. SIFT-only recall, first pass / with the fine pass at FINE_MIN_MATCHES=${gate}${below > 0 ? ` and the second gate under scale ${below}` : ''}; wrong pairs verified`);
for (const [name, set] of [['calibration', calib], ['held-back', rows.filter((r) => r.half === 'held-back')], ['both', rows]] as const) {
  for (const part of ['v2', 'v3'] as const) {
    const sub = set.filter((r) => V2_TRANSFORMS.has(r.transform) === (part === 'v2'));
    const pos = sub.filter((r) => r.positive);
    const neg = sub.filter((r) => !r.positive);
    console.log(`   ${`${name} ${part}`.padEnd(15)} recall ${pos.filter((r) => verified(r, false)).length}/${pos.length} -> ${pos.filter((r) => verified(r, true)).length}/${pos.length}; wrong pairs verified ${neg.filter((r) => verified(r, false)).length} -> ${neg.filter((r) => verified(r, true)).length}`);
  }
}
console.log('\n   per weak transform (calibration / held-back): first pass -> with the fine pass');
for (const tr of WEAK) {
  const cell = (h: Half) => {
    const pos = rows.filter((r) => r.positive && r.transform === tr && r.half === h);
    return `${pos.filter((r) => verified(r, false)).length} -> ${pos.filter((r) => verified(r, true)).length} of ${pos.length}`;
  };
  console.log(`   ${tr.padEnd(15)} ${cell('calibration').padEnd(16)} / ${cell('held-back')}`);
}
