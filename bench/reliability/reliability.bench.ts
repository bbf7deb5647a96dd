// Runs the reliability suite (tests/reliability) against the real services and prints its
// tables: per check (requests tried, rejected, 5xx, crashes, lost writes, RSS before/after)
// and per fuzzed endpoint (runs, 2xx, 4xx, 5xx, unanswered, crashes).
// and the timings the suite measures but never asserts (overload: latency, /healthz and
// /readyz while saturated, recovery; a slow body dropped; a frozen downstream's 504).
// Usage: node --conditions=source --import tsx bench/reliability/reliability.bench.ts [--long] [--fuzz-runs N] [--only NAME] [--overload-seconds S]
//   --fuzz-runs N:        malformed requests per endpoint (default 2000; the CI run of the suite uses 100)
//   --only NAME:          only tests/reliability/NAME.test.ts (hostile-input, crash, overload)
//   --overload-seconds S: how long each service is driven past capacity (default 6; --long 30)
//   --long:               30 s of overload per service, 100 SIGKILL rounds
// Timings depend on the machine and its load: the load average is printed next to them.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface Row {
  check: string; tried: number; rejected: number; errors5xx: number; crashes: number;
  lostWrites: number | ''; rssBeforeMb: number | ''; rssAfterMb: number | ''; note?: string;
}
interface FuzzRow { kind: 'fuzz'; endpoint: string; runs: number; ok2xx: number; rejected4xx: number; errors5xx: number; noAnswer: number; crashes: number }
interface TimingRow {
  kind: 'timing'; target: string; load1: number; cores: number; connections: number; seconds: number; ok: number; refused: number;
  latencyP50Ms: number; latencyP99Ms: number; latencyMaxMs: number; healthzP50Ms: number; healthzP99Ms: number; healthzMaxMs: number;
  readyzP50Ms: number; readyzP99Ms: number; readyzMaxMs: number; baselineMs: number; recoveredMs: number | null;
}
interface FigureRow { kind: 'figure'; what: string; ms: number; against: string; load1: number }

const { values: args } = parseArgs({ options: { long: { type: 'boolean' }, 'fuzz-runs': { type: 'string' }, only: { type: 'string' }, 'overload-seconds': { type: 'string' } } });
const root = fileURLToPath(new URL('../..', import.meta.url));
const fuzzRuns = Number(args['fuzz-runs'] ?? 2000);
const dir = mkdtempSync(join(tmpdir(), 'doppel-reliability-'));
const reportFile = join(dir, 'rows.jsonl');
const suite = join(root, 'tests', 'reliability');
const files = readdirSync(suite).filter((f) => f.endsWith('.test.ts') && (!args.only || f === `${args.only}.test.ts`)).map((f) => join(suite, f));
if (files.length === 0) throw new Error(`no test file tests/reliability/${args.only}.test.ts`);
const load0 = loadavg()[0]!;
const t0 = Date.now();
const run = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--test', '--test-concurrency=1', ...files], {
  cwd: root, stdio: ['ignore', 'inherit', 'inherit'],
  env: { ...process.env, DOPPEL_REPO_ROOT: root, RELIABILITY_REPORT: reportFile, FUZZ_RUNS: String(fuzzRuns),
    ...(args['overload-seconds'] ? { OVERLOAD_SECONDS: args['overload-seconds'] } : {}), ...(args.long ? { RELIABILITY_LONG: '1' } : {}) },
});
const lines: Array<Row | FuzzRow | TimingRow | FigureRow> = (() => {
  try {
    return readFileSync(reportFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Row | FuzzRow | TimingRow | FigureRow);
  } catch {
    return [];
  }
})();
rmSync(dir, { recursive: true, force: true });
const n = (x: number) => x.toLocaleString('en-US');
const fuzz = lines.filter((l): l is FuzzRow => 'kind' in l && l.kind === 'fuzz');
const rows = lines.filter((l): l is Row => !('kind' in l));
const timings = lines.filter((l): l is TimingRow => 'kind' in l && l.kind === 'timing');
const figures = lines.filter((l): l is FigureRow => 'kind' in l && l.kind === 'figure');
const ms = (x: number) => `${n(Math.round(x))} ms`;
const fuzzed = files.some((f) => f.endsWith('hostile-input.test.ts'));
console.log(`\nreliability suite (${args.long ? 'long' : 'default'} variant${fuzzed ? `, ${n(fuzzRuns)} fuzz runs per endpoint` : ''}; ${files.map((f) => f.replace(`${suite}/`, '')).join(', ')}): ${((Date.now() - t0) / 1000).toFixed(0)} s, `
  + `load average ${load0.toFixed(1)} -> ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores, exit ${run.status}\n`);
if (rows.length) {
  console.log('| check | requests tried | rejected (4xx/429/503) | 5xx | crashes | lost writes | RSS before -> after (MB) | notes |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |');
  for (const r of rows) {
    console.log(`| ${r.check} | ${n(r.tried)} | ${n(r.rejected)} | ${r.errors5xx} | ${r.crashes} | ${r.lostWrites === '' ? '-' : n(r.lostWrites)} | ${r.rssBeforeMb} -> ${r.rssAfterMb} | ${r.note ?? ''} |`);
  }
}
if (fuzz.length) {
  const sum = (k: keyof Omit<FuzzRow, 'kind' | 'endpoint'>) => fuzz.reduce((s, r) => s + r[k], 0);
  console.log(`\n${fuzz.length} endpoints fuzzed:\n`);
  console.log('| endpoint | runs | 2xx | 4xx | 5xx | unanswered | crashes |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of fuzz) console.log(`| ${r.endpoint} | ${n(r.runs)} | ${n(r.ok2xx)} | ${n(r.rejected4xx)} | ${r.errors5xx} | ${r.noAnswer} | ${r.crashes} |`);
  console.log(`| **all ${fuzz.length}** | ${n(sum('runs'))} | ${n(sum('ok2xx'))} | ${n(sum('rejected4xx'))} | ${sum('errors5xx')} | ${sum('noAnswer')} | ${Math.max(...fuzz.map((r) => r.crashes))} |`);
}
if (timings.length) {
  console.log('\nunder overload (autocannon; statuses are the suite\'s checks, these times are figures):\n');
  console.log('| target | load avg | connections x s | ok / refused | latency p50 / p99 / max | /healthz p50 / p99 / max | /readyz p50 / p99 / max | lone request before | back to it after |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of timings) {
    console.log(`| ${r.target} | ${r.load1.toFixed(1)} (${r.cores} cores) | ${r.connections} x ${r.seconds} | ${n(r.ok)} / ${n(r.refused)} | ${ms(r.latencyP50Ms)} / ${ms(r.latencyP99Ms)} / ${ms(r.latencyMaxMs)} | `
      + `${ms(r.healthzP50Ms)} / ${ms(r.healthzP99Ms)} / ${ms(r.healthzMaxMs)} | ${ms(r.readyzP50Ms)} / ${ms(r.readyzP99Ms)} / ${ms(r.readyzMaxMs)} | ${ms(r.baselineMs)} | ${r.recoveredMs === null ? 'not within 10 s' : ms(r.recoveredMs)} |`);
  }
}
if (figures.length) {
  console.log('\n| measured | time | against | load avg |');
  console.log('| --- | ---: | --- | ---: |');
  for (const f of figures) console.log(`| ${f.what} | ${ms(f.ms)} | ${f.against} | ${f.load1.toFixed(1)} |`);
}
process.exit(run.status ?? 1);
