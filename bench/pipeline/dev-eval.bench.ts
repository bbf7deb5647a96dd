/**
 * `doppel eval` on the dev set, reported the way the dev set asks: v2 and v3 transforms
 * apart, on the calibration half, the held-back half and both (the split of
 * bench/matching/dev-split.bench.ts, the one the matcher's constants were chosen on), and
 * per transform. The scoring is eval's own (summarise() of @doppel/cli); this script only
 * picks the queries, runs the real CLI command and cuts its outcomes into those sets.
 *   node --conditions=source --import tsx bench/pipeline/dev-eval.bench.ts [--every N] [--shard I/N --save FILE] [--merge DIR] [--from-json EVAL.json] [--json OUT.json]
 * --every N: every Nth query of each transform (default 1: all 1,456 queries);
 * --shard I/N --save FILE: run only the I-th of N interleaved shares of those queries (each
 *   spans every transform and both halves), on its own stack and index, and save its
 *   outcomes to FILE; figures of the whole set come from --merge;
 * --merge DIR: cut the outcomes of the shards saved in DIR (all N of one run, checked) as if
 *   one run had made them: quality, the threshold curve and latency percentiles over every query;
 * --from-json: re-cut the outcomes of an earlier `doppel eval --json` run instead of running one.
 * Env: BENCH_DIR (../shared/bench/dev), BENCH_CONCURRENCY (2, queries in flight);
 * BENCH_DISTRACTORS (0): index that many unrelated images of DISTRACTORS (/work/distractors,
 * bench/distractors/build.ts; first N by name) with the originals, for precision at scale:
 * figures then go under `evalN.` (e.g. eval10000.) instead of `eval.`. One stack indexes them
 * all, so use it without --shard.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { DISTRACTOR_PREFIX, placeFile } from '../distractors/placed.files.js';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { prCurve, quantile, summarise, transformOf, type QueryOutcome } from '@doppel/cli';
import { freePorts } from '@doppel/service-kit/testing';
import { devSplit, V2_TRANSFORMS, type Half } from '../matching/dev-split.bench.js';
import { figure, loadAverage } from '../figures.record.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const { values: flags } = parseArgs({
  options: { every: { type: 'string', default: '1' }, shard: { type: 'string' }, save: { type: 'string' }, merge: { type: 'string' }, 'from-json': { type: 'string' }, json: { type: 'string' } },
});
const dev = resolve(process.env.BENCH_DIR ?? join(repo, '..', 'shared', 'bench', 'dev'));
const every = Number(flags.every);
if (!Number.isInteger(every) || every < 1) throw new Error(`--every: expected a whole number >= 1, got ${flags.every}`);
const shardM = flags.shard ? /^(\d+)\/(\d+)$/.exec(flags.shard) : undefined;
const shard = shardM ? { index: Number(shardM[1]), of: Number(shardM[2]) } : undefined;
if (flags.shard && (!shard || shard.index < 1 || shard.index > shard.of)) throw new Error(`--shard: expected I/N with 1 <= I <= N, got ${flags.shard}`);
if (shard && !flags.save) throw new Error('--shard needs --save FILE (the merge reads it)');
const truth = (JSON.parse(readFileSync(join(dev, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
const index = readdirSync(join(dev, 'index')).filter((f) => !f.startsWith('.')).sort();
const halfOf = devSplit(index, truth);
const V3 = [...new Set(Object.keys(truth).map(transformOf))].filter((t) => !V2_TRANSFORMS.has(t)).sort();
const V2 = [...V2_TRANSFORMS];
const log = (s: string) => process.stderr.write(`${s}\n`);
const distractorDir = resolve(process.env.DISTRACTORS ?? '/work/distractors');
const nDistractors = Number(process.env.BENCH_DISTRACTORS ?? 0);
if (!Number.isInteger(nDistractors) || nDistractors < 0) throw new Error(`BENCH_DISTRACTORS: expected a whole number >= 0, got ${process.env.BENCH_DISTRACTORS}`);
if (nDistractors > 0 && !existsSync(distractorDir)) throw new Error(`BENCH_DISTRACTORS=${nDistractors} but ${distractorDir} is missing (bench/distractors/build.ts makes it; DISTRACTORS names another folder)`);
/** Prefix of the figures this run records. */
const F = nDistractors > 0 ? `eval${nDistractors}` : 'eval';

