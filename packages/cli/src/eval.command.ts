import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { AppError } from '@doppel/service-kit';
import { listImages } from '@doppel/image-source';
import { prCurve, parseGroups, quantile, scoreByTransform, summarise, transformOf, type QueryOutcome } from './eval-metrics.logic.js';
import { readTruth } from './eval-truth.fs.js';
import { collectFacts } from './image-facts.fs.js';
import { ProgressBar } from './progress.view.js';
import { renderPrCurve } from './pr-curve.svg.js';
import { writeReportPage } from './scan-report.html.js';
import { buildReport } from './scan-report.model.js';
import type { ScanGroup } from './scan-groups.logic.js';
import { isInside, openSession } from './stack-session.js';
import { canonical, type Workspace } from './workspace.config.js';
import pLimit from 'p-limit';

export interface EvalFlags {
  index?: string; queries?: string; truth?: string; json?: string; plot?: string; html?: string;
  groups?: string[]; concurrency: number; threshold: number;
}

const say = (s: string) => process.stderr.write(`${s}\n`);
const pct = (x: number) => `${(x * 100).toFixed(1)}%`.padStart(6);
const CHUNK = 32;

/** The deepest folder holding both (the services resolve every path under one root). */
function commonRoot(a: string, b: string): string {
  const pa = a.split(sep);
  const pb = b.split(sep);
  let i = 0;
  while (i < pa.length && i < pb.length && pa[i] === pb[i]) i++;
  return pa.slice(0, i).join(sep) || sep;
}

const toId = (p: string) => p.split(sep).join('/');

/**
 * `doppel eval`: indexes the index folder on fresh state, runs every query of the truth
 * file through POST /duplicates, and scores candidates, decisions, the threshold curve
 * and the latencies. Returns the whole result (also written with --json).
 */
