/**
 * The tone check (tone.check.ts): which true pairs the whole-picture colour-plane agreement
 * verifies, which wrong pairs it lets through, and its floors chosen on the calibration half
 * (not a test; prints the curves).
 *
 *   node --conditions=source --import tsx bench/matching/tone-check.bench.ts [/work/shared/bench/dev] [/work/distractors]
 *
 * Env: SAMPLE (500): distractors read, every n-th in pixel-hash order. MISSED=eval.json
 * (dev-eval.bench.ts --json): count as "needed" only the true pairs that run did not verify.
 * CACHE=file keeps the measured pairs, FROM_PAIRS=a.json,b.json re-prints (merged).
 * SHARD=i/n: only every n-th query from the i-th.
 *
 * Pairs: every dev query against every indexed original and sampled distractor of the same
 * aspect (TONE_MAX_ASPECT_GAP), both with structure >= DENSE_MIN_EDGE_STD: where the service
 * runs the check once SIFT has failed. Exhaustive, not a search's top 10, and whether SIFT
 * would have decided the pair first is not asked: a floor with no wrong pair here is a
 * conservative one.
 */
import { readFile } from 'node:fs/promises';
import { MatchingConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { decodeImage, OVERLAP_MIN_PIXELS, OVERLAP_SIDE, structureOf, toneAgreement, type GreyImage } from '@doppel/instance-matching';
import { transformOf } from '@doppel/cli';
import { devSet, keptRows, missedQueries, sweepDevPairs, V2_TRANSFORMS, type Half } from './dev-split.bench.js';

const dev = process.argv[2] ?? '/work/shared/bench/dev';
const distractorDir = process.argv[3] ?? '/work/distractors';
const config = loadConfig(MatchingConfig, { ...process.env, LOG_LEVEL: 'silent' });
const limits = { maxPixels: config.MAX_PIXELS, maxBytes: config.MAX_IMAGE_BYTES, width: config.WIDTH, height: config.HEIGHT, thumbSize: 32, enlargeBelow: config.ENLARGE_BELOW, overlapSide: OVERLAP_SIDE };

interface PairRow {
  query: string; target: string; half: Half; transform: string; positive: boolean; distractor: boolean; needed: boolean;
  agreement: number; centre: number; structure: number; pixels: number; pinning: number;
}
interface Described { colour: GreyImage[]; edgeStd: number }

const { truth, halfOf } = await devSet(dev);

let pairs: PairRow[];
if (process.env.FROM_PAIRS) pairs = await keptRows<PairRow>(process.env.FROM_PAIRS);
else {
  const missed = process.env.MISSED ? await missedQueries(process.env.MISSED) : new Set<string>();
  pairs = await sweepDevPairs<Described, PairRow>({
    dev, distractorDir, sample: Number(process.env.SAMPLE ?? 500),
    describe: async (file) => {
      const img = await decodeImage(await readFile(file), limits);
      return { colour: img.colour, edgeStd: structureOf(img.thumb).edgeStd };
    },
    queryWanted: (q) => q.edgeStd >= config.DENSE_MIN_EDGE_STD,
    row: ({ query, target, distractor, q, t }) => {
      if (t.edgeStd < config.DENSE_MIN_EDGE_STD) return undefined;
      const a = toneAgreement(q.colour, t.colour, config.TONE_MAX_ASPECT_GAP);
      if (!a) return undefined;
      const positive = `index/${truth[query]}` === target;
      return {
        query, target, half: halfOf(query), transform: transformOf(query), positive, distractor,
        needed: positive && (!process.env.MISSED || missed.has(query)),
        agreement: a.agreement, centre: a.centre, structure: a.structure, pixels: a.pixels, pinning: a.pinning,
      };
    },
  });
}

interface Rule { structure: number; agreement: number; pinning: number }
// As the worker: the agreement floor holds over the whole picture and over its middle.
const passes = (p: PairRow, k: Rule) => p.pixels >= OVERLAP_MIN_PIXELS && p.structure >= k.structure && p.agreement >= k.agreement && p.centre >= k.agreement && p.pinning >= k.pinning;
const f3 = (v: number) => v.toFixed(3);
const show = (p: PairRow) => `${p.query.slice(0, 46).padEnd(46)} ${p.target.replace(/^distractors\//, 'D:').slice(0, 56).padEnd(56)} agr ${f3(p.agreement)} centre ${f3(p.centre)} str ${p.structure.toFixed(2)} px ${String(p.pixels).padStart(4)} pin ${f3(p.pinning)}`;
const calib = pairs.filter((p) => p.half === 'calibration');
const needed = calib.filter((p) => p.needed);
const wrong = calib.filter((p) => !p.positive);
console.log(`${pairs.length} pairs of one aspect (TONE_MAX_ASPECT_GAP=${config.TONE_MAX_ASPECT_GAP}); calibration half: ${needed.length} true pairs needing it, ${wrong.length} wrong (${wrong.filter((p) => p.distractor).length} distractors)`);

const strs = [1, 2, 3, 4, 5];
const agrs = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
const pins = [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4];
const grid = strs.flatMap((structure) => agrs.flatMap((agreement) => pins.map((pinning) => ({ structure, agreement, pinning }))));
const count = (rows: PairRow[], k: Rule) => rows.filter((p) => passes(p, k)).length;
console.log(`\n1. [calibration] true pairs verified / wrong pairs passing (of ${needed.length} / ${wrong.length}), by structure and pinning floors (rows) and agreement floor (columns); pixels >= ${OVERLAP_MIN_PIXELS}`);
console.log(`   str  pin   ${agrs.map((a) => `a>=${a}`.padStart(10)).join('')}`);
for (const s of strs) {
  for (const i of pins) console.log(`   ${String(s).padStart(3)}  ${i.toFixed(2)}  ${agrs.map((a) => `${count(needed, { structure: s, agreement: a, pinning: i })}/${count(wrong, { structure: s, agreement: a, pinning: i })}`.padStart(10)).join('')}`);
}
// The rule: a grid point no wrong calibration pair passes, nor at any point one grid step
// lower in one floor (a floor on the edge of the first wrong pair is a fit, not a margin);
// among those, the one verifying most true pairs; ties go to the stricter floors.
const lowerSteps = (k: Rule): Rule[] => {
  const out: Rule[] = [];
  const step = <K extends keyof Rule>(key: K, values: number[]) => {
    const i = values.indexOf(k[key]);
    if (i > 0) out.push({ ...k, [key]: values[i - 1] });
  };
  step('structure', strs);
  step('agreement', agrs);
  step('pinning', pins);
  return out;
};
let pick: Rule | undefined;
let best = -1;
for (const k of [...grid].reverse()) {
  if ([k, ...lowerSteps(k)].some((x) => count(wrong, x) > 0)) continue;
  const n = count(needed, k);
  if (n > best) [best, pick] = [n, k];
}
console.log(`   rule: no wrong pair there nor one step lower, the most true ones: ${pick ? `structure >= ${pick.structure}, agreement >= ${pick.agreement}, pinning >= ${pick.pinning} (${best} true)` : 'none'}`);
const differs = pick && (pick.structure !== config.TONE_MIN_STRUCTURE || pick.agreement !== config.TONE_MIN_AGREEMENT || pick.pinning !== config.TONE_MIN_PINNING);
console.log(`   config: TONE_MIN_STRUCTURE=${config.TONE_MIN_STRUCTURE} TONE_MIN_AGREEMENT=${config.TONE_MIN_AGREEMENT} TONE_MIN_PINNING=${config.TONE_MIN_PINNING}${differs ? '  NOTE: differs from the pick' : ''}`);
console.log('\n   [calibration] wrong pairs, most agreeing first (of those pinned >= 0.1)');
for (const p of wrong.filter((x) => x.pinning >= 0.1).sort((x, y) => y.agreement - x.agreement).slice(0, 10)) console.log(`   ${show(p)}`);

const rule: Rule = { structure: config.TONE_MIN_STRUCTURE, agreement: config.TONE_MIN_AGREEMENT, pinning: config.TONE_MIN_PINNING };
console.log(`\n2. with the config's floors (structure >= ${rule.structure}, agreement >= ${rule.agreement}, pinning >= ${rule.pinning}): per half, true pairs verified of those needing it (of all true pairs); wrong pairs passing`);
for (const h of ['calibration', 'held-back'] as const) {
  for (const part of ['v2', 'v3'] as const) {
    const sub = pairs.filter((p) => p.half === h && V2_TRANSFORMS.has(p.transform) === (part === 'v2'));
    const pos = sub.filter((p) => p.needed);
    const all = sub.filter((p) => p.positive);
    const neg = sub.filter((p) => !p.positive);
    console.log(`   ${`${h} ${part}`.padEnd(16)} true ${count(pos, rule)}/${pos.length} (all true pairs ${count(all, rule)}/${all.length}); wrong ${count(neg, rule)}/${neg.length} (distractors ${neg.filter((p) => p.distractor && passes(p, rule)).length})`);
  }
}
for (const p of pairs.filter((x) => x.needed && passes(x, rule))) console.log(`   verified [${p.half}] ${show(p)}`);
for (const p of pairs.filter((x) => x.needed && !passes(x, rule))) console.log(`   not verified [${p.half}] ${show(p)}`);
for (const p of pairs.filter((x) => !x.positive && passes(x, rule))) console.log(`   WRONG [${p.half}] ${show(p)}`);
