/**
 * The neighbour described at a small copy's resolution (RESAMPLE_SMALL; not a test, prints
 * the curve RESAMPLE_MIN_MATCHES was chosen on). In-process, SIFT only:
 *
 *   node --conditions=source --import tsx bench/matching/resample.bench.ts [/work/shared/bench/dev]
 *
 * For every query smaller than the working size and every index image whose working size
 * is larger than the query (the pairs the service's rule applies to), the first pass as the
 * service runs it; each pair it leaves undecided is verified again against the neighbour
 * shrunk to the query's own long side (then enlarged like the query, `resampleTo` of the
 * service's decode). Prints, on the calibration half (bench/matching/dev-split.bench.ts),
 * the RESAMPLE_MIN_MATCHES curve: the share of undecided pairs sent (each costs one small
 * extraction, the part the rule bounds), the true pairs the second description verifies and
 * the wrong ones, with the most inliers a wrong pair reaches; the gate the rule picks (the
 * lowest sending under 5% of the undecided calibration pairs, as for FINE_MIN_MATCHES); then
 * the true pairs it verifies on each half at that gate. The fine pass is left out: it applies
 * to crops of large originals, this rule to copies of less resolution.
 * STEP=n keeps every n-th query; CACHE=rows.json keeps the pair rows, FROM=rows.json re-prints.
 */
import { loadavg } from 'node:os';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MatchingConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { decodeImage, extractAdaptive, extractCandidateFeatures, extractionOf, verifySift, verifyOptionsOf, type Features } from '@doppel/instance-matching';
import { transformOf } from '@doppel/cli';
import { devSplit, type Half } from './dev-split.bench.js';

