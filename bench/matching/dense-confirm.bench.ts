/**
 * Which pairs the old dense check (32x32 thumbnails, best over orientations, crop scales and
 * positions) may verify, and the rule that confirms its placement (not a test; prints the
 * curves the rule's constants were chosen on).
 *
 *   WITH=/tmp/verify3/scale-after.json WITHOUT=/tmp/verify4/nodense.json OUT=/tmp/verify4/synth.json \
 *     node --conditions=source --import tsx bench/matching/dense-confirm.bench.ts [/work/shared/bench/dev] [/work/distractors]
 *   FROM=/tmp/verify4/synth.json node --conditions=source --import tsx bench/matching/at-scale.bench.ts
 *
 * Inputs are two RAW files of bench/matching/at-scale.bench.ts over the same neighbour lists
 * (the top 10 among the dev originals, and among the originals plus 10,000 Debian
 * distractors): WITH the old dense check, and WITHOUT it (DENSE_MIN_KEYPOINTS=0). Every
 * pair the WITH run scored by a dense path (method `dense`) is checked again in-process:
 * the old correlation, the two placements its searches chose (grey and gradient), and at
 * each placement the overlap check's measures between the 96-px thumbnails (gradient
 * agreement, structure, overlap size) and how much sliding it along its edges costs (pinning,
 * overlap.check.ts).
 * Negatives: every wrong pair among them, dev originals and distractors alike.
 * Prints, on the calibration half: the wrong pairs the old check passes, and the curves of
 * the confirmation rule (pinning floor, agreement cut-off). OUT gets the WITHOUT rows with
 * the pairs the rule (DENSE_MIN_PINNING, OVERLAP_MIN_AGREEMENT from the env) verifies added,
 * for at-scale.bench.ts FROM= to print the tables. CACHE=file keeps the measured pairs, FROM_PAIRS=file re-prints.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MatchingConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { decodeImage, denseCheck, OVERLAP_MIN_PIXELS, overlapMapOf, OVERLAP_SIDE, PIN_SLIDES, pinnedAgreement, type GreyImage } from '@doppel/instance-matching';
import { V2_TRANSFORMS, type Half } from './dev-split.bench.js';

const dev = process.argv[2] ?? '/work/shared/bench/dev';
const distractorDir = process.argv[3] ?? '/work/distractors';
const config = loadConfig(MatchingConfig, { ...process.env, LOG_LEVEL: 'silent' });
const limits = { maxPixels: config.MAX_PIXELS, maxBytes: config.MAX_IMAGE_BYTES, width: config.WIDTH, height: config.HEIGHT, thumbSize: 32, enlargeBelow: config.ENLARGE_BELOW, overlapSide: OVERLAP_SIDE };

interface Checked { relative_path: string; score: number; inliers: number; method: string; reason?: string }
interface Row { query: string; truth: string | null; half: Half; transform: string; alone: string[]; scaled: string[]; checked: Checked[] }
interface At { agreement: number; structure: number; pixels: number; pinning: number }
interface PairRow { query: string; target: string; half: Half; transform: string; positive: boolean; distractor: boolean; needed: boolean; correlation: number; at: At[] }

const readRows = async (file: string) => (JSON.parse(await readFile(file, 'utf8')) as { rows: Row[]; elapsed: number; distractors: number });
const without = await readRows(process.env.WITHOUT ?? '/tmp/verify4/nodense.json');
const verifiedWithout = new Set(without.rows.flatMap((r) => r.checked.filter((c) => c.score >= config.THRESHOLD).map((c) => `${r.query}\u0000${c.relative_path}`)));

let pairs: PairRow[];
if (process.env.FROM_PAIRS) pairs = JSON.parse(await readFile(process.env.FROM_PAIRS, 'utf8')) as PairRow[];
else {
  const withRows = await readRows(process.env.WITH ?? '/tmp/verify3/scale-after.json');
  const images = new Map<string, Promise<{ thumb: GreyImage; overlap: GreyImage }>>();
  const image = (file: string) => {
    let p = images.get(file);
    if (!p) images.set(file, (p = readFile(file).then((b) => decodeImage(b, limits))));
    return p;
  };
  const fileOf = (rel: string) => (rel.startsWith('index/') ? path.join(dev, rel) : path.join(distractorDir, rel.slice('distractors/'.length)));
  pairs = [];
  const t0 = performance.now();
  for (const r of withRows.rows) {
    const sent = new Set([...r.alone, ...r.scaled]);
    const dense = r.checked.filter((c) => c.method === 'dense' && sent.has(c.relative_path));
    if (!dense.length) continue;
    const cand = await image(path.join(dev, 'queries', r.query));
    for (const c of dense) {
      const target = await image(fileOf(c.relative_path));
      const d = denseCheck(cand.thumb, target.thumb);
      // Under the cut-off a correlation is never confirmed: the service skips it, and so does this.
      const at = d.correlation < config.DENSE_MIN_CORRELATION ? [] : d.placements.map((m) => {
        const a = pinnedAgreement(cand.overlap, target.overlap, overlapMapOf(m, cand.overlap, target.overlap));
        return { agreement: a.agreement, structure: a.structure, pixels: a.pixels, pinning: a.pinning };
      });
      pairs.push({
        query: r.query, target: c.relative_path, half: r.half, transform: r.transform, positive: c.relative_path === r.truth,
        distractor: c.relative_path.startsWith('distractors/'), needed: !verifiedWithout.has(`${r.query}\u0000${c.relative_path}`), correlation: d.correlation, at,
      });
    }
    if (pairs.length % 500 < dense.length) process.stderr.write(`${pairs.length} pairs, ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  }
  if (process.env.CACHE) await writeFile(process.env.CACHE, JSON.stringify(pairs));
}

interface Rule { pinning: number; agreement: number }
const cutoff = config.DENSE_MIN_CORRELATION;
/** The rule: the old correlation reaches its cut-off, and at one of its placements the 96-px overlap confirms it. */
const confirms = (p: PairRow, k: Rule) =>
  p.correlation >= cutoff && p.at.some((a) => a.pixels >= OVERLAP_MIN_PIXELS && a.structure >= config.OVERLAP_MIN_STRUCTURE && a.pinning >= k.pinning && a.agreement >= k.agreement);
