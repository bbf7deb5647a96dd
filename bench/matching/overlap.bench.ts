/**
 * The overlap check for low-texture pairs (not a test; prints the curves its constants were
 * chosen on). In-process, every dev query against every index image, and the queries most
 * likely to be verified wrongly (the low-texture and the never-indexed ones) against a
 * sample of the Debian distractors (bench/distractors/build.ts), whose flat panels,
 * gradients and clipart are the false-positive risk:
 *
 *   node --conditions=source --import tsx bench/matching/overlap.bench.ts [/work/shared/bench/dev] [/work/distractors]
 *
 * Each pair is verified by SIFT as the service's first pass does (verifySift, working size,
 * both passes). A pair SIFT leaves undecided that has a hypothesis (a sane fit from at
 * least 3 consistent matches, sift.verify.ts) gets the overlap check on it: the candidate's
 * thumbnail warped into the neighbour's, gradient agreement, grey correlation, structure
 * and size of the overlap (overlap.check.ts). Unlike the service, the hypothesis always comes
 * from the working-size features (the service takes the fine pass's when that ran). Prints:
 * 1. why each calibration-half miss of the service (SERVICE=rows of calibrate.ts RAW=...)
 *    fails: keypoints of both sides, matches, hypothesis, overlap figures;
 * 2. the curves on the calibration half (dev unrelated pairs and distractor pairs as the
 *    negatives) for the keypoint gate, the structure floor and the agreement cut-off;
 * 3. recall per half and per transform, v2 / v3 apart, of the service with the rule added;
 * 4. the curve OVERLAP_MIN_PINNING was chosen on: true and wrong pairs the rule passes, by
 *    pinning floor, per half.
 * Env: EVERY=k keeps every k-th distractor (default 80), CACHE=file keeps the rows,
 * FROM=file re-prints from them, SERVICE=calibrate rows (default /tmp/v2/cal-after.json;
 * SERVICE=none: no pair counts as declared, which section 4 does not need).
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MatchingConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import {
  alignedAgreement, pinnedAgreement, decodeImage, OVERLAP_MIN_PIXELS, extractAdaptive, extractCandidateFeatures, extractionOf, OVERLAP_SIDE, structureOf, thumbTransform, verifySift,
  type CandidateFeatures, type Features, type GreyImage, verifyOptionsOf,
} from '@doppel/instance-matching';
import { originalOfQuery, transformOf } from '@doppel/cli';
import { devSplit, V2_TRANSFORMS, type Half } from './dev-split.bench.js';

const dev = process.argv[2] ?? '/work/shared/bench/dev';
const distractorDir = process.argv[3] ?? '/work/distractors';
let every = Number(process.env.EVERY ?? 80);
const config = loadConfig(MatchingConfig, { ...process.env, LOG_LEVEL: 'silent' });
const accept = 10;
const truth = (JSON.parse(await readFile(path.join(dev, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
const index = (await readdir(path.join(dev, 'index'))).filter((f) => !f.startsWith('.')).sort();
const halfOf = devSplit(index, truth);
const limits = { maxPixels: config.MAX_PIXELS, maxBytes: config.MAX_IMAGE_BYTES, width: config.WIDTH, height: config.HEIGHT, thumbSize: 32, enlargeBelow: config.ENLARGE_BELOW, overlapSide: OVERLAP_SIDE };
const extraction = extractionOf(config);
// Few-match hypotheses for every pair: the keypoint gate is applied (and swept) when scoring.
const opts = { ...verifyOptionsOf(config), fewMatchHypothesisBelow: Number.POSITIVE_INFINITY };
const LOW_TEXTURE = new Set(['s000_2004default', 's003_Fossa_by_Jasper_Roks', 's006_Painting-Colors_by__herobrine7ga', 's012_calla', 's013_city', 's014_desert', 's016_fluent-color', 's024_rhythm', 's025_rollpaper', 's027_string', 's030_umang_by_Abhishek_Mudgal']);

interface Row {
  query: string; target: string; half: Half; transform: string; positive: boolean; distractor: boolean;
  candKp: number; targetKp: number; candEdge: number; targetEdge: number; matches: number; inliers: number; failure?: string;
  hyp?: number; agreement?: number; grey?: number; structure?: number; pixels?: number;
  /** The agreement's drop when the placement is slid along its edges (pinnedAgreement), for rows near the cut-off. */
  pinning?: number;
}