/** index/ and queries/ under one folder: the dev set's files plus the distractors, hard-linked (copied across file systems). */
function withDistractors(work: string): { index: string; queries: string } {
  const index = join(work, 'set', 'index');
  const queries = join(work, 'set', 'queries');
  mkdirSync(index, { recursive: true });
  mkdirSync(queries, { recursive: true });
  for (const f of readdirSync(join(dev, 'index'))) placeFile(join(dev, 'index', f), join(index, f));
  for (const f of readdirSync(join(dev, 'queries'))) placeFile(join(dev, 'queries', f), join(queries, f));
  const extra = readdirSync(distractorDir).filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).sort().slice(0, nDistractors);
  if (extra.length < nDistractors) throw new Error(`${distractorDir} holds ${extra.length} images, fewer than BENCH_DISTRACTORS=${nDistractors}`);
  for (const f of extra) placeFile(join(distractorDir, f), join(index, `${DISTRACTOR_PREFIX}${f}`));
  return { index, queries };
}

interface EvalJson {
  outcomes: QueryOutcome[];
  latency_ms: Record<'encode' | 'search' | 'match' | 'total', { p50: number; p99: number }>;
  index_images_per_s: number; query_s: number; threshold: number;
  pr_curve: Array<{ threshold: number; precision: number; recall: number; null_false_positive_rate: number }>;
  /** Set on a shard's saved outcomes. */
  shard?: { index: number; of: number; every: number };
}

async function runEval(): Promise<EvalJson> {
  // Under the repo: the distractors are hard-linked, which needs the same file system.
  if (nDistractors > 0) mkdirSync(join(repo, '.doppel'), { recursive: true });
  const work = nDistractors > 0 ? mkdtempSync(join(repo, '.doppel', 'dev-eval-')) : mkdtempSync(join(tmpdir(), 'doppel-dev-eval-'));
  const set = nDistractors > 0 ? withDistractors(work) : { index: join(dev, 'index'), queries: join(dev, 'queries') };
  // Every Nth query of each transform (sorted by name), the start shifted by the transform's
  // rank so that a subset still spans originals of both halves and every transform.
  const ts = [...new Set(Object.keys(truth).map(transformOf))].sort();
  const sampled = ts.flatMap((t, j) => Object.entries(truth).filter(([q]) => transformOf(q) === t).sort(([a], [b]) => a.localeCompare(b)).filter((_, i) => (i + j) % every === 0));
  // Shards interleave the sampled list (grouped by transform, names sorted inside): each gets
  // every Nth query of every transform, so each finishes in about the same time.
  const entries = shard ? sampled.filter((_, i) => i % shard.of === shard.index - 1) : sampled;
  const truthFile = join(work, 'truth.json');
  writeFileSync(truthFile, JSON.stringify({ truth: Object.fromEntries(entries) }));
  const out = join(work, 'eval.json');
  const [p, e, s, m] = (await freePorts(4)).map(String);
  const args = [
    join(repo, 'packages/cli/bin/doppel.mjs'), 'eval', '--index', set.index, '--queries', set.queries, '--truth', truthFile,
    '--groups', `v2=${V2.join(',')}`, '--groups', `v3=${V3.join(',')}`, '--json', out, '--concurrency', process.env.BENCH_CONCURRENCY ?? '2',
    '--home', join(work, 'home'), '--port', p!, '--encoder-port', e!, '--search-port', s!, '--matching-port', m!,
  ];
  log(`${nDistractors} distractors indexed with the originals; doppel eval on ${entries.length} of ${Object.keys(truth).length} queries (every ${every}th of each transform${shard ? `, shard ${shard.index} of ${shard.of}` : ''}), load ${loadAverage()}`);
  const child = spawn(process.execPath, args, { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] });
  const code = await new Promise<number | null>((res) => child.once('exit', res));
  if (code !== 0) throw new Error(`doppel eval exited with ${code}`);
  const r = JSON.parse(readFileSync(out, 'utf8')) as EvalJson;
  rmSync(work, { recursive: true, force: true });
  return r;
}