export async function cmdEval(ws: Workspace, f: EvalFlags) {
  if (!f.index || !f.queries || !f.truth) throw new Error('eval: --index DIR, --queries DIR and --truth FILE are required');
  const index = canonical(f.index);
  const queries = canonical(f.queries);
  const truth = readTruth(resolve(f.truth), { index, queries });
  const groups = parseGroups(f.groups ?? []);
  const known = new Set(truth.map((t) => transformOf(t.query)));
  for (const [name, ts] of Object.entries(groups)) {
    const unknown = ts.filter((t) => !known.has(t));
    if (unknown.length) throw new Error(`--groups ${name}: no query has the transform ${unknown.map((t) => JSON.stringify(t)).join(', ')} (known: ${[...known].sort().join(', ')})`);
  }
  const root = commonRoot(index, queries);
  const indexRel = toId(relative(root, index));
  const queriesRel = toId(relative(root, queries));
  const pre = (rel: string) => (rel ? `${rel}/` : '');
  // A fresh index each run: the indexing rate is real and nothing else is in the index.
  mkdirSync(ws.home, { recursive: true });
  const home = mkdtempSync(join(ws.home, 'eval-'));
  const session = await openSession({ ...ws, home }, root, say, { rootGiven: true });
  try {
    if (!isInside(session.root, index) || !isInside(session.root, queries)) throw new Error(`the running pipeline serves ${session.root}; ${root} is outside it (stop it, or use --port)`);
    const files = await listImages(session.root, indexRel || '.', true);
    const bar = new ProgressBar('index', files.length);
    let t = performance.now();
    let indexed = 0;
    for (let i = 0; i < files.length; i += CHUNK) {
      const r = await session.pipeline.index({ relative_paths: files.slice(i, i + CHUNK) });
      indexed += r.indexed;
      bar.tick(Math.min(CHUNK, files.length - i));
    }
    const indexMs = performance.now() - t;
    bar.finish(`${indexed} of ${files.length} indexed`);

    const outcomes: QueryOutcome[] = [];
    const timings = { encode: [] as number[], search: [] as number[], match: [] as number[], total: [] as number[] };
    const errors: Array<{ query: string; error: string }> = [];
    const qbar = new ProgressBar('query', truth.length);
    const fromIndex = (p: string) => (p.startsWith(pre(indexRel)) ? p.slice(pre(indexRel).length) : undefined);
    t = performance.now();
    await pLimit(Math.max(1, f.concurrency)).map(truth, async (e) => {
      const t0 = performance.now();
      try {
        const r = await session.pipeline.duplicates({ relative_path: `${pre(queriesRel)}${e.query}`, threshold: f.threshold });
        const total = performance.now() - t0;
        timings.total.push(total);
        for (const k of ['encode', 'search', 'match'] as const) timings[k].push(r.timings_ms[k]);
        const keep = (p: string) => fromIndex(p);
        outcomes.push({
          query: e.query, expected: e.expected,
          declared: r.duplicated.map((d) => keep(d.relative_path)).filter((p): p is string => p !== undefined),
          candidates: r.candidates.map((c) => keep(c.relative_path)).filter((p): p is string => p !== undefined),
          verified: r.candidates.flatMap((c) => (c.verification_score !== undefined && keep(c.relative_path) !== undefined ? [{ path: keep(c.relative_path)!, score: c.verification_score }] : [])),
          timings_ms: { encode: r.timings_ms.encode, search: r.timings_ms.search, match: r.timings_ms.match, total: Math.round(total * 10) / 10 },
        });
      } catch (err) {
        if (err instanceof AppError && err.status >= 500 && err.code !== 'DOWNSTREAM_FAILURE') throw err;
        // A bad query file is counted as "nothing declared" and listed.
        errors.push({ query: e.query, error: (err as Error).message });
        outcomes.push({ query: e.query, expected: e.expected, declared: [], candidates: [], verified: [] });
      }
      qbar.tick();
    });
    const queryMs = performance.now() - t;
    qbar.finish(`${truth.length} queries`);
    outcomes.sort((a, b) => a.query.localeCompare(b.query));

    const overall = summarise(outcomes);
    const { per_transform, per_group } = scoreByTransform(outcomes, groups);
    const curve = prCurve(outcomes);
    const scoreOf = (o: QueryOutcome, p: string) => o.verified?.find((v) => v.path === p)?.score;
    const misses = outcomes.filter((o) => o.expected !== null && !o.declared.includes(o.expected)).map((o) => ({
      query: o.query, expected: o.expected!, verification_score: scoreOf(o, o.expected!) ?? null,
      candidate_rank: o.candidates!.indexOf(o.expected!) + 1 || null,
    }));
    const falsePositives = outcomes.flatMap((o) => o.declared.filter((d) => d !== o.expected).map((d) => ({ query: o.query, expected: o.expected, declared: d, verification_score: scoreOf(o, d) ?? null })));
    const stage = (xs: number[]) => ({ p50: Math.round(quantile(xs, 0.5) * 10) / 10, p99: Math.round(quantile(xs, 0.99) * 10) / 10 });
    const result = {
      index: index, queries: queries, truth: resolve(f.truth), threshold: f.threshold, concurrency: f.concurrency,
      index_files: files.length, indexed, index_s: Math.round(indexMs) / 1000, index_images_per_s: Math.round((indexed / (indexMs / 1000)) * 10) / 10,
      query_s: Math.round(queryMs) / 1000,
      latency_ms: { encode: stage(timings.encode), search: stage(timings.search), match: stage(timings.match), total: stage(timings.total) },
      overall, per_group, per_transform, pr_curve: curve, misses, false_positives: falsePositives, errors,
    };
    printTable(result);
    if (f.json) { mkdirSync(dirname(resolve(f.json)), { recursive: true }); writeFileSync(resolve(f.json), `${JSON.stringify({ ...result, outcomes }, null, 2)}\n`); say(`json: ${resolve(f.json)}`); }
    if (f.plot) {
      const series = [{ name: 'all', points: curve }, ...Object.entries(groups).map(([name, ts]) => ({ name, points: prCurve(outcomes.filter((o) => ts.includes(transformOf(o.query)))) }))];
      mkdirSync(dirname(resolve(f.plot)), { recursive: true });
      writeFileSync(resolve(f.plot), renderPrCurve(series, { title: `precision / recall over the match threshold (${truth.length} queries)`, threshold: f.threshold }));
      say(`plot: ${resolve(f.plot)}`);
    }
    if (f.html) await writeMissesPage(session.root, pre(indexRel), pre(queriesRel), misses, falsePositives, resolve(f.html), f.threshold);
    return result;
  } finally {
    await session.close();
    rmSync(home, { recursive: true, force: true });
  }
}