interface Side { f: Features; thumb: GreyImage; edge: number }
const frames = (s: { f: Features; thumb: GreyImage }) => ({ work: { width: s.f.width, height: s.f.height }, thumb: { width: s.thumb.width, height: s.thumb.height } });

function pairRow(q: string, cand: { c: CandidateFeatures; thumb: GreyImage; edge: number }, t: string, target: Side, distractor: boolean): Row {
  const v = verifySift(cand.c, target.f, opts, accept);
  const row: Row = {
    query: q, target: t, half: halfOf(q), transform: transformOf(q), positive: truth[q] === t, distractor,
    candKp: cand.c.plain.count, targetKp: target.f.count, candEdge: cand.edge, targetEdge: target.edge, matches: v.matches, inliers: v.inliers,
  };
  if (v.failure) row.failure = v.failure;
  if (v.inliers < accept && v.hypothesis) {
    const m = thumbTransform(v.hypothesis.matrix, v.hypothesis.mirrored, frames({ f: cand.c.plain, thumb: cand.thumb }), frames(target));
    const a = alignedAgreement(cand.thumb, target.thumb, m);
    Object.assign(row, { hyp: v.hypothesis.inliers, agreement: a.agreement, grey: a.grey, structure: a.structure, pixels: a.pixels });
    // Only where it can matter (the curve of section 4 starts at agreement 0.6): four more placements each.
    if (a.agreement >= 0.6 && a.pixels >= OVERLAP_MIN_PIXELS) row.pinning = pinnedAgreement(cand.thumb, target.thumb, m, undefined, a).pinning;
  }
  return row;
}

let rows: Row[];
let elapsed = 0;
if (process.env.FROM) ({ rows, elapsed, every } = JSON.parse(await readFile(process.env.FROM, 'utf8')) as { rows: Row[]; elapsed: number; every: number });
else {
  const t0 = performance.now();
  const side = async (file: string): Promise<Side> => {
    const img = await decodeImage(await readFile(file), limits);
    return { f: extractAdaptive(img.grey, extraction), thumb: img.overlap, edge: structureOf(img.thumb).edgeStd };
  };
  const targets = new Map<string, Side>();
  for (const f of index) targets.set(f, await side(path.join(dev, 'index', f)));
  const all = (await readdir(distractorDir)).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort();
  const distractors = new Map<string, Side>();
  for (const f of all.filter((_, i) => i % every === 0)) distractors.set(f, await side(path.join(distractorDir, f)));
  process.stderr.write(`features of ${targets.size} index images and ${distractors.size} distractors in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  rows = [];
  const queries = Object.keys(truth).sort().filter((_, i) => i % Number(process.env.STEP ?? 1) === 0);
  for (const [n, q] of queries.entries()) {
    const img = await decodeImage(await readFile(path.join(dev, 'queries', q)), limits);
    const cand = { c: extractCandidateFeatures(img.grey, extraction), thumb: img.overlap, edge: structureOf(img.thumb).edgeStd };
    for (const [t, s] of targets) rows.push(pairRow(q, cand, t, s, false));
    // The queries that flat panels and gradients could fool: low-texture originals and never-indexed copies.
    if (LOW_TEXTURE.has(originalOfQuery(q)) || truth[q] === null) for (const [t, s] of distractors) rows.push(pairRow(q, cand, t, s, true));
    if (n % 100 === 0) process.stderr.write(`${n}/${queries.length} queries, ${rows.length} pairs, ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  }
  elapsed = (performance.now() - t0) / 1000;
  if (process.env.CACHE) await writeFile(process.env.CACHE, JSON.stringify({ rows, elapsed, every }));
}

