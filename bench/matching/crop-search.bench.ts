/**
 * The aspect-kept crop search of the dense path (crop.search.ts): which true pairs its
 * confirmed placement verifies, which wrong pairs it lets through, and the confirmation
 * floors chosen on the calibration half (not a test; prints the curves).
 *
 *   node --conditions=source --import tsx bench/matching/crop-search.bench.ts [/work/shared/bench/dev] [/work/distractors]
 *
 * Env: SAMPLE (2000): distractors read, every n-th in pixel-hash order; those under
 * DENSE_MIN_KEYPOINTS keypoints (the only ones the dense path meets) become targets.
 * MISSED=eval.json (dev-eval.bench.ts --json): count as "needed" only the true pairs that
 * run did not verify. CACHE=file keeps the measured pairs, FROM_PAIRS=a.json,b.json re-prints
 * (several caches are merged). SHARD=i/n: only every n-th query from the i-th (run n at once,
 * each with its own CACHE, then FROM_PAIRS all of them).
 *
 * SEARCH=rotation: the rotation search and the turn in the frame instead (crop.search.ts
 * rotationSearch, inFrameTurn: the service runs them for its REFINE_TOP neighbours), on the
 * pairs where the crop search's own placement is not confirmed with the config's floors; a
 * pair passes when one of its kept placements does. Their floors are their own
 * (DENSE_ROTATION_MIN_AGREEMENT / _PINNING), chosen by the same rule on this curve.
 *
 * Pairs: every dev query against every indexed original and sampled distractor where the
 * service would run the dense path (the fewer keypoints of the two under
 * DENSE_MIN_KEYPOINTS, both with structure >= DENSE_MIN_EDGE_STD) and the dense check's
 * own placements are not confirmed. Exhaustive, not the top 10 of a search: every
 * low-texture distractor meets every query, so a floor with no wrong pair here is a
 * conservative one. A wrong pair that passes would be declared: SIFT gives it no 10 inliers.
 */
