/**
 * `pnpm bench`: every benchmark of the services, one after another, and `doppel eval` on
 * the dev set; writes bench/results/latest.json (machine, commit, date, and per part: the
 * exact command, its duration, the load average before and after, every figure it
 * recorded) and bench/results/latest.md (the same as tables, with the side-by-side
 * ratios). The READMEs' figures tables are rendered from that file
 * (bench/readme.figures.ts) and a test keeps them equal to it.
 *   pnpm bench [--quick] [--only encoder,search,...] [--out DIR]
 * --quick: small sizes (under 5 minutes here); without it the full sizes (about 45 minutes).
 * Parts run in series so that they do not share the 2 cores with each other; a part that
 * fails or passes its time limit is recorded as such and the others still run. The full
 * dev-set eval runs as EVAL_SHARDS parts of a few minutes each (`eval-1` ... , each on its
 * own stack and index, saving its outcomes under DIR/eval-shards/), then `eval` merges them
 * into the one table; `--only eval` runs the shards and the merge, `--only eval-3` one shard.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, hostname, tmpdir, totalmem } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadAverage, type Figure } from './figures.record.js';
import { renderSummary, type BenchResults, type PartResult } from './results.summary.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const { values: flags } = parseArgs({ options: { quick: { type: 'boolean' }, only: { type: 'string' }, out: { type: 'string' } } });
const quick = Boolean(flags.quick);

interface Part {
  name: string;
  what: string;
  script: string;
  node?: string[];
  args?: { full: string[]; quick: string[] };
  full: Record<string, string>;
  quick: Record<string, string>;
  /** `--only` of this name also selects the part (the eval shards go with `eval`). */
  group?: string;
  /** Beyond this the part is stopped (and recorded as timed out). */
  limitS: { full: number; quick: number };
}

/** Shards of the full dev-set eval (146 queries each): 4-7 minutes each here, by the load. */
const EVAL_SHARDS = 10;