// The service's decisions (calibrate.ts RAW rows): a pair it declares needs no overlap check.
interface Checked { relative_path: string; score: number; method: string; inliers: number; reason?: string }
// Without the file (SERVICE=none), no pair counts as declared by the service: section 4 needs none.
const service = process.env.SERVICE === 'none' ? { rows: [] } : JSON.parse(await readFile(process.env.SERVICE ?? '/tmp/v2/cal-after.json', 'utf8')) as { rows: Array<{ query: string; checked: Checked[] }> };
const declared = new Set<string>();
const serviceCheck = new Map<string, Checked>();
for (const r of service.rows) for (const c of r.checked) {
  serviceCheck.set(`${r.query}\u0000${c.relative_path}`, c);
  if (c.score >= config.THRESHOLD) declared.add(`${r.query}\u0000${c.relative_path}`);
}
const key = (r: Row) => `${r.query}\u0000${r.target}`;

interface Rule { gate: number; structure: number; agreement: number; pixels: number }
/**
 * The overlap rule as the service applies it: SIFT undecided, a hypothesis, a side under the
 * keypoint gate, both sides past the near-flat rule (DENSE_MIN_EDGE_STD on the 32x32
 * thumbnail), enough structure and overlap, agreement over the cut-off.
 */
const passes = (r: Row, k: Rule) =>
  r.agreement !== undefined && Math.min(r.candEdge, r.targetEdge) >= config.DENSE_MIN_EDGE_STD && Math.min(r.candKp, r.targetKp) < k.gate && r.structure! >= k.structure && r.pixels! >= k.pixels && r.agreement >= k.agreement;
const verified = (r: Row, k?: Rule) => (!r.distractor && declared.has(key(r))) || (k !== undefined && passes(r, k));

const calib = rows.filter((r) => r.half === 'calibration');
console.log(`${rows.length} pairs (${rows.filter((r) => r.distractor).length} against distractors, every ${every}th), ${calib.length} calibration, in ${elapsed.toFixed(0)} s; OVERLAP_SIDE=${OVERLAP_SIDE}`);

console.log('\n1. [calibration half] true pairs the service misses: why');
console.log('   query                                          cand-kp target-kp matches  failure                hyp  agree  grey  struct  pixels');
const f2 = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(2));
for (const r of calib.filter((x) => x.positive && !declared.has(key(x))).sort((a, b) => a.transform.localeCompare(b.transform) || a.query.localeCompare(b.query))) {
  console.log(`   ${r.query.slice(0, 46).padEnd(46)} ${String(r.candKp).padStart(7)} ${String(r.targetKp).padStart(9)} ${String(r.matches).padStart(7)}  ${(r.failure ?? `${r.inliers} inliers`).padEnd(21)} ${String(r.hyp ?? '-').padStart(4)}  ${f2(r.agreement).padStart(5)}  ${f2(r.grey).padStart(4)}  ${f2(r.structure).padStart(6)}  ${String(r.pixels ?? '-').padStart(6)}`);
}

