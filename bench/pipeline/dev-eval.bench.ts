/**
 * `doppel eval` on the dev set, reported the way the dev set asks: v2 and v3 transforms
 * apart, on the calibration half, the held-back half and both (the split of
 * bench/matching/dev-split.bench.ts, the one the matcher's constants were chosen on), and
 * per transform. The scoring is eval's own (summarise() of @doppel/cli); this script only
 * picks the queries, runs the real CLI command and cuts its outcomes into those sets.
 *   node --conditions=source --import tsx bench/pipeline/dev-eval.bench.ts [--every N] [--from-json EVAL.json] [--json OUT.json]
 * --every N: every Nth query of each transform (default 1: all 1,456 queries);
 * --from-json: re-cut the outcomes of an earlier `doppel eval --json` run instead of running one.
 * Env: BENCH_DIR (../shared/bench/dev), BENCH_CONCURRENCY (2, queries in flight).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { summarise, transformOf, type QueryOutcome } from '@doppel/cli';
import { freePorts } from '@doppel/service-kit/testing';
import { devSplit, V2_TRANSFORMS, type Half } from '../matching/dev-split.bench.js';
import { figure, loadAverage } from '../figures.record.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const { values: flags } = parseArgs({ options: { every: { type: 'string', default: '1' }, 'from-json': { type: 'string' }, json: { type: 'string' } } });
const dev = resolve(process.env.BENCH_DIR ?? join(repo, '..', 'shared', 'bench', 'dev'));
const every = Number(flags.every);
if (!Number.isInteger(every) || every < 1) throw new Error(`--every: expected a whole number >= 1, got ${flags.every}`);
const truth = (JSON.parse(readFileSync(join(dev, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
const index = readdirSync(join(dev, 'index')).filter((f) => !f.startsWith('.')).sort();
const halfOf = devSplit(index, truth);
const V3 = [...new Set(Object.keys(truth).map(transformOf))].filter((t) => !V2_TRANSFORMS.has(t)).sort();
const V2 = [...V2_TRANSFORMS];
const log = (s: string) => process.stderr.write(`${s}\n`);

interface EvalJson {
  outcomes: QueryOutcome[];
  latency_ms: Record<'encode' | 'search' | 'match' | 'total', { p50: number; p99: number }>;
  index_images_per_s: number; query_s: number; threshold: number;
  pr_curve: Array<{ threshold: number; precision: number; recall: number; null_false_positive_rate: number }>;
}

async function runEval(): Promise<EvalJson> {
  const work = mkdtempSync(join(tmpdir(), 'doppel-dev-eval-'));
  // Every Nth query of each transform (sorted by name), the start shifted by the transform's
  // rank so that a subset still spans originals of both halves and every transform.
  const ts = [...new Set(Object.keys(truth).map(transformOf))].sort();
  const entries = ts.flatMap((t, j) => Object.entries(truth).filter(([q]) => transformOf(q) === t).sort(([a], [b]) => a.localeCompare(b)).filter((_, i) => (i + j) % every === 0));
  const truthFile = join(work, 'truth.json');
  writeFileSync(truthFile, JSON.stringify({ truth: Object.fromEntries(entries) }));
  const out = join(work, 'eval.json');
  const [p, e, s, m] = (await freePorts(4)).map(String);
  const args = [
    join(repo, 'packages/cli/bin/doppel.mjs'), 'eval', '--index', join(dev, 'index'), '--queries', join(dev, 'queries'), '--truth', truthFile,
    '--groups', `v2=${V2.join(',')}`, '--groups', `v3=${V3.join(',')}`, '--json', out, '--concurrency', process.env.BENCH_CONCURRENCY ?? '2',
    '--home', join(work, 'home'), '--port', p!, '--encoder-port', e!, '--search-port', s!, '--matching-port', m!,
  ];
  log(`doppel eval on ${entries.length} of ${Object.keys(truth).length} queries (every ${every}th of each transform), load ${loadAverage()}`);
  const child = spawn(process.execPath, args, { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] });
  const code = await new Promise<number | null>((res) => child.once('exit', res));
  if (code !== 0) throw new Error(`doppel eval exited with ${code}`);
  const r = JSON.parse(readFileSync(out, 'utf8')) as EvalJson;
  rmSync(work, { recursive: true, force: true });
  return r;
}

const startLoad = loadAverage();
const r: EvalJson = flags['from-json'] ? (JSON.parse(readFileSync(resolve(flags['from-json']), 'utf8')) as EvalJson) : await runEval();
const endLoad = loadAverage();

type Sel = (o: QueryOutcome) => boolean;
const halves: Array<[string, Sel]> = [
  ['both', () => true],
  ['calibration', (o) => halfOf(o.query) === ('calibration' satisfies Half)],
  ['held-back', (o) => halfOf(o.query) === ('held-back' satisfies Half)],
];
const groups: Array<[string, Sel]> = [
  ['all', () => true],
  ['v2', (o) => V2_TRANSFORMS.has(transformOf(o.query))],
  ['v3', (o) => !V2_TRANSFORMS.has(transformOf(o.query))],
];
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
// Percentages with one decimal, as printed.
const p1 = (x: number) => Math.round(1000 * x) / 10;
const lines = ['| half | transforms | queries (null) | precision | recall | null FP rate | candidate recall@1 / @10 | F1 |', '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |'];
for (const [h, inHalf] of halves) {
  for (const [g, inGroup] of groups) {
    const s = summarise(r.outcomes.filter((o) => inHalf(o) && inGroup(o)));
    lines.push(`| ${h} | ${g} | ${s.queries} (${s.nulls}) | ${pct(s.precision)} | ${pct(s.recall)} | ${pct(s.null_false_positive_rate)} | ${pct(s.recall_at_1)} / ${pct(s.recall_at_10)} | ${pct(s.f1)} |`);
    const k = `eval.${h}.${g}`;
    const what = `${h === 'both' ? 'both halves' : `${h} half`}, ${g === 'all' ? 'all transforms' : `${g} transforms`}`;
    figure(`${k}.queries`, `${what}: queries (of them null)`, `${s.queries} (${s.nulls})`);
    figure(`${k}.precision`, `${what}: precision`, p1(s.precision), '%');
    figure(`${k}.recall`, `${what}: recall`, p1(s.recall), '%');
    figure(`${k}.null_fp`, `${what}: false-positive rate on null queries`, p1(s.null_false_positive_rate), '%');
    figure(`${k}.recall_at_1`, `${what}: candidate recall@1`, p1(s.recall_at_1), '%');
    figure(`${k}.recall_at_10`, `${what}: candidate recall@10`, p1(s.recall_at_10), '%');
    figure(`${k}.f1`, `${what}: F1`, p1(s.f1), '%');
  }
}
console.log(lines.join('\n'));

const transforms = [...new Set(r.outcomes.map((o) => transformOf(o.query)))].sort((a, b) => Number(V2_TRANSFORMS.has(b)) - Number(V2_TRANSFORMS.has(a)) || a.localeCompare(b));
const tl = ['\n| transform | set | recall: both / calibration / held-back | candidate recall@10 (both) | null FP (both) | declared wrong |', '| --- | --- | ---: | ---: | ---: | ---: |'];
for (const t of transforms) {
  const os = r.outcomes.filter((o) => transformOf(o.query) === t);
  const [b, c, h] = halves.map(([, inHalf]) => summarise(os.filter(inHalf)));
  const wrong = os.reduce((n, o) => n + o.declared.filter((d) => d !== o.expected).length, 0);
  tl.push(`| ${t} | ${V2_TRANSFORMS.has(t) ? 'v2' : 'v3'} | ${pct(b!.recall)} / ${pct(c!.recall)} / ${pct(h!.recall)} | ${pct(b!.recall_at_10)} | ${pct(b!.null_false_positive_rate)} | ${wrong} |`);
  figure(`eval.transform.${t}.recall`, `${t}: recall, both halves / calibration / held-back`, `${pct(b!.recall)} / ${pct(c!.recall)} / ${pct(h!.recall)}`);
  figure(`eval.transform.${t}.recall_at_10`, `${t}: candidate recall@10`, p1(b!.recall_at_10), '%');
  figure(`eval.transform.${t}.null_fp`, `${t}: false-positive rate on null queries`, p1(b!.null_false_positive_rate), '%');
}
console.log(tl.join('\n'));

const l = r.latency_ms;
console.log(`\nlatency p50 / p99 ms: encode ${l.encode.p50} / ${l.encode.p99}, search ${l.search.p50} / ${l.search.p99}, match ${l.match.p50} / ${l.match.p99}, whole query ${l.total.p50} / ${l.total.p99}; indexing ${r.index_images_per_s} images/s; load ${startLoad} -> ${endLoad}`);
for (const st of ['encode', 'search', 'match', 'total'] as const) {
  figure(`eval.latency.${st}.p50_ms`, `pipeline query, ${st === 'total' ? 'whole query' : `${st} stage`}: p50`, l[st].p50, 'ms');
  figure(`eval.latency.${st}.p99_ms`, `pipeline query, ${st === 'total' ? 'whole query' : `${st} stage`}: p99`, l[st].p99, 'ms');
}
figure('eval.index_images_per_s', 'indexing the 44 originals', r.index_images_per_s, 'images/s');
figure('eval.load', 'load average before -> after', `${startLoad} -> ${endLoad}`);
const at = (t: number) => r.pr_curve.find((p) => Math.abs(p.threshold - t) < 1e-9);
for (const t of [0.4, 0.45, 0.5, 0.6]) {
  const p = at(t);
  if (p) figure(`eval.curve.${t}`, `threshold ${t}: precision / recall / null FP (all queries, from the same run)`, `${pct(p.precision)} / ${pct(p.recall)} / ${pct(p.null_false_positive_rate)}`);
}
if (flags.json) writeFileSync(resolve(flags.json), `${JSON.stringify(r, null, 1)}\n`);