type Result = Awaited<ReturnType<typeof cmdEval>>;

function printTable(r: Pick<Result, 'overall' | 'per_group' | 'per_transform' | 'latency_ms' | 'index_images_per_s' | 'misses' | 'false_positives' | 'errors'>) {
  const out = (s: string) => process.stdout.write(`${s}\n`);
  const row = (name: string, s: Result['overall']) => out(`${name.padEnd(18)} ${String(s.queries).padStart(5)} ${String(s.nulls).padStart(5)} ${pct(s.recall_at_1)} ${pct(s.recall_at_10)}  ${pct(s.precision)} ${pct(s.recall)} ${pct(s.f1)} ${pct(s.null_false_positive_rate)}`);
  out(`${'set'.padEnd(18)} ${'n'.padStart(5)} ${'null'.padStart(5)}  ${'R@1'.padStart(5)}  ${'R@10'.padStart(5)}  ${'prec'.padStart(6)} ${'recall'.padStart(6)} ${'F1'.padStart(6)} ${'nullFP'.padStart(6)}`);
  row('all', r.overall);
  for (const [k, s] of Object.entries(r.per_group)) row(`group ${k}`, s);
  for (const [k, s] of Object.entries(r.per_transform)) row(`  ${k}`, s);
  const l = r.latency_ms;
  out(`latency ms (p50 / p99): encode ${l.encode.p50} / ${l.encode.p99}, search ${l.search.p50} / ${l.search.p99}, match ${l.match.p50} / ${l.match.p99}, whole query ${l.total.p50} / ${l.total.p99}`);
  out(`indexing: ${r.index_images_per_s} images/s`);
  out(`${r.misses.length} misses, ${r.false_positives.length} false positives, ${r.errors.length} errors`);
  for (const m of r.misses.slice(0, 15)) out(`  miss ${m.query} (original ${m.expected}: ${m.verification_score === null ? (m.candidate_rank ? 'not verified' : 'not among the candidates') : `score ${m.verification_score.toFixed(3)}`})`);
  if (r.misses.length > 15) out(`  ... ${r.misses.length - 15} more misses in --json`);
  for (const p of r.false_positives.slice(0, 15)) out(`  false positive ${p.query} -> ${p.declared}${p.verification_score !== null ? ` (score ${p.verification_score.toFixed(3)})` : ''}`);
  if (r.false_positives.length > 15) out(`  ... ${r.false_positives.length - 15} more in --json`);
}

/** The report's page, one "group" per miss (the query beside its original) and per false positive. */
async function writeMissesPage(root: string, indexPre: string, queriesPre: string, misses: Result['misses'], fps: Result['false_positives'], htmlPath: string, threshold: number) {
  const groups: ScanGroup[] = [];
  const reasons = new Map<number, string>();
  for (const m of misses) {
    const a = `${indexPre}${m.expected}`;
    const q = `${queriesPre}${m.query}`;
    groups.push({ id: groups.length + 1, anchor: a, members: [a, q], pairs: [{ query: q, match: a, score: m.verification_score ?? 0, inliers: 0 }] });
    reasons.set(groups.length, `miss: ${m.verification_score === null ? (m.candidate_rank ? 'candidate not verified' : 'its original was not among the candidates') : `verification score ${m.verification_score.toFixed(3)} < threshold ${threshold}`}`);
  }
  for (const p of fps) {
    const a = `${indexPre}${p.declared}`;
    const q = `${queriesPre}${p.query}`;
    groups.push({ id: groups.length + 1, anchor: a, members: [a, q], pairs: [{ query: q, match: a, score: p.verification_score ?? 0, inliers: 0 }] });
    reasons.set(groups.length, `false positive: declared with score ${(p.verification_score ?? 0).toFixed(3)}; true original ${p.expected ?? 'none (not indexed)'}`);
  }
  const { facts } = await collectFacts(root, [...new Set(groups.flatMap((g) => g.members))]);
  const report = buildReport({ root, folder: root, generatedAt: new Date().toISOString(), filesScanned: groups.length, groups, facts });
  for (const g of report.groups) { g.keeper = g.anchor; g.keeper_reason = reasons.get(g.id) ?? ''; }
  await writeReportPage(report, { htmlPath, thumbs: 'auto' });
  say(`misses page: ${htmlPath}`);
}