/** The sizes are the benches' own env flags; the quick ones keep the whole run under 5 minutes here. */
const PARTS: Part[] = [
  {
    name: 'encoder', what: 'image-encoder: sharp decode, raw onnxruntime, the service over HTTP, OpenCV dnn on the same model',
    script: 'bench/encoder/encoder.bench.ts', full: { BENCH_N: '320' }, quick: { BENCH_N: '32' }, limitS: { full: 600, quick: 120 },
  },
  {
    name: 'search', what: 'contextual-search (hnswlib): build, recall@10 and QPS per ef for the service\'s collection, raw hnswlib-node and brute force, M/efC sweep, HTTP latency, memory',
    script: 'bench/search/search.bench.ts', node: ['--expose-gc'],
    full: { BENCH_N: '100000', BENCH_SWEEP_N: '10000', BENCH_JSONL_N: '2000' },
    quick: { BENCH_N: '2000', BENCH_SWEEP_N: '1000', BENCH_JSONL_N: '200', BENCH_HTTP_SECONDS: '2', BENCH_QUERIES: '50' },
    limitS: { full: 1200, quick: 180 },
  },
  {
    name: 'backends', what: 'contextual-search on hnswlib vs pgvector (PGlite, and the real server of BENCH_DATABASE_URL), everything over HTTP',
    script: 'bench/search/backends.bench.ts',
    // The bulk build stays on PGlite here; a real server (BENCH_DATABASE_URL) adds a column built through the service.
    full: { BENCH_N: '5000', BENCH_BATCH: '250', BENCH_QUERIES: '100', BENCH_EF_QUERIES: '100', BENCH_HTTP_SECONDS: '6', BENCH_BULK_N: '10000', BENCH_BULK_DB: 'pglite' },
    quick: { BENCH_N: '500', BENCH_BATCH: '250', BENCH_QUERIES: '20', BENCH_EF_QUERIES: '20', BENCH_HTTP_SECONDS: '2' },
    limitS: { full: 1200, quick: 90 },
  },
  {
    name: 'backends-100k', what: 'contextual-search at 100k: hnswlib through the service vs pgvector loaded first and indexed after (PGlite, or the real server of BENCH_DATABASE_URL)',
    script: 'bench/search/backends.bench.ts',
    full: { BENCH_FIGURE_PREFIX: 'backends100k', BENCH_BACKENDS: 'hnswlib', BENCH_SERVER_COLUMN: '0', BENCH_N: '100000', BENCH_BATCH: '1000', BENCH_BULK_N: '100000', BENCH_QUERIES: '100', BENCH_EF_QUERIES: '100', BENCH_HTTP_SECONDS: '6' },
    // Not in quick runs (no quick size of a 100k benchmark).
    quick: {},
    limitS: { full: 1800, quick: 0 },
  },
  {
    name: 'matcher', what: 'instance-matching: SIFT extraction and per-pair verification vs python3-opencv, POST /match throughput',
    script: 'bench/matching/bench.ts', full: { ROUNDS: '3', RPS_SECONDS: '15' }, quick: { ROUNDS: '1', PAIRS: '20', REPS: '1', RPS_SECONDS: '4' },
    limitS: { full: 600, quick: 75 },
  },
  {
    name: 'report', what: 'the `doppel scan` report page at scale: sizes, write time, first group drawn in Chromium',
    script: 'bench/report/report-page.bench.ts', args: { full: ['--images', '5000', '--runs', '3'], quick: ['--images', '1000', '--runs', '1'] },
    full: {}, quick: {}, limitS: { full: 600, quick: 90 },
  },
  {
    name: 'latency', what: 'pipeline query latency in forward passes, `doppel scan` and `doppel index` rates against commit 71052c2 (BASELINE_DIR), with the dev scan set and with 10,000 distractors more indexed',
    script: 'bench/pipeline/latency.bench.ts',
    // Needs a checkout of the baseline (BASELINE_DIR, '' for this tree only) and the distractor folder (DISTRACTORS); not in quick runs.
    full: { BENCH_DISTRACTORS: '10000' }, quick: {}, limitS: { full: 5400, quick: 0 },
  },
  // The full eval (1,456 queries, about 33 min here) in shards of a few minutes; quick runs
  // every 26th query in one go instead.
  ...Array.from({ length: EVAL_SHARDS }, (_, i): Part => ({
    name: `eval-${i + 1}`, group: 'eval', what: `\`doppel eval\` on ../shared/bench/dev, shard ${i + 1} of ${EVAL_SHARDS} (every ${EVAL_SHARDS}th query of each transform)`,
    script: 'bench/pipeline/dev-eval.bench.ts', args: { full: ['--every', '1', '--shard', `${i + 1}/${EVAL_SHARDS}`, '--save', `$OUT/eval-shards/${i + 1}.json`], quick: [] },
    full: {}, quick: {}, limitS: { full: 900, quick: 0 },
  })),
  {
    name: 'eval', what: '`doppel eval` on ../shared/bench/dev: quality per half, v2/v3 and transform; pipeline latency per stage',
    script: 'bench/pipeline/dev-eval.bench.ts', args: { full: ['--merge', '$OUT/eval-shards'], quick: ['--every', '26'] }, full: {}, quick: {}, limitS: { full: 120, quick: 180 },
  },
];

const only = flags.only ? new Set(flags.only.split(',')) : undefined;
if (only) for (const n of only) if (!PARTS.some((p) => p.name === n)) throw new Error(`--only: no part ${n} (parts: ${PARTS.map((p) => p.name).join(', ')})`);
const selected = (p: Part) => !only || only.has(p.name) || (p.group !== undefined && only.has(p.group));
const outDir = resolve(flags.out ?? join(repo, 'bench', 'results'));
// Paths in a part's arguments: relative to the repo when inside it, so the recorded command reads the same on every clone.
const outArg = relative(repo, outDir).startsWith('..') ? outDir : relative(repo, outDir) || '.';
const argsOf = (p: Part) => (p.args?.[quick ? 'quick' : 'full'] ?? []).map((a) => a.replace('$OUT', outArg));
mkdirSync(outDir, { recursive: true });
const work = mkdtempSync(join(tmpdir(), 'doppel-bench-run-'));

const git = (...a: string[]) => spawnSync('git', a, { cwd: repo, encoding: 'utf8' }).stdout.trim();
const commit = () => `${git('rev-parse', 'HEAD')}${git('status', '--porcelain', '--untracked-files=no') ? ' (with uncommitted changes)' : ''}`;
const commandOf = (p: Part): string => {
  const env = quick ? p.quick : p.full;
  const args = argsOf(p);
  return [...Object.entries(env).map(([k, v]) => `${k}=${v}`), 'node', '--conditions=source', '--import', 'tsx', ...(p.node ?? []), p.script, ...args].join(' ');
};