/** The saved shards of one run as one result: every shard present once, percentiles over all their queries. */
function mergeShards(dir: string): EvalJson {
  const parts = readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as EvalJson);
  const first = parts[0]?.shard;
  if (!first) throw new Error(`--merge: no saved shard in ${dir} (run the shards first: pnpm bench --only eval)`);
  const bad = parts.find((p) => !p.shard || p.shard.of !== first.of || p.shard.every !== first.every);
  if (bad) throw new Error(`--merge: ${dir} mixes runs (shard ${JSON.stringify(bad.shard)} beside ${JSON.stringify(first)})`);
  const have = new Set(parts.map((p) => p.shard!.index));
  const missing = Array.from({ length: first.of }, (_, i) => i + 1).filter((i) => !have.has(i));
  if (missing.length || parts.length !== first.of) throw new Error(`--merge: ${dir} holds ${parts.length} files for ${first.of} shards; missing ${missing.join(', ') || 'none (a shard is there twice)'}`);
  const outcomes = parts.flatMap((p) => p.outcomes).sort((a, b) => a.query.localeCompare(b.query));
  const untimed = outcomes.filter((o) => !o.timings_ms && o.candidates?.length).length;
  if (untimed) throw new Error(`--merge: ${untimed} outcomes carry no timings_ms (saved by an older doppel eval)`);
  const timed = outcomes.filter((o) => o.timings_ms);
  const stage = (k: 'encode' | 'search' | 'match' | 'total') => {
    const xs = timed.map((o) => o.timings_ms![k]);
    return { p50: Math.round(quantile(xs, 0.5) * 10) / 10, p99: Math.round(quantile(xs, 0.99) * 10) / 10 };
  };
  return {
    outcomes, threshold: parts[0]!.threshold, pr_curve: prCurve(outcomes),
    latency_ms: { encode: stage('encode'), search: stage('search'), match: stage('match'), total: stage('total') },
    index_images_per_s: Math.round((parts.reduce((n, p) => n + p.index_images_per_s, 0) / parts.length) * 10) / 10,
    query_s: Math.round(parts.reduce((n, p) => n + p.query_s, 0) * 10) / 10,
  };
}

const startLoad = loadAverage();
const r: EvalJson = flags.merge ? mergeShards(resolve(flags.merge))
  : flags['from-json'] ? (JSON.parse(readFileSync(resolve(flags['from-json']), 'utf8')) as EvalJson) : await runEval();
const endLoad = loadAverage();

if (shard) {
  // A shard only saves its outcomes: its share of the queries is not the dev set's table.
  const file = resolve(flags.save!);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify({ ...r, shard: { ...shard, every } })}\n`);
  figure(`eval.shard${shard.index}.queries`, `shard ${shard.index} of ${shard.of}: queries run`, r.outcomes.length);
  figure(`eval.shard${shard.index}.query_s`, `shard ${shard.index} of ${shard.of}: time in queries`, r.query_s, 's');
  log(`shard ${shard.index}/${shard.of}: ${r.outcomes.length} outcomes in ${r.query_s} s saved to ${file}; load ${startLoad} -> ${endLoad}`);
  process.exit(0);
}

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
    const k = `${F}.${h}.${g}`;
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
  figure(`${F}.transform.${t}.recall`, `${t}: recall, both halves / calibration / held-back`, `${pct(b!.recall)} / ${pct(c!.recall)} / ${pct(h!.recall)}`);
  figure(`${F}.transform.${t}.recall_at_10`, `${t}: candidate recall@10`, p1(b!.recall_at_10), '%');
  figure(`${F}.transform.${t}.null_fp`, `${t}: false-positive rate on null queries`, p1(b!.null_false_positive_rate), '%');
}
console.log(tl.join('\n'));

const l = r.latency_ms;
console.log(`\nlatency p50 / p99 ms: encode ${l.encode.p50} / ${l.encode.p99}, search ${l.search.p50} / ${l.search.p99}, match ${l.match.p50} / ${l.match.p99}, whole query ${l.total.p50} / ${l.total.p99}; indexing ${r.index_images_per_s} images/s; load ${startLoad} -> ${endLoad}`);
for (const st of ['encode', 'search', 'match', 'total'] as const) {
  figure(`${F}.latency.${st}.p50_ms`, `pipeline query, ${st === 'total' ? 'whole query' : `${st} stage`}: p50`, l[st].p50, 'ms');
  figure(`${F}.latency.${st}.p99_ms`, `pipeline query, ${st === 'total' ? 'whole query' : `${st} stage`}: p99`, l[st].p99, 'ms');
}
figure(`${F}.index_images_per_s`, nDistractors > 0 ? `indexing the 44 originals and ${nDistractors} distractors` : 'indexing the 44 originals', r.index_images_per_s, 'images/s');
figure(`${F}.load`, 'load average before -> after', `${startLoad} -> ${endLoad}`);
const at = (t: number) => r.pr_curve.find((p) => Math.abs(p.threshold - t) < 1e-9);
for (const t of [0.4, 0.45, 0.5, 0.6]) {
  const p = at(t);
  if (p) figure(`${F}.curve.${t}`, `threshold ${t}: precision / recall / null FP (all queries, from the same run)`, `${pct(p.precision)} / ${pct(p.recall)} / ${pct(p.null_false_positive_rate)}`);
}
if (flags.json) writeFileSync(resolve(flags.json), `${JSON.stringify(r, null, 1)}\n`);