// Curves. Negatives: every wrong pair (unrelated dev image or distractor) of the calibration half.
const negatives = calib.filter((r) => !r.positive && r.agreement !== undefined);
const missed = calib.filter((r) => r.positive && !declared.has(key(r)));
const count = (k: Rule) => ({
  tp: missed.filter((r) => passes(r, k)).length,
  fp: negatives.filter((r) => passes(r, k)).length,
  fpDistractor: negatives.filter((r) => r.distractor && passes(r, k)).length,
  fpQueries: new Set(negatives.filter((r) => passes(r, k)).map((r) => r.query)).size,
});
const best = (xs: number[]) => (xs.length ? Math.max(...xs).toFixed(3) : '-');
console.log(`\n2. [calibration half] ${missed.length} missed true pairs, ${negatives.length} wrong pairs with a hypothesis (${negatives.filter((r) => r.distractor).length} of them distractors)`);
const gates = [20, 40, 60, 100, 150, 100000];
const structures = [0, 0.5, 1, 1.5, 2, 3, 4, 6];
console.log(`   best agreement of a wrong pair, by keypoint gate (rows) and structure floor (columns), pixels >= ${OVERLAP_MIN_PIXELS}:`);
console.log(`   gate      ${structures.map((s) => `s>=${s}`.padStart(8)).join('')}`);
for (const g of gates) console.log(`   ${String(g).padStart(6)}    ${structures.map((s) => best(negatives.filter((r) => Math.min(r.candKp, r.targetKp) < g && r.structure! >= s && r.pixels! >= OVERLAP_MIN_PIXELS).map((r) => r.agreement!)).padStart(8)).join('')}`);
console.log('   missed true pairs with a hypothesis, by gate:', gates.map((g) => `${g}: ${missed.filter((r) => r.agreement !== undefined && Math.min(r.candKp, r.targetKp) < g).length}`).join(', '));
const gate = config.OVERLAP_BELOW_KEYPOINTS;
const floor = config.OVERLAP_MIN_STRUCTURE;
const cuts = [0.5, 0.55, 0.6, 0.65, 0.68, 0.7, 0.72, 0.75, 0.8, 0.85, 0.9];
console.log(`\n   OVERLAP_MIN_AGREEMENT curve at OVERLAP_BELOW_KEYPOINTS=${gate}, OVERLAP_MIN_STRUCTURE=${floor}: cut-off  missed pairs recovered  wrong pairs passing (distractors)  queries with one`);
for (const a of cuts) {
  const c = count({ gate, structure: floor, agreement: a, pixels: OVERLAP_MIN_PIXELS });
  console.log(`   ${a.toFixed(2).padStart(7)}  ${String(c.tp).padStart(22)}  ${`${c.fp} (${c.fpDistractor})`.padStart(32)}  ${String(c.fpQueries).padStart(16)}`);
}
const bestWrong = Math.max(0, ...negatives.filter((r) => Math.min(r.candKp, r.targetKp) < gate && r.structure! >= floor && r.pixels! >= OVERLAP_MIN_PIXELS).map((r) => r.agreement!));
const cutPick = cuts.find((a) => a >= bestWrong + 0.03);
console.log(`   rule: lowest grid value at least 0.03 above the best wrong pair's agreement (${bestWrong.toFixed(3)}): ${cutPick ?? 'none'}`);
const at = config.OVERLAP_MIN_AGREEMENT;
console.log(`\n   OVERLAP_MIN_STRUCTURE curve at OVERLAP_MIN_AGREEMENT=${at}: floor  missed pairs recovered  wrong pairs passing (distractors)`);
for (const s of structures) {
  const c = count({ gate, structure: s, agreement: at, pixels: OVERLAP_MIN_PIXELS });
  console.log(`   ${s.toFixed(1).padStart(5)}  ${String(c.tp).padStart(22)}  ${`${c.fp} (${c.fpDistractor})`.padStart(32)}`);
}
const recoveredAt = (s: number) => count({ gate, structure: s, agreement: at, pixels: OVERLAP_MIN_PIXELS }).tp;
const floorPick = [...structures].reverse().find((s) => recoveredAt(s) === recoveredAt(0));
console.log(`   rule: largest floor that recovers as many missed pairs as no floor: ${floorPick}`);
console.log('   structure of the missed true pairs with agreement >= the cut-off:', missed.filter((r) => r.agreement !== undefined && r.agreement >= at).map((r) => r.structure!.toFixed(2)).sort((x, y) => Number(x) - Number(y)).join(' '));
const rule: Rule = { gate, structure: floor, pixels: OVERLAP_MIN_PIXELS, agreement: at };
console.log(`\n3. with the configured rule (gate < ${rule.gate} keypoints, structure >= ${rule.structure}, pixels >= ${rule.pixels}, agreement >= ${rule.agreement}): recall before -> after; wrong pairs passing`);
for (const [name, set] of [['calibration', calib], ['held-back', rows.filter((r) => r.half === 'held-back')], ['both', rows]] as const) {
  for (const part of ['v2', 'v3'] as const) {
    const sub = set.filter((r) => V2_TRANSFORMS.has(r.transform) === (part === 'v2'));
    const pos = sub.filter((r) => r.positive);
    const neg = sub.filter((r) => !r.positive);
    const nullQ = new Set(sub.filter((r) => truth[r.query] === null).map((r) => r.query));
    const nullFp = new Set(neg.filter((r) => truth[r.query] === null && verified(r, rule)).map((r) => r.query));
    console.log(`   ${`${name} ${part}`.padEnd(15)} recall ${pos.filter((r) => verified(r)).length}/${pos.length} -> ${pos.filter((r) => verified(r, rule)).length}/${pos.length}; wrong pairs: dev ${neg.filter((r) => !r.distractor && verified(r, rule)).length}, distractor ${neg.filter((r) => r.distractor && verified(r, rule)).length}; null queries with a false positive ${nullFp.size}/${nullQ.size}`);
  }
}
console.log('\n   recall per transform (calibration / held-back / both): service -> with the rule');
const pct = (n: number, d: number) => (d ? ((100 * n) / d).toFixed(1) : '-');
for (const tr of [...new Set(rows.map((r) => r.transform))].sort((a, b) => Number(V2_TRANSFORMS.has(b)) - Number(V2_TRANSFORMS.has(a)) || a.localeCompare(b))) {
  const cells = (['calibration', 'held-back', undefined] as const).map((h) => {
    const pos = rows.filter((r) => r.positive && r.transform === tr && (h === undefined || r.half === h));
    return `${pct(pos.filter((r) => verified(r)).length, pos.length)} -> ${pct(pos.filter((r) => verified(r, rule)).length, pos.length)}`.padStart(13);
  });
  console.log(`   ${V2_TRANSFORMS.has(tr) ? 'v2' : 'v3'} ${tr.padEnd(16)} ${cells.join('  ')}`);
}
for (const r of rows.filter((x) => !x.positive && passes(x, rule))) console.log(`   FP [${r.half}] ${r.query} -> ${r.target} agreement ${r.agreement!.toFixed(3)} structure ${r.structure!.toFixed(2)} pixels ${r.pixels} hyp ${r.hyp}`);