const calib = pairs.filter((p) => p.half === 'calibration');
const needed = calib.filter((p) => p.positive && p.needed && p.correlation >= cutoff);
const wrong = calib.filter((p) => !p.positive && p.correlation >= cutoff);
const f3 = (v: number) => v.toFixed(3);
const show = (p: PairRow) => `${p.query.slice(0, 44).padEnd(44)} ${p.target.replace(/^distractors\//, 'D:').slice(0, 60).padEnd(60)} corr ${f3(p.correlation)}  ${p.at.map((a) => `agr ${f3(a.agreement)} str ${a.structure.toFixed(2)} px ${String(a.pixels).padStart(4)} pin ${f3(a.pinning)}`).join(' | ')}`;
console.log(`${pairs.length} pairs a dense path scored; calibration half: ${needed.length} true pairs only the old dense check verifies (correlation >= ${cutoff}), ${wrong.length} wrong pairs it passes (${wrong.filter((p) => p.distractor).length} distractors)`);
console.log('\n1. [calibration] wrong pairs the old dense check passes (grey placement | gradient placement)');
for (const p of wrong) console.log(`   ${show(p)}`);
console.log('\n   true pairs only the old dense check verifies');
for (const p of needed) console.log(`   ${show(p)}`);

const pins = [-1, 0, 0.02, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.2];
const agrs = [0, 0.5, 0.6, 0.7, 0.8];
console.log(`\n2. [calibration] true pairs kept / wrong pairs passing (of ${needed.length} / ${wrong.length}), by pinning floor (rows; slides ${PIN_SLIDES.join(', ')} px) and agreement cut-off (columns); structure >= ${config.OVERLAP_MIN_STRUCTURE}, pixels >= ${OVERLAP_MIN_PIXELS}`);
console.log(`   pin   ${agrs.map((a) => `a>=${a}`.padStart(10)).join('')}`);
for (const i of pins) console.log(`   ${i.toFixed(2).padStart(5)}  ${agrs.map((a) => `${needed.filter((p) => confirms(p, { pinning: i, agreement: a })).length}/${wrong.filter((p) => confirms(p, { pinning: i, agreement: a })).length}`.padStart(10)).join('')}`);
const at = config.OVERLAP_MIN_AGREEMENT;
const passing = (a: At) => a.pixels >= OVERLAP_MIN_PIXELS && a.structure >= config.OVERLAP_MIN_STRUCTURE && a.agreement >= at;
const bestWrong = Math.max(-1, ...wrong.flatMap((p) => p.at.filter(passing).map((a) => a.pinning)));
const pick = pins.find((v) => v >= bestWrong + 0.03);
console.log(`   at OVERLAP_MIN_AGREEMENT=${at} (the overlap check's cut-off, same measure): the most pinned wrong placement ${f3(bestWrong)}; true pairs passing the agreement rule, least pinned: ${f3(Math.min(...needed.filter((p) => p.at.some(passing)).map((p) => Math.max(...p.at.filter(passing).map((a) => a.pinning)))))}`);
console.log(`   rule: lowest grid value at least 0.03 above the most pinned wrong placement: DENSE_MIN_PINNING=${pick}`);
const rule: Rule = { pinning: config.DENSE_MIN_PINNING, agreement: at };
console.log(`\n3. with the rule (DENSE_MIN_PINNING=${rule.pinning}, agreement >= ${rule.agreement}): per half, true pairs kept of those only the old check verifies; wrong pairs passing`);
for (const h of ['calibration', 'held-back'] as const) {
  for (const part of ['v2', 'v3'] as const) {
    const sub = pairs.filter((p) => p.half === h && V2_TRANSFORMS.has(p.transform) === (part === 'v2') && p.correlation >= cutoff);
    const pos = sub.filter((p) => p.positive && p.needed);
    const neg = sub.filter((p) => !p.positive);
    console.log(`   ${`${h} ${part}`.padEnd(16)} true ${pos.filter((p) => confirms(p, rule)).length}/${pos.length}; wrong ${neg.filter((p) => confirms(p, rule)).length}/${neg.length} (distractors ${neg.filter((p) => p.distractor && confirms(p, rule)).length})`);
  }
}
for (const p of pairs.filter((x) => !x.positive && confirms(x, rule))) console.log(`   still passing [${p.half}] ${show(p)}`);

if (process.env.OUT) {
  // The service's answer with the rule: the WITHOUT scores, and the pairs the rule confirms at the THRESHOLD score.
  const ok = new Set(pairs.filter((p) => confirms(p, rule)).map((p) => `${p.query}\u0000${p.target}`));
  const rows = without.rows.map((r) => ({ ...r, checked: r.checked.map((c) => (ok.has(`${r.query}\u0000${c.relative_path}`) && c.score < config.THRESHOLD ? { ...c, score: config.THRESHOLD, method: 'dense' } : c)) }));
  await writeFile(process.env.OUT, JSON.stringify({ rows, elapsed: without.elapsed, distractors: without.distractors }));
}
