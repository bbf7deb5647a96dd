/**
 * The descriptor kernel and Lowe's ratio (DESCRIPTOR_KERNEL, RATIO_TEST), chosen together on
 * the calibration half of the dev set (not a test; prints the table they were chosen on).
 *
 *   node --conditions=source --import tsx bench/matching/kernel-ratio.bench.ts [/work/shared/bench/dev]
 *
 * For each kernel x ratio of GRID (default l2:0.75,l2:0.8,rootsift:0.75,rootsift:0.8,rootsift:0.85),
 * bench/matching/calibrate.ts runs once (the real service, every query against all 44
 * originals, threshold=1) with those two variables, its rows kept in DIR (default
 * /tmp/doppel-kernel-ratio, `<kernel>-<ratio>.json`; an existing file is read, not re-run;
 * about 5 minutes a run on 2 cores). Then, per half: recall at THRESHOLD, the true pairs SIFT
 * verifies on its own (the geometric proofs, not the dense path), the median inlier count of
 * the true pairs, the most inliers a wrong pair reaches and the queries that would declare a
 * wrong original. And, from bench/matching/spread.bench.ts under the same two variables (kept
 * as `<kernel>-<ratio>.spread.txt`), the captioned copies of different originals that SIFT
 * verifies (every ordered pair of `border_text` copies: the same frame and caption on two
 * pictures, which a looser match lets through; the dev set's queries never meet another copy,
 * a folder scan does).
 *
 * Rule: the highest calibration recall with no wrong original declared on the calibration
 * half and no more captioned pairs verified than the first setting of GRID (the matcher as it
 * was, l2 at 0.75); among ties, the higher median true-pair inlier count (the margin the
 * threshold has).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Half } from './dev-split.bench.js';

const dev = process.argv[2] ?? '/work/shared/bench/dev';
const dir = process.env.DIR ?? '/tmp/doppel-kernel-ratio';
const grid = (process.env.GRID ?? 'l2:0.75,l2:0.8,rootsift:0.75,rootsift:0.8,rootsift:0.85').split(',').map((g) => {
  const [kernel, ratio] = g.split(':');
  if ((kernel !== 'l2' && kernel !== 'rootsift') || !(Number(ratio) > 0 && Number(ratio) <= 1)) throw new Error(`GRID: expected kernel:ratio with kernel l2|rootsift, got ${g}`);
  return { kernel, ratio: String(Number(ratio)) };
});
const threshold = Number(process.env.THRESHOLD ?? 0.5);
const calibrate = fileURLToPath(new URL('./calibrate.ts', import.meta.url));
const spread = fileURLToPath(new URL('./spread.bench.ts', import.meta.url));
mkdirSync(dir, { recursive: true });

interface Checked { relative_path: string; score: number; inliers: number; method: string }
interface Row { query: string; truth: string | null; half: Half; checked: Checked[] }

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface Figures { recall: number; positives: number; sift: number; medianInliers: number; maxWrongInliers: number; wrongDeclared: number }
function figuresOf(rows: Row[], half: Half): Figures {
  const mine = rows.filter((r) => r.half === half);
  const truePair = (r: Row) => r.checked.find((c) => c.relative_path === r.truth);
  const positives = mine.filter((r) => r.truth !== null);
  const found = positives.filter((r) => (truePair(r)?.score ?? 0) >= threshold);
  const wrong = mine.flatMap((r) => r.checked.filter((c) => c.relative_path !== r.truth));
  return {
    recall: found.length,
    positives: positives.length,
    sift: found.filter((r) => truePair(r)!.method === 'sift').length,
    medianInliers: median(positives.map((r) => truePair(r)?.inliers ?? 0)),
    maxWrongInliers: Math.max(0, ...wrong.map((c) => c.inliers)),
    wrongDeclared: mine.filter((r) => r.checked.some((c) => c.relative_path !== r.truth && c.score >= threshold)).length,
  };
}

/**
 * Runs one of the two scripts under a kernel x ratio unless its output file is already kept:
 * calibrate.ts writes its rows there itself (RAW), spread.bench.ts's printout is kept.
 */
function runOnce(script: string, file: string, kernel: string, ratio: string, output: 'raw' | 'stdout'): void {
  if (existsSync(file)) return;
  process.stderr.write(`${basename(script)} with DESCRIPTOR_KERNEL=${kernel} RATIO_TEST=${ratio} -> ${file}\n`);
  const run = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', script, dev], {
    env: { ...process.env, DESCRIPTOR_KERNEL: kernel, RATIO_TEST: ratio, ...(output === 'raw' ? { RAW: file } : {}) },
    encoding: 'utf8',
    stdio: ['ignore', output === 'stdout' ? 'pipe' : 'ignore', 'inherit'],
  });
  if (run.status !== 0) throw new Error(`${basename(script)} failed for ${kernel}:${ratio} (exit ${run.status})`);
  if (output === 'stdout') writeFileSync(file, run.stdout);
}

/** Captioned copies of different originals that SIFT verifies, from spread.bench.ts's two summary lines. */
function captionedVerified(kernel: string, ratio: string): number {
  const file = join(dir, `${kernel}-${ratio}.spread.txt`);
  runOnce(spread, file, kernel, ratio, 'stdout');
  const text = readFileSync(file, 'utf8');
  const cells = /rejects (\d+) of (\d+) captioned wrong fits/.exec(text);
  const ring = /MIN_SPREAD_CELLS keeps: (\d+) captioned wrong fits/.exec(text);
  if (!cells || !ring) throw new Error(`${file}: no summary lines`);
  return Number(cells[2]) - Number(cells[1]) - Number(ring[1]);
}

const results = grid.map(({ kernel, ratio }) => {
  const file = join(dir, `${kernel}-${ratio}.json`);
  runOnce(calibrate, file, kernel, ratio, 'raw');
  const rows = (JSON.parse(readFileSync(file, 'utf8')) as { rows: Row[] }).rows;
  return { kernel, ratio, calibration: figuresOf(rows, 'calibration'), heldBack: figuresOf(rows, 'held-back'), captioned: captionedVerified(kernel, ratio) };
});

const cell = (f: Figures) => `${f.recall}/${f.positives} (${((100 * f.recall) / f.positives).toFixed(1)}%) | ${f.sift} | ${f.medianInliers} | ${f.maxWrongInliers} | ${f.wrongDeclared}`;
const cols = 'recall | SIFT-verified | median inliers | wrong pair max inliers | wrong declared';
console.log(`threshold ${threshold}; per half (calibration, then held-back): recall, true pairs SIFT verifies, median true-pair inliers, most inliers of a wrong pair, queries declaring a wrong original; then the captioned pairs SIFT verifies`);
console.log(`| kernel | ratio | ${cols} | ${cols} | captioned pairs verified |`);
console.log(`|${' --- |'.repeat(13)}`);
for (const r of results) console.log(`| ${r.kernel} | ${r.ratio} | ${cell(r.calibration)} | ${cell(r.heldBack)} | ${r.captioned} |`);
const before = results[0]!;
const eligible = results.filter((r) => r.calibration.wrongDeclared === 0 && r.captioned <= before.captioned);
const chosen = eligible.sort((a, b) => b.calibration.recall - a.calibration.recall || b.calibration.medianInliers - a.calibration.medianInliers)[0];
console.log(chosen ? `chosen on the calibration half: DESCRIPTOR_KERNEL=${chosen.kernel} RATIO_TEST=${chosen.ratio}` : 'no setting meets the rule');