// 4. A pinning floor for the overlap check: the dense check's confirmation needs its placement
// pinned (slid 6 or 10 px along its edges, the agreement drops); a hypothesis from 3 matches
// between two pictures of long straight edges is as much a coincidence of one line.
console.log(`\n4. pinning floor on the configured rule (every pair that passes it, whatever else the service decides; pinning measured where agreement >= 0.6): floor  true pairs passing cal / held  wrong pairs passing cal / held (distractors)`);
const passing = rows.filter((r) => passes(r, rule));
for (const f of [Number.NEGATIVE_INFINITY, 0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1]) {
  const ok = passing.filter((r) => (r.pinning ?? Number.NEGATIVE_INFINITY) >= f);
  const n = (pos: boolean, h: Half) => ok.filter((r) => r.positive === pos && r.half === h);
  const w = (h: Half) => `${n(false, h).length} (${n(false, h).filter((r) => r.distractor).length})`;
  console.log(`   ${(Number.isFinite(f) ? f.toFixed(2) : 'none').padStart(5)}  ${`${n(true, 'calibration').length} / ${n(true, 'held-back').length}`.padStart(27)}  ${`${w('calibration')} / ${w('held-back')}`.padStart(40)}`);
}
const sorted = (xs: Row[]) => xs.map((r) => (r.pinning ?? Number.NaN).toFixed(3)).sort((a, b) => Number(a) - Number(b)).join(' ');
console.log(`   pinning of the true pairs passing, calibration: ${sorted(passing.filter((r) => r.positive && r.half === 'calibration'))}`);
console.log(`   pinning of the wrong pairs passing, calibration: ${sorted(passing.filter((r) => !r.positive && r.half === 'calibration'))}`);
for (const r of passing.filter((x) => !x.positive)) console.log(`   wrong [${r.half}] ${r.query} -> ${r.target} agreement ${r.agreement!.toFixed(3)} pinning ${(r.pinning ?? Number.NaN).toFixed(3)} structure ${r.structure!.toFixed(2)}`);
void serviceCheck;