async function runPart(p: Part): Promise<PartResult> {
  const figuresFile = join(work, `${p.name}.figures.json`);
  const logFile = join(outDir, `${p.name}.log`);
  const env = quick ? p.quick : p.full;
  const args = argsOf(p);
  const limit = quick ? p.limitS.quick : p.limitS.full;
  const command = commandOf(p);
  const loadBefore = loadAverage();
  const started = new Date();
  process.stderr.write(`\n== ${p.name}: ${command}  (load ${loadBefore}, limit ${limit} s)\n`);
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', ...(p.node ?? []), p.script, ...args], {
    cwd: repo, env: { ...process.env, ...env, BENCH_FIGURES_OUT: figuresFile }, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  const log: string[] = [];
  child.stdout.on('data', (b: Buffer) => { process.stdout.write(b); log.push(b.toString()); });
  child.stderr.on('data', (b: Buffer) => { process.stderr.write(b); log.push(b.toString()); });
  let timedOut = false;
  // The part's own children (services, databases) are in its process group: stop them all.
  const timer = setTimeout(() => { timedOut = true; try { process.kill(-child.pid!, 'SIGTERM'); } catch { /* gone */ } }, limit * 1000);
  const code = await new Promise<number | null>((res) => child.once('exit', (c) => res(c)));
  clearTimeout(timer);
  const durationS = Math.round((Date.now() - started.getTime()) / 100) / 10;
  writeFileSync(logFile, log.join(''));
  const figures: Figure[] = existsSync(figuresFile) ? (JSON.parse(readFileSync(figuresFile, 'utf8')) as Figure[]) : [];
  const status = timedOut ? 'timed out' : code === 0 ? 'ok' : `failed (exit ${code})`;
  process.stderr.write(`== ${p.name}: ${status} in ${durationS} s, ${figures.length} figures\n`);
  return { name: p.name, what: p.what, command, commit: commit(), status, started: started.toISOString(), duration_s: durationS, load_before: loadBefore, load_after: loadAverage(), figures };
}

const t0 = Date.now();
// --only re-runs some parts and keeps the others' last results (each part carries its own command, date and commit).
const ran = new Map<string, PartResult>();
// A fresh full eval starts without the last run's shards, so the merge cannot mix two runs.
if (!quick && PARTS.filter((p) => p.group === 'eval').every(selected)) rmSync(join(outDir, 'eval-shards'), { recursive: true, force: true });
for (const p of PARTS) if (selected(p) && (!quick || p.limitS.quick > 0)) ran.set(p.name, await runPart(p));
// Read at the end, so that another run that finished meanwhile is kept too.
const previous: BenchResults | undefined = only && existsSync(join(outDir, 'latest.json')) ? (JSON.parse(readFileSync(join(outDir, 'latest.json'), 'utf8')) as BenchResults) : undefined;
const parts: PartResult[] = [];
for (const p of PARTS) {
  const part = ran.get(p.name) ?? previous?.parts.find((x) => x.name === p.name);
  if (part) parts.push(part);
}
const cpu = cpus();
const results: BenchResults = {
  mode: previous && previous.mode !== (quick ? 'quick' : 'full') ? 'mixed' : quick ? 'quick' : 'full',
  command: `pnpm bench${quick ? ' --quick' : ''}${flags.only ? ` --only ${flags.only}` : ''}`,
  date: new Date(t0).toISOString(),
  duration_s: Math.round((Date.now() - t0) / 1000),
  commit: commit(),
  machine: { host: hostname(), cpus: cpu.length, cpu_model: cpu[0]?.model ?? 'unknown', memory_gib: Math.round(totalmem() / 2 ** 30), node: process.version },
  parts,
};
writeFileSync(join(outDir, 'latest.json'), `${JSON.stringify(results, null, 1)}\n`);
writeFileSync(join(outDir, 'latest.md'), renderSummary(results));
rmSync(work, { recursive: true, force: true });
process.stderr.write(`\nwrote ${join(outDir, 'latest.json')} and latest.md (${results.duration_s} s)\n`);
process.exitCode = parts.every((p) => p.status === 'ok') ? 0 : 1;
