/**
 * REFINE_TOP: how many of a query's first neighbours (search-rank order) go to the fine and
 * the resampled passes whatever their first-pass matches (not a test; prints the curve the
 * default was chosen on). Runs the whole pipeline on the dev set once per value
 * (bench/pipeline/dev-eval.bench.ts, the real stack over HTTP, REFINE_TOP in its env):
 *
 *   node --conditions=source --import tsx bench/matching/refine-top.bench.ts [--values 0,1,2] [--keep DIR]
 *
 * Prints, per value and half (bench/matching/dev-split.bench.ts): recall, true copies gained
 * and lost against the first value (apart: those whose original changed candidate rank between
 * the runs), precision, wrong declarations, the null false-positive rate, and the
 * match stage's p50 / p99 / mean per query (the cost: each refined pair is one more
 * verification against a 4x larger description). The rule: the smallest value after which
 * the calibration half gains no further true copy, with no wrong declaration added.
 * Env passes through to the stack (BENCH_DISTRACTORS=10000 measures it with distractors).
 * --keep DIR keeps each run's eval JSON there (refine-top-R.json); --from DIR re-prints them.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { quantile, summarise, type QueryOutcome } from '@doppel/cli';
import { devSplit, type Half } from './dev-split.bench.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const { values: flags } = parseArgs({ options: { values: { type: 'string', default: '0,1,2' }, keep: { type: 'string' }, from: { type: 'string' } } });
const values = flags.values.split(',').map(Number);
if (values.some((v) => !Number.isInteger(v) || v < 0)) throw new Error(`--values: expected whole numbers >= 0, got ${flags.values}`);
const dev = resolve(process.env.BENCH_DIR ?? join(repo, '..', 'shared', 'bench', 'dev'));
const truth = (JSON.parse(readFileSync(join(dev, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
const halfOf = devSplit(readdirSync(join(dev, 'index')).filter((f) => !f.startsWith('.')), truth);
const dir = resolve(flags.from ?? flags.keep ?? mkdtempSync(join(tmpdir(), 'doppel-refine-top-')));
mkdirSync(dir, { recursive: true });
const load = () => loadavg().map((v) => v.toFixed(2)).join(' ');

async function run(value: number): Promise<QueryOutcome[]> {
  const file = join(dir, `refine-top-${value}.json`);
  if (!flags.from || !existsSync(file)) {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', join(repo, 'bench/pipeline/dev-eval.bench.ts'), '--json', file], {
      cwd: repo, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, REFINE_TOP: String(value) },
    });
    const code = await new Promise<number | null>((res) => child.once('exit', res));
    if (code !== 0) throw new Error(`dev-eval with REFINE_TOP=${value} exited with ${code}`);
    process.stderr.write(`REFINE_TOP=${value}: ${((performance.now() - t0) / 1000).toFixed(0)} s, load ${load()}\n`);
  }
  return (JSON.parse(readFileSync(file, 'utf8')) as { outcomes: QueryOutcome[] }).outcomes;
}

const startLoad = load();
const runs = new Map<number, QueryOutcome[]>();
for (const v of values) runs.set(v, await run(v));
const found = (o: QueryOutcome) => o.expected !== null && o.declared.includes(o.expected);
const rankOf = (o: QueryOutcome) => (o.expected === null ? -1 : (o.candidates ?? []).indexOf(o.expected));
const base = runs.get(values[0]!)!;
const baseOf = new Map(base.map((o) => [o.query, o]));
const sameRank = (o: QueryOutcome) => rankOf(o) === rankOf(baseOf.get(o.query)!);

console.log(`dev set ${dev}, ${base.length} queries, ${process.env.BENCH_DISTRACTORS ?? 0} distractors; load ${startLoad} -> ${load()}`);
// Each run builds its ANN index anew, and with distractors a few candidate lists differ from
// run to run: a copy whose original changed rank is counted apart ("moved"), not as a gain or
// loss of the value. Any other difference between runs stays in the same-rank columns.
console.log('| REFINE_TOP | half | recall | gained / lost vs first value, same candidate rank | copies whose original moved rank: gained / lost | precision | wrong declared | null FP | match ms p50 / p99 / mean |');
console.log('| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const gains = new Map<number, number>();
for (const v of values) {
  for (const half of ['calibration', 'held-back', 'both'] as const) {
    const os = runs.get(v)!.filter((o) => half === 'both' || halfOf(o.query) === (half satisfies Half));
    const s = summarise(os);
    const gainedAll = os.filter((o) => found(o) && !found(baseOf.get(o.query)!));
    const lostAll = os.filter((o) => !found(o) && found(baseOf.get(o.query)!));
    const gained = gainedAll.filter(sameRank).length;
    const lost = lostAll.filter(sameRank).length;
    const moved = `+${gainedAll.length - gained} / -${lostAll.length - lost}`;
    const wrong = os.reduce((n, o) => n + o.declared.filter((d) => d !== o.expected).length, 0);
    const ms = os.flatMap((o) => (o.timings_ms ? [o.timings_ms.match] : []));
    const mean = ms.reduce((a, b) => a + b, 0) / Math.max(1, ms.length);
    if (half === 'calibration') gains.set(v, gained - lost - 1000 * wrong);
    console.log(`| ${v} | ${half} | ${pct(s.recall)} | +${gained} / -${lost} | ${moved} | ${pct(s.precision)} | ${wrong} | ${pct(s.null_false_positive_rate)} | ${quantile(ms, 0.5).toFixed(1)} / ${quantile(ms, 0.99).toFixed(1)} / ${mean.toFixed(1)} |`);
  }
}
// The smallest value reaching the best calibration gain (wrong declarations count against it).
const best = Math.max(...gains.values());
const pick = [...values].sort((a, b) => a - b).find((v) => gains.get(v) === best);
console.log(`rule: the smallest value after which the calibration half gains no further true copy (same candidate rank) and no wrong declaration is added: ${pick}`);
console.log(`runs kept in ${dir}`);
