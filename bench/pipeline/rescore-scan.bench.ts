// Re-scores a saved `doppel scan` JSON (bench --keep-scan DIR) under each grouping policy,
// without re-running the scan.
// Usage: node --conditions=source --import tsx bench/pipeline/rescore-scan.bench.ts DIR/report.json
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GROUPING_POLICIES, groupPairs, type ScanPair } from '@doppel/cli';
import { scorePairs } from '@doppel/cli';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const dev = process.env.BENCH_DIR ?? join(repo, '..', 'shared', 'bench', 'dev');
const truth = (JSON.parse(readFileSync(join(dev, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
const file = process.argv[2];
if (!file) throw new Error('usage: rescore-scan.bench.ts report.json');
const scan = JSON.parse(readFileSync(file, 'utf8')) as { groups: Array<{ pairs: ScanPair[] }> };
const pairs = scan.groups.flatMap((g) => g.pairs);
const out: Record<string, unknown> = { links: pairs.length };
for (const policy of GROUPING_POLICIES) {
  const groups = groupPairs(pairs, policy);
  out[policy] = { groups: groups.length, ...scorePairs(groups, truth) };
}
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
