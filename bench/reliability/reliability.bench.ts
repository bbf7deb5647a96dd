// Runs the reliability suite (tests/reliability) against the real services and prints its
// table: requests tried, rejected, 5xx, crashes, lost writes, RSS before/after.
// Usage: node --conditions=source --import tsx bench/reliability/reliability.bench.ts [--long]
//   --long: 20,000 fuzz runs per endpoint, 30 s of overload per service, 100 SIGKILL rounds.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Row {
  check: string; tried: number; rejected: number; errors5xx: number; crashes: number;
  lostWrites: number | ''; rssBeforeMb: number | ''; rssAfterMb: number | ''; note?: string;
}

const root = fileURLToPath(new URL('../..', import.meta.url));
const long = process.argv.includes('--long');
const dir = mkdtempSync(join(tmpdir(), 'doppel-reliability-'));
const reportFile = join(dir, 'rows.jsonl');
const suite = join(root, 'tests', 'reliability');
const files = readdirSync(suite).filter((f) => f.endsWith('.test.ts')).map((f) => join(suite, f));
const load0 = loadavg()[0]!;
const t0 = Date.now();
const run = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--test', '--test-concurrency=1', ...files], {
  cwd: root, stdio: ['ignore', 'inherit', 'inherit'],
  env: { ...process.env, DOPPEL_REPO_ROOT: root, RELIABILITY_REPORT: reportFile, ...(long ? { RELIABILITY_LONG: '1' } : {}) },
});
const rows: Row[] = (() => {
  try {
    return readFileSync(reportFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Row);
  } catch {
    return [];
  }
})();
rmSync(dir, { recursive: true, force: true });
console.log(`\nreliability suite (${long ? 'long' : 'CI'} variant): ${((Date.now() - t0) / 1000).toFixed(0)} s, load average ${load0.toFixed(1)} -> ${loadavg()[0]!.toFixed(1)}, exit ${run.status}\n`);
console.log('| check | requests tried | rejected (4xx/429/503) | 5xx | crashes | lost writes | RSS before -> after (MB) | notes |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |');
for (const r of rows) {
  console.log(`| ${r.check} | ${r.tried} | ${r.rejected} | ${r.errors5xx} | ${r.crashes} | ${r.lostWrites === '' ? '-' : r.lostWrites} | ${r.rssBeforeMb} -> ${r.rssAfterMb} | ${r.note ?? ''} |`);
}
process.exit(run.status ?? 1);
