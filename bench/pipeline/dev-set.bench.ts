// Benchmark of the whole pipeline on the shared dev set (../shared/bench/dev).
// Usage (from the repo root):
//   node --conditions=source --import tsx bench/pipeline/dev-set.bench.ts [--skip-scan] [--out FILE.json]
// Env: BENCH_DIR (default <repo>/../shared/bench/dev), MODEL_PATH (default: the shared
// resnet18-imagenet-layer3.onnx, else <repo>/models/resnet18.onnx), BENCH_CONCURRENCY (1).
// Everything it writes goes to a temp dir under os.tmpdir(), never into the repository.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
// bench/ is not a workspace package: workspace code is imported by path.
import { createPipelineClient } from '@doppel/clients';
import { startStack } from '@doppel/cli';
import { freePorts } from '@doppel/service-kit/testing';
import { scorePairs, scoreQueries, type QueryOutcome } from '@doppel/cli';
import pLimit from 'p-limit';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const { values: flags } = parseArgs({ options: { 'skip-scan': { type: 'boolean' }, 'scan-only': { type: 'boolean' }, 'keep-scan': { type: 'string' }, out: { type: 'string' } } });
const dev = process.env.BENCH_DIR ?? join(repo, '..', 'shared', 'bench', 'dev');
const sharedModel = join(repo, '..', 'shared', 'models', 'resnet18-imagenet-layer3.onnx');
const modelPath = process.env.MODEL_PATH ?? (existsSync(sharedModel) ? sharedModel : join(repo, 'models', 'resnet18.onnx'));
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 1);
const truth = (JSON.parse(readFileSync(join(dev, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;

const log = (s: string) => process.stderr.write(`${s}\n`);
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? 0;

const tmp = mkdtempSync(join(tmpdir(), 'doppel-bench-'));
const root = join(tmp, 'images');
// Copies, not links: the services refuse paths that resolve outside their root.
cpSync(join(dev, 'index'), join(root, 'index'), { recursive: true });
cpSync(join(dev, 'queries'), join(root, 'queries'), { recursive: true });
const queries = readdirSync(join(root, 'queries')).filter((f) => f in truth).sort();
const nIndex = readdirSync(join(root, 'index')).length;

const raw: { outcomes?: QueryOutcome[] } = {};
const result: Record<string, unknown> = { model: modelPath, machine: `${cpus().length} cpus`, index_files: nIndex, queries: queries.length };
try {
  if (!flags['scan-only']) {
    const [p, e, s, m] = await freePorts(4);
    const ports = { pipeline: p!, encoder: e!, search: s!, matching: m! };
    log(`starting the stack (model ${modelPath}) ...`);
    const stack = await startStack({ repoRoot: repo, imagesRoot: root, stateDir: join(tmp, 'state'), modelPath, ports });
    try {
      const client = createPipelineClient({ baseUrl: stack.urls.pipeline, timeoutMs: 30 * 60_000, retries: 0 });
      let t = performance.now();
      const idx = await client.index({ relative_path: 'index' });
      const indexMs = performance.now() - t;
      result.index = { ...idx, failed: idx.failed.length, ms_total: Math.round(indexMs), ms_per_image: Math.round(indexMs / Math.max(1, idx.indexed)) };
      log(`indexed ${idx.indexed}/${idx.total} in ${(indexMs / 1000).toFixed(1)} s (${(indexMs / idx.indexed).toFixed(0)} ms/image)`);

      const outcomes: QueryOutcome[] = [];
      // Kept in the --out file so the figures can be re-scored without re-running the queries.
      raw.outcomes = outcomes;
      const errors: Array<{ query: string; error: string }> = [];
      const latencies: number[] = [];
      const stages = { encode: 0, search: 0, match: 0 };
      t = performance.now();
      await pLimit(concurrency).map(queries, async (q) => {
          const t0 = performance.now();
          let r;
          try {
            r = await client.duplicates({ relative_path: `queries/${q}` });
          } catch (err) {
            // Counted as "nothing declared" (it hurts recall) and listed, so one bad reply does not end the run.
            errors.push({ query: q, error: (err as Error).message });
            outcomes.push({ query: q, expected: truth[q] ?? null, declared: [] });
            return;
          }
          latencies.push(performance.now() - t0);
          for (const k of ['encode', 'search', 'match'] as const) stages[k] += r.timings_ms[k];
          outcomes.push({ query: q, expected: truth[q] ?? null, declared: r.duplicated.map((d) => d.relative_path.replace(/^index\//, '')) });
          if (outcomes.length % 100 === 0) log(`  ${outcomes.length}/${queries.length} queries`);
      });
      const queryMs = performance.now() - t;
      const scores = scoreQueries(outcomes);
      result.queries_eval = {
        ...scores,
        errors: errors.length,
        error_samples: errors.slice(0, 5),
        concurrency,
        ms_total: Math.round(queryMs),
        ms_per_query_mean: Math.round(latencies.reduce((a, b) => a + b, 0) / latencies.length),
        ms_per_query_p50: Math.round(quantile(latencies, 0.5)),
        ms_per_query_p95: Math.round(quantile(latencies, 0.95)),
        stage_ms_mean: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, Math.round(v / latencies.length)])),
      };
      log(`queries: precision ${pct(scores.precision)}, recall ${pct(scores.recall)}, FPR on null ${pct(scores.null_false_positive_rate)}`);
      for (const [tr, r] of Object.entries(scores.recall_per_transform)) log(`  ${tr.padEnd(16)} ${pct(r)}`);
      log(`  ${(queryMs / queries.length).toFixed(0)} ms/query (p50 ${quantile(latencies, 0.5).toFixed(0)}, p95 ${quantile(latencies, 0.95).toFixed(0)})`);
    } finally {
      await stack.stop();
    }
  }

  if (!flags['skip-scan']) {
    // The scan starts its own stack on fresh state, as a user's first `doppel scan` would.
    const [sp, se, ss, sm] = (await freePorts(4)).map(String);
    const report = join(tmp, 'scan', 'report.html');
    log('running doppel scan on index/ + queries/ ...');
    const t = performance.now();
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [join(repo, 'bin', 'doppel.mjs'), 'scan', root, '--out', report,
        '--port', sp!, '--encoder-port', se!, '--search-port', ss!, '--matching-port', sm!],
      { env: { ...process.env, DOPPEL_HOME: join(tmp, 'scan-home'), MODEL_PATH: modelPath }, stdio: ['ignore', 'ignore', 'inherit'] });
      child.on('exit', resolve);
    });
    const scanMs = performance.now() - t;
    if (code !== 0) throw new Error(`doppel scan exited with ${code}`);
    const scan = JSON.parse(readFileSync(report.replace(/\.html$/, '.json'), 'utf8')) as { groups: Array<{ members: string[]; pairs: Array<{ query: string; match: string }> }>; files_scanned: number };
    // --keep-scan DIR keeps the scan's JSON (and report) for re-scoring after the temp dir is gone.
    if (flags['keep-scan']) cpSync(join(tmp, 'scan'), flags['keep-scan'], { recursive: true });
    result.scan = { ...scorePairs(scan.groups, truth), files: scan.files_scanned, groups: scan.groups.length, ms_total: Math.round(scanMs), report_bytes: readFileSync(report).length };
    log(`scan: ${JSON.stringify(result.scan)}`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
const text = JSON.stringify(result, null, 2);
process.stdout.write(`${text}\n`);
if (flags.out) writeFileSync(flags.out, `${JSON.stringify({ ...result, ...raw }, null, 2)}\n`);