const dev = process.argv[2] ?? '/work/shared/bench/dev';
const config = loadConfig(MatchingConfig, { ...process.env, LOG_LEVEL: 'silent' });
const accept = 10;
const step = Number(process.env.STEP ?? 1);
const SHARE = 0.05;
const truth = (JSON.parse(await readFile(path.join(dev, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
const index = (await readdir(path.join(dev, 'index'))).filter((f) => !f.startsWith('.')).sort();
const halfOf = devSplit(index, truth);
const limits = { maxPixels: config.MAX_PIXELS, maxBytes: config.MAX_IMAGE_BYTES, width: config.WIDTH, height: config.HEIGHT, thumbSize: 32, enlargeBelow: config.ENLARGE_BELOW };
const extraction = extractionOf(config);
const opts = verifyOptionsOf(config);
const longOf = (f: { width: number; height: number }) => Math.max(f.width, f.height);

interface PairRow {
  query: string; target: string; half: Half; transform: string; positive: boolean;
  /** First pass: inliers and one-to-one matches. */
  first: number; matches: number;
  /** Inliers against the target at the query's resolution (undecided pairs only). */
  resampled?: number;
}

let rows: PairRow[];
let elapsed = 0;
let extractions = 0;
let extractMs = 0;
if (process.env.FROM) ({ rows, elapsed, extractions, extractMs } = JSON.parse(await readFile(process.env.FROM, 'utf8')) as { rows: PairRow[]; elapsed: number; extractions: number; extractMs: number });
else {
  const t0 = performance.now();
  const bytesOf = new Map<string, Buffer>();
  const coarse = new Map<string, Features>();
  for (const f of index) {
    const bytes = await readFile(path.join(dev, 'index', f));
    bytesOf.set(f, bytes);
    coarse.set(f, extractAdaptive((await decodeImage(bytes, limits)).grey, extraction));
  }
  // The service caches a neighbour's description per long side: so does this bench.
  const resampled = new Map<string, Features>();
  rows = [];
  const queries = Object.keys(truth).sort().filter((_, i) => i % step === 0);
  for (const [n, q] of queries.entries()) {
    const img = await decodeImage(await readFile(path.join(dev, 'queries', q)), limits);
    const own = longOf(img);
    if (own >= config.WIDTH) continue;
    const cand = extractCandidateFeatures(img.grey, extraction);
    for (const t of index) {
      if (own >= longOf(coarse.get(t)!)) continue;
      const v = verifySift(cand, coarse.get(t)!, opts, accept);
      const row: PairRow = { query: q, target: t, half: halfOf(q), transform: transformOf(q), positive: truth[q] === t, first: v.inliers, matches: v.matches };
      if (v.inliers < accept) {
        const key = `${t}\u0000${own}`;
        let f = resampled.get(key);
        if (!f) {
          const e0 = performance.now();
          f = extractAdaptive((await decodeImage(bytesOf.get(t)!, { ...limits, resampleTo: own })).grey, extraction);
          extractMs += performance.now() - e0;
          resampled.set(key, f);
        }
        row.resampled = verifySift(cand, f, opts, accept).inliers;
      }
      rows.push(row);
    }
    if (n % 200 === 0) process.stderr.write(`${n}/${queries.length} queries, ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  }
  extractions = resampled.size;
  elapsed = (performance.now() - t0) / 1000;
  if (process.env.CACHE) await writeFile(process.env.CACHE, JSON.stringify({ rows, elapsed, extractions, extractMs }));
}

const undecided = rows.filter((r) => r.resampled !== undefined);
const calib = undecided.filter((r) => r.half === 'calibration');
console.log(`WIDTH=${config.WIDTH} MAX_KEYPOINTS=${config.MAX_KEYPOINTS} ENLARGE_BELOW=${config.ENLARGE_BELOW}; ${rows.length} pairs of a copy smaller than the neighbour's working size, ${undecided.length} undecided by the first pass (${calib.length} calibration); ${extractions} resampled descriptions (decode and SIFT: mean ${(extractMs / Math.max(1, extractions)).toFixed(1)} ms, load ${loadavg()[0]!.toFixed(1)}), ${elapsed.toFixed(0)} s`);
console.log('\n1. [calibration half] RESAMPLE_MIN_MATCHES curve: an undecided pair with at least this many first-pass matches is verified at the copy\'s resolution');
console.log('   min-matches  sent (share of undecided)  true-verified  wrong-verified  max-wrong-inliers');
const sentAt = (set: PairRow[], m: number) => set.filter((r) => r.matches >= m);
const GATES = [0, 3, 5, 6, 7, 8, 9, 10, 12];
for (const m of GATES) {
  const sent = sentAt(calib, m);
  const wrong = sent.filter((r) => !r.positive);
  console.log(`   ${String(m).padStart(11)}  ${`${sent.length} (${((100 * sent.length) / calib.length).toFixed(1)}%)`.padStart(25)}  ${String(sent.filter((r) => r.positive && r.resampled! >= accept).length).padStart(13)}  ${String(wrong.filter((r) => r.resampled! >= accept).length).padStart(14)}  ${String(Math.max(0, ...wrong.map((r) => r.resampled!))).padStart(17)}`);
}
const pick = GATES.find((m) => sentAt(calib, m).length < SHARE * calib.length);
console.log(`   rule: the lowest gate sending under ${100 * SHARE}% of the undecided calibration pairs: ${pick ?? 'none'}`);
// The service's default must be the gate this prints (a default left behind once made the pass a no-op).
if (pick !== undefined && pick !== config.RESAMPLE_MIN_MATCHES) console.log(`   NOTE: RESAMPLE_MIN_MATCHES is ${config.RESAMPLE_MIN_MATCHES} in this run's config, not the ${pick} the rule picks`);

console.log(`\n2. at RESAMPLE_MIN_MATCHES=${pick}: pairs the second description verifies (first pass under ${accept} inliers)`);
for (const half of ['calibration', 'held-back'] as const) {
  const sent = sentAt(undecided.filter((r) => r.half === half), pick ?? Number.POSITIVE_INFINITY);
  const won = sent.filter((r) => r.resampled! >= accept);
  console.log(`   ${half}: ${won.filter((r) => r.positive).length} true, ${won.filter((r) => !r.positive).length} wrong; max wrong inliers ${Math.max(0, ...sent.filter((r) => !r.positive).map((r) => r.resampled!))}`);
  for (const r of won) console.log(`     ${r.positive ? 'true ' : 'WRONG'} ${r.query.slice(0, 56).padEnd(56)} first ${r.first} (${r.matches} matches) -> ${r.resampled}`);
}
const missed = undecided.filter((r) => r.positive && r.resampled! >= accept && r.matches < (pick ?? 0));
if (missed.length) console.log(`   under the gate (would verify, not sent): ${missed.map((r) => `${r.query} (${r.matches} matches)`).join(', ')}`);