import { readFile } from 'node:fs/promises';
import { MatchingConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import {
  cropSearch, inFrameTurn, rotationSearch, decodeImage, denseCheck, extractAdaptive, extractionOf, OVERLAP_MIN_PIXELS, OVERLAP_SIDE, overlapMapOf, pinnedAgreement, placementHolds, structureOf, type GreyImage,
} from '@doppel/instance-matching';
import { transformOf } from '@doppel/cli';
import { devSet, keptRows, missedQueries, sweepDevPairs, V2_TRANSFORMS, type Half } from './dev-split.bench.js';

const dev = process.argv[2] ?? '/work/shared/bench/dev';
const distractorDir = process.argv[3] ?? '/work/distractors';
const config = loadConfig(MatchingConfig, { ...process.env, LOG_LEVEL: 'silent' });
const limits = { maxPixels: config.MAX_PIXELS, maxBytes: config.MAX_IMAGE_BYTES, width: config.WIDTH, height: config.HEIGHT, thumbSize: 32, enlargeBelow: config.ENLARGE_BELOW, overlapSide: OVERLAP_SIDE };
const extraction = extractionOf(config);

/** One placement the search found, as the confirmation sees it. */
interface Placed { correlation: number; fraction: number; agreement: number; structure: number; pixels: number; pinning: number }
interface PairRow {
  query: string; target: string; half: Half; transform: string; positive: boolean; distractor: boolean; needed: boolean;
  /** The crop search's one placement, or the rotation search's kept ones reaching DENSE_MIN_CORRELATION. */
  placements: Placed[];
}
const rotation = process.env.SEARCH === 'rotation';
if (process.env.SEARCH !== undefined && !rotation) throw new Error(`SEARCH: expected rotation (or unset: the crop search), got ${process.env.SEARCH}`);
interface Described { thumb: GreyImage; overlap: GreyImage; keypoints: number; edgeStd: number }

const { truth, halfOf } = await devSet(dev);

let pairs: PairRow[];
// Caches written before the rotation search hold one placement's fields on the row itself.
if (process.env.FROM_PAIRS) pairs = (await keptRows<PairRow & Partial<Placed>>(process.env.FROM_PAIRS)).map((r) => (r.placements ? r : { ...r, placements: [r as Placed] }));
else {
  const missed = process.env.MISSED ? await missedQueries(process.env.MISSED) : new Set<string>();
  const floors = { minStructure: config.OVERLAP_MIN_STRUCTURE, minAgreement: config.OVERLAP_MIN_AGREEMENT, minPinning: config.DENSE_MIN_PINNING };
  pairs = await sweepDevPairs<Described, PairRow>({
    dev, distractorDir, sample: Number(process.env.SAMPLE ?? 2000),
    describe: async (file) => {
      const img = await decodeImage(await readFile(file), limits);
      return { thumb: img.thumb, overlap: img.overlap, keypoints: extractAdaptive(img.grey, extraction).count, edgeStd: structureOf(img.thumb).edgeStd };
    },
    keep: (d) => d.keypoints < config.DENSE_MIN_KEYPOINTS,
    queryWanted: (q) => q.edgeStd >= config.DENSE_MIN_EDGE_STD,
    row: ({ query, target, distractor, q, t }) => {
      if (Math.min(q.keypoints, t.keypoints) >= config.DENSE_MIN_KEYPOINTS || t.edgeStd < config.DENSE_MIN_EDGE_STD) return undefined;
      // The dense check's own placements, confirmed as the service does: then the search never runs.
      const d = denseCheck(q.thumb, t.thumb);
      if (d.correlation >= config.DENSE_MIN_CORRELATION && d.placements.some((m) => placementHolds(q.overlap, t.overlap, overlapMapOf(m, q.overlap, t.overlap), floors))) return undefined;
      const c = cropSearch(q.overlap, t.overlap);
      const cropFloors = { ...floors, minAgreement: config.DENSE_CROP_MIN_AGREEMENT, minPinning: config.DENSE_CROP_MIN_PINNING };
      // The rotation search runs only where the crop search's placement is not confirmed.
      if (rotation && c.correlation >= config.DENSE_MIN_CORRELATION && placementHolds(q.overlap, t.overlap, c.map, cropFloors)) return undefined;
      const placements = (rotation ? [...rotationSearch(q.overlap, t.overlap), ...inFrameTurn(q.overlap, t.overlap)] : [c]).filter((x) => x.correlation >= config.DENSE_MIN_CORRELATION).map((x) => {
        const a = pinnedAgreement(q.overlap, t.overlap, x.map);
        return { correlation: x.correlation, fraction: x.fraction, agreement: a.agreement, structure: a.structure, pixels: a.pixels, pinning: a.pinning };
      });
      if (placements.length === 0) return undefined;
      const positive = `index/${truth[query]}` === target;
      return { query, target, half: halfOf(query), transform: transformOf(query), positive, distractor, needed: positive && (!process.env.MISSED || missed.has(query)), placements };
    },
  });
}

interface Rule { agreement: number; pinning: number }
const holds = (x: Placed, k: Rule) =>
  x.pixels >= OVERLAP_MIN_PIXELS && x.structure >= config.OVERLAP_MIN_STRUCTURE && x.agreement >= k.agreement && x.pinning >= k.pinning;
const passes = (p: PairRow, k: Rule) => p.placements.some((x) => holds(x, k));
/** The placement a row is shown by: its most agreeing one. */
const shown = (p: PairRow) => p.placements.reduce((a, b) => (b.agreement > a.agreement ? b : a));
const f3 = (v: number) => v.toFixed(3);
const show = (p: PairRow) => {
  const x = shown(p);
  return `${p.query.slice(0, 46).padEnd(46)} ${p.target.replace(/^distractors\//, 'D:').slice(0, 56).padEnd(56)} corr ${f3(x.correlation)} f ${x.fraction.toFixed(2)} agr ${f3(x.agreement)} str ${x.structure.toFixed(2)} px ${String(x.pixels).padStart(4)} pin ${f3(x.pinning)}`;
};
const calib = pairs.filter((p) => p.half === 'calibration');
const needed = calib.filter((p) => p.needed);
const wrong = calib.filter((p) => !p.positive);
console.log(`${rotation ? 'rotation search' : 'crop search'}: ${pairs.length} pairs where the search's placement reaches DENSE_MIN_CORRELATION=${config.DENSE_MIN_CORRELATION}; calibration half: ${needed.length} true pairs needing it, ${wrong.length} wrong (${wrong.filter((p) => p.distractor).length} distractors)`);

const agrs = [0.7, 0.75, 0.8, 0.85, 0.9, 0.95];
const pins = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4];
console.log(`\n1. [calibration] true pairs verified / wrong pairs passing (of ${needed.length} / ${wrong.length}), by pinning floor (rows) and agreement floor (columns); structure >= ${config.OVERLAP_MIN_STRUCTURE}, pixels >= ${OVERLAP_MIN_PIXELS}`);
console.log(`   pin   ${agrs.map((a) => `a>=${a}`.padStart(10)).join('')}`);
for (const i of pins) console.log(`   ${i.toFixed(2).padStart(5)}  ${agrs.map((a) => `${needed.filter((p) => passes(p, { agreement: a, pinning: i })).length}/${wrong.filter((p) => passes(p, { agreement: a, pinning: i })).length}`.padStart(10)).join('')}`);
// The rule: among the grid points no wrong calibration pair passes, the one verifying most
// true pairs; ties go to the stricter point (higher agreement, then higher pinning).
let pick: Rule | undefined;
let best = -1;
for (const a of [...agrs].reverse()) {
  for (const i of [...pins].reverse()) {
    const k = { agreement: a, pinning: i };
    if (wrong.some((p) => passes(p, k))) continue;
    const n = needed.filter((p) => passes(p, k)).length;
    if (n > best) [best, pick] = [n, k];
  }
}
console.log(`   rule: the grid point with no wrong pair verifying the most true ones: ${pick ? `agreement >= ${pick.agreement}, pinning >= ${pick.pinning} (${best} true)` : 'none'}`);
const [configured, names] = rotation
  ? [{ agreement: config.DENSE_ROTATION_MIN_AGREEMENT, pinning: config.DENSE_ROTATION_MIN_PINNING }, ['DENSE_ROTATION_MIN_AGREEMENT', 'DENSE_ROTATION_MIN_PINNING']]
  : [{ agreement: config.DENSE_CROP_MIN_AGREEMENT, pinning: config.DENSE_CROP_MIN_PINNING }, ['DENSE_CROP_MIN_AGREEMENT', 'DENSE_CROP_MIN_PINNING']];
console.log(`   config: ${names[0]}=${configured.agreement} ${names[1]}=${configured.pinning}${pick && (pick.agreement !== configured.agreement || pick.pinning !== configured.pinning) ? '  NOTE: differs from the pick' : ''}`);
console.log('\n   [calibration] wrong pairs over the cut-off, most agreeing first');
for (const p of [...wrong].sort((x, y) => shown(y).agreement - shown(x).agreement).slice(0, 15)) console.log(`   ${show(p)}`);

const rule: Rule = configured;
console.log(`\n2. with the config's floors (agreement >= ${rule.agreement}, pinning >= ${rule.pinning}): per half, true pairs verified of those needing it; wrong pairs passing`);
for (const h of ['calibration', 'held-back'] as const) {
  for (const part of ['v2', 'v3'] as const) {
    const sub = pairs.filter((p) => p.half === h && V2_TRANSFORMS.has(p.transform) === (part === 'v2'));
    const pos = sub.filter((p) => p.needed);
    const neg = sub.filter((p) => !p.positive);
    console.log(`   ${`${h} ${part}`.padEnd(16)} true ${pos.filter((p) => passes(p, rule)).length}/${pos.length}; wrong ${neg.filter((p) => passes(p, rule)).length}/${neg.length} (distractors ${neg.filter((p) => p.distractor && passes(p, rule)).length})`);
  }
}
for (const p of pairs.filter((x) => x.needed && passes(x, rule))) console.log(`   verified [${p.half}] ${show(p)}`);
for (const p of pairs.filter((x) => !x.positive && passes(x, rule))) console.log(`   WRONG [${p.half}] ${show(p)}`);
