/**
 * The READMEs' figures tables, rendered from bench/results/latest.json (what `pnpm bench`
 * wrote) between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->` markers, each with
 * the command, load and date of the run that produced it. tests/bench-figures.test.ts
 * checks that the READMEs hold exactly what this renders, so a figure cannot stay in a
 * generated table without the run behind it.
 *   pnpm bench:readme            rewrite the blocks (and bench/results/latest.md)
 *   pnpm bench:readme --check    exit 1 if a README differs
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandLine, partOf, ratioRows, renderBlock, renderGrid, renderSummary, valueOf, type BenchResults } from './results.summary.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
export const RESULTS = join(repo, 'bench', 'results', 'latest.json');

const HALVES = [['both', 'both halves'], ['calibration', 'calibration half'], ['held-back', 'held-back half']] as const;
const GROUPS = [['all', 'all 26'], ['v2', 'v2 (12)'], ['v3', 'v3 (14)']] as const;

function quality(r: BenchResults): string {
  const p = partOf(r, 'eval');
  if (!p) return '(no eval part in bench/results/latest.json: run `pnpm bench --only eval`)';
  const grid = renderGrid(
    r,
    ['half', 'transforms', 'queries (null)', 'precision', 'recall', 'null FP rate', 'candidate recall@1', 'candidate recall@10', 'F1'],
    HALVES.flatMap(([h, hl]) => GROUPS.map(([g, gl]) => ({ cells: [hl, gl], prefix: `eval.${h}.${g}.` }))),
    ['queries', 'precision', 'recall', 'null_fp', 'recall_at_1', 'recall_at_10', 'f1'],
  );
  const transforms = [...new Set(p.figures.map((f) => /^eval\.transform\.(.+)\.recall$/.exec(f.key)?.[1]).filter((t): t is string => Boolean(t)))];
  const perT = renderGrid(r, ['transform', 'recall: both / calibration / held-back', 'candidate recall@10', 'null FP rate'],
    transforms.map((t) => ({ cells: [t], prefix: `eval.transform.${t}.` })), ['recall', 'recall_at_10', 'null_fp']);
  const curve = renderGrid(r, ['match threshold', 'precision / recall / null FP (all queries, same run)'],
    [0.4, 0.45, 0.5, 0.6].map((t) => ({ cells: [String(t)], prefix: `eval.curve.${t}` })), ['']);
  return [...grid, '', 'Per transform (v2 first, then v3):', '', ...perT, '', ...curve, '', `Command: ${commandLine(p)}.`, ...shardLines(r)].join('\n');
}

function speed(r: BenchResults): string {
  return renderBlock(r, {
    rows: [
      { label: 'encoder: sharp decode+resize / raw onnxruntime batch 16 / batch 1', keys: ['encoder.decode.img_per_s', 'encoder.raw.batch16.img_per_s', 'encoder.raw.batch1.img_per_s'] },
      { label: 'encoder HTTP `/encode/batch` (32 items, 2 in flight) / series bound / OpenCV dnn', keys: ['encoder.http.batch32.img_per_s', 'encoder.series.img_per_s', 'encoder.opencv_dnn.img_per_s'] },
      { label: 'encoder single `/encode`: p50 / p99 (all 8 orientations: p50 / p99)', keys: ['encoder.single.p50_ms', 'encoder.single.p99_ms', 'encoder.single_all.p50_ms', 'encoder.single_all.p99_ms'] },
      { label: 'search: vectors; build rate through the Collection', keys: ['search.n', 'search.build.vectors_per_s'] },
      { label: 'search in-process, one thread: recall@10 / QPS at ef 20, 32, 64', keys: ['search.ef20.recall', 'search.ef20.qps', 'search.ef32.recall', 'search.ef32.qps', 'search.ef64.recall', 'search.ef64.qps'] },
      { label: 'raw hnswlib-node, same vectors: recall@10 / QPS at ef 20, 32, 64', keys: ['search.raw.ef20.recall', 'search.raw.ef20.qps', 'search.raw.ef32.recall', 'search.raw.ef32.qps', 'search.raw.ef64.recall', 'search.raw.ef64.qps'] },
      { label: 'search brute force (exact) QPS, same vectors', keys: ['search.exact.qps'] },
      { label: 'search HTTP `POST /search` 1 client: p50 / p99 / QPS', keys: ['search.http.c1.p50_ms', 'search.http.c1.p99_ms', 'search.http.c1.qps'] },
      { label: 'search HTTP, 4 clients: p50 / p99 / QPS', keys: ['search.http.c4.p50_ms', 'search.http.c4.p99_ms', 'search.http.c4.qps'] },
      { label: 'search memory per vector: index file / RSS growth', keys: ['search.memory.index_file_b', 'search.memory.rss_b'] },
      { label: 'matcher: SIFT extraction p50, Node / python3-opencv', keys: ['matcher.extract.p50_ms', 'matcher.python.extract.p50_ms'] },
      { label: 'matcher: one cached pair p50, matching: Node / python3-opencv', keys: ['matcher.pair.matching.p50_ms', 'matcher.python.matching.p50_ms'] },
      { label: 'matcher: one cached pair p50, non-matching: Node / python3-opencv', keys: ['matcher.pair.nonmatching.p50_ms', 'matcher.python.nonmatching.p50_ms'] },
      { label: 'matcher `POST /match` (10 neighbours, warm, 4 clients): req/s, p50', keys: ['matcher.match.rps', 'matcher.match.p50_ms'] },
      { label: 'pipeline query (`doppel eval`): p50 encode / search / match / whole', keys: ['eval.latency.encode.p50_ms', 'eval.latency.search.p50_ms', 'eval.latency.match.p50_ms', 'eval.latency.total.p50_ms'] },
      { label: 'pipeline query: p99 encode / search / match / whole', keys: ['eval.latency.encode.p99_ms', 'eval.latency.search.p99_ms', 'eval.latency.match.p99_ms', 'eval.latency.total.p99_ms'] },
      { label: 'indexing the dev originals (`doppel eval`)', keys: ['eval.index_images_per_s'] },
    ],
    ratios: true,
  });
}

const backends = (r: BenchResults): string =>
  [backendsTable(r, 'backends-100k', 'backends100k', `**At 100k vectors**: hnswlib through the service; pgvector on ${bulkEngine(r, 'backends-100k', 'backends100k')} loaded first, indexed after.`),
    backendsTable(r, 'backends', 'backends', '**Both through the service**, at the size PGlite\'s incremental HNSW inserts finish in minutes:')].join('\n\n');

/** Where the part's load-then-index build ran, from its figures' labels (PGlite unless a real server was given). */
function bulkEngine(r: BenchResults, part: string, key: string): string {
  const label = partOf(r, part)?.figures.find((f) => f.key === `${key}.bulk.n`)?.label ?? '';
  return label.includes('PostgreSQL') ? 'a PostgreSQL 15 server (pgvector 0.8.0)' : 'PGlite';
}

function backendsTable(r: BenchResults, part: string, key: string, title: string): string {
  const p = partOf(r, part);
  if (!p) return `(no ${part} part in bench/results/latest.json: run \`pnpm bench --only ${part}\`)`;
  const engines = ['hnswlib', 'pglite', 'postgres'].filter((b) => p.figures.some((f) => f.key.startsWith(`${key}.${b}.`)));
  const name = { hnswlib: 'hnswlib', pglite: 'pgvector on PGlite (WASM)', postgres: 'pgvector on PostgreSQL' } as Record<string, string>;
  const rows = [
    ['build through POST /vectors: time', 'build.s'], ['build rate', 'build.vectors_per_s'],
    ['recall@10 / QPS, ef=16', 'ef16.recall', 'ef16.qps'], ['ef=32', 'ef32.recall', 'ef32.qps'], ['ef=64 (default)', 'ef64.recall', 'ef64.qps'],
    ['ef=128', 'ef128.recall', 'ef128.qps'], ['ef=256', 'ef256.recall', 'ef256.qps'],
    ['default ef, 1 client: p50 / p95 / QPS', 'c1.p50_ms', 'c1.p95_ms', 'c1.qps'], ['default ef, 4 clients: p50 / p95 / QPS', 'c4.p50_ms', 'c4.p95_ms', 'c4.qps'],
    ['RSS growth per vector (service + database process)', 'rss_b'], ['database files per vector', 'db_files_b'], ['503 answers retried', 'retries'],
  ];
  const n = p.figures.find((f) => f.key === `${key}.n`)?.value;
  const batch = p.figures.find((f) => f.key === `${key}.batch`)?.value;
  // Runs before BENCH_DIM defaulted to 256 did not record it: they used 512.
  const dim = p.figures.find((f) => f.key === `${key}.dim`)?.value ?? 512;
  const grid = [`| figure (N=${n}, ${dim}-d, Cosine, M=16, efC=100, ${batch} per upsert) | ${engines.map((e) => name[e]).join(' | ')} |`, `| --- |${engines.map(() => ' --- |').join('')}`];
  for (const [label, ...suffixes] of rows) {
    const cells = engines.map((e) => suffixes.map((s) => valueOf(r, `${key}.${e}.${s}`) ?? '-').join(' / '));
    if (cells.every((c) => /^[-/ ]+$/.test(c))) continue;
    grid.push(`| ${label} | ${cells.join(' | ')} |`);
  }
  const bulk = renderGrid(r, [`pgvector on ${bulkEngine(r, part, key)}, rows loaded first, index built after`, 'figure'],
    [['vectors', 'n'], ['query plan (EXPLAIN)', 'plan'], ['rows loaded (no index)', 'load_s'], ['CREATE INDEX (HNSW)', 'index_s'], ['load + index rate', 'build.vectors_per_s'],
      ['recall@10, ef=16', 'ef16.recall'], ['recall@10, ef=32', 'ef32.recall'], ['recall@10, ef=64 (default)', 'ef64.recall'], ['recall@10, ef=128', 'ef128.recall'], ['QPS at ef=64 (HTTP, 1 client)', 'ef64.qps'],
      ['default ef, 1 client: p50', 'c1.p50_ms'], ['p95', 'c1.p95_ms'], ['QPS', 'c1.qps'],
      ['default ef, 4 clients: p50', 'c4.p50_ms'], ['p95', 'c4.p95_ms'], ['QPS', 'c4.qps'],
      ['database files per vector (on a server: table + index)', 'db_files_b'], ['database process RSS per vector', 'db_rss_b']]
      .map(([label, k]) => ({ cells: [label!], prefix: `${key}.bulk.${k}` })), ['']);
  const ratio = part === 'backends' ? ratioRows(r).filter((x) => x.includes('backends:')) : [];
  return [title, '', ...grid, ...(ratio.length ? ['', '| ratio | value | of |', '| --- | ---: | --- |', ...ratio] : []), ...(bulk.length > 2 ? ['', ...bulk] : []), '', `Command: ${commandLine(p)}.`].join('\n');
}

const EFS = [16, 20, 24, 32, 48, 64, 96, 128, 256];

function encoder(r: BenchResults): string {
  return renderBlock(r, {
    rows: [
      { label: 'dev-set images encoded per figure (index and queries)', keys: ['encoder.images'] },
      { label: 'sharp decode + EXIF + resize, 4 at a time', keys: ['encoder.decode.img_per_s'] },
      { label: 'raw onnxruntime `session.run`: batch 16 / batch 1', keys: ['encoder.raw.batch16.img_per_s', 'encoder.raw.batch1.img_per_s'] },
      { label: 'series bound 1/(1/decode + 1/inference)', keys: ['encoder.series.img_per_s'] },
      { label: 'HTTP `/encode/batch`: 32 items x 2 in flight / 64 items x 1', keys: ['encoder.http.batch32.img_per_s', 'encoder.http.batch64.img_per_s'] },
      { label: 'HTTP `/encode`, 8 / 16 concurrent clients', keys: ['encoder.http.c8.img_per_s', 'encoder.http.c16.img_per_s'] },
      { label: 'single `/encode`: p50 / p99', keys: ['encoder.single.p50_ms', 'encoder.single.p99_ms'] },
      { label: 'single `/encode`, all 8 orientations: p50 / p99', keys: ['encoder.single_all.p50_ms', 'encoder.single_all.p99_ms'] },
      { label: 'OpenCV dnn (python3-opencv, same model and images, batch 16): whole / inference only', keys: ['encoder.opencv_dnn.img_per_s', 'encoder.opencv_dnn.inference_img_per_s'] },
    ],
    ratios: 'encoder',
  });
}

/** Per ef, side by side: the service's collection, raw hnswlib-node on the same vectors, and brute force. */
function searchEf(r: BenchResults): string[] {
  const v = (k: string) => valueOf(r, k) ?? '-';
  const head = ['| ef | service collection: recall@10 / QPS | raw hnswlib-node: recall@10 / QPS | service QPS / raw QPS |', '| ---: | --- | --- | ---: |'];
  const rows = EFS.filter((ef) => valueOf(r, `search.ef${ef}.qps`) !== undefined).map((ef) => {
    const svc = partOf(r, 'search')?.figures.find((f) => f.key === `search.ef${ef}.qps`)?.value;
    const raw = partOf(r, 'search')?.figures.find((f) => f.key === `search.raw.ef${ef}.qps`)?.value;
    const ratio = typeof svc === 'number' && typeof raw === 'number' ? `${(svc / raw).toFixed(2)}x` : '-';
    return `| ${ef}${ef === 64 ? ' (default)' : ''} | ${v(`search.ef${ef}.recall`)} / ${v(`search.ef${ef}.qps`)} | ${v(`search.raw.ef${ef}.recall`)} / ${v(`search.raw.ef${ef}.qps`)} | ${ratio} |`;
  });
  if (!rows.length) return [];
  const exact = valueOf(r, 'search.exact.qps');
  return [...head, ...rows, ...(exact ? [`| brute force (exact, recall 1 by definition) | ${exact} | | |`] : [])];
}

function search(r: BenchResults): string {
  const p = partOf(r, 'search');
  const dim = p?.figures.find((f) => f.key === 'search.dim')?.value ?? 512;
  const sweep = renderGrid(r, ['sweep: M / efConstruction', 'build rate', 'recall@10 at ef 16', 'ef 32', 'ef 64', 'ef 128'],
    [[8, 100], [16, 100], [16, 200], [32, 100]].map(([m, e]) => ({ cells: [`${m} / ${e}`], prefix: `search.sweep.m${m}_efc${e}.` })),
    ['build.vectors_per_s', 'ef16.recall', 'ef32.recall', 'ef64.recall', 'ef128.recall']);
  const rest = renderBlock(r, {
    rows: [
      { label: 'vectors / dimension (clustered, Cosine, M=16, efConstruction=100)', keys: ['search.n', 'search.dim'] },
      { label: 'build through the Collection (WAL + fdatasync per 1000-vector batch) / raw hnswlib-node addPoint', keys: ['search.build.vectors_per_s', 'search.raw.build.vectors_per_s'] },
      { label: 'memory per vector: index file / RSS growth (maps included)', keys: ['search.memory.index_file_b', 'search.memory.rss_b'] },
      { label: 'snapshot: write / mutations blocked / longest wait of a concurrent search', keys: ['search.snapshot.s', 'search.snapshot.blocked_s', 'search.snapshot.search_wait_ms'] },
      { label: 'cold start from the snapshot (spawn to /readyz 200, tsx start-up included)', keys: ['search.cold_start_s'] },
      { label: 'cold start from a JSONL seed', keys: ['search.jsonl.lines_per_s'] },
      { label: 'HTTP `POST /search` k=10, default ef, 1 client: p50 / p99 / QPS', keys: ['search.http.c1.p50_ms', 'search.http.c1.p99_ms', 'search.http.c1.qps'] },
      { label: 'HTTP, 4 clients: p50 / p99 / QPS', keys: ['search.http.c4.p50_ms', 'search.http.c4.p99_ms', 'search.http.c4.qps'] },
      { label: 'brute force as fast as HNSW (ef=64) up to: 256-d / 512-d', keys: ['search.crossover.dim256', 'search.crossover.dim512'] },
    ],
    ratios: 'search',
  });
  return [
    ...(p ? [`**In process, one thread** (${p.figures.find((f) => f.key === 'search.n')?.value ?? '?'} vectors, ${dim}-d): recall@10 against brute force and QPS per ef.`, ''] : []),
    ...searchEf(r), '', ...(sweep.length > 2 ? [...sweep, ''] : []), rest, '', backends(r),
  ].join('\n');
}

function matcher(r: BenchResults): string {
  const block = renderBlock(r, {
    rows: [
      { label: 'SIFT extraction per index image, p50: Node / python3-opencv', keys: ['matcher.extract.p50_ms', 'matcher.python.extract.p50_ms'] },
      { label: 'one cached pair, matching, p50: Node / python3-opencv', keys: ['matcher.pair.matching.p50_ms', 'matcher.python.matching.p50_ms'] },
      { label: 'one cached pair, non-matching, p50: Node / python3-opencv', keys: ['matcher.pair.nonmatching.p50_ms', 'matcher.python.nonmatching.p50_ms'] },
      { label: 'service check (plain, then mirrored when it fails), p50: matching / non-matching', keys: ['matcher.check.matching.p50_ms', 'matcher.check.nonmatching.p50_ms'] },
      { label: '`POST /match`, 10 neighbours, warm cache, 4 clients: req/s / p50', keys: ['matcher.match.rps', 'matcher.match.p50_ms'] },
    ],
    ratios: 'matcher',
  });
  const halves = renderGrid(r, ['decisions on the dev set (`doppel eval`)', 'queries (null)', 'precision', 'recall', 'null FP rate'],
    [['calibration', 'v2'], ['calibration', 'v3'], ['held-back', 'v2'], ['held-back', 'v3'], ['both', 'all']].map(([h, g]) => ({ cells: [`${h}${h === 'both' ? ' halves' : ' half'}, ${g === 'all' ? 'all' : g} transforms`], prefix: `eval.${h}.${g}.` })),
    ['queries', 'precision', 'recall', 'null_fp']);
  const curve = renderGrid(r, ['match threshold', 'precision / recall / null FP (all queries, same run)'],
    [0.4, 0.45, 0.5, 0.6].map((t) => ({ cells: [String(t)], prefix: `eval.curve.${t}` })), ['']);
  const ev = partOf(r, 'eval');
  return [block, ...(ev ? ['', ...halves, '', ...curve, '', `Command: ${commandLine(ev)}.`, ...shardLines(r)] : [])].join('\n');
}

function pipeline(r: BenchResults): string {
  const block = renderBlock(r, {
    rows: [
      { label: 'query through the pipeline (`doppel eval`, 2 in flight): p50 encode / search / match / whole', keys: ['eval.latency.encode.p50_ms', 'eval.latency.search.p50_ms', 'eval.latency.match.p50_ms', 'eval.latency.total.p50_ms'] },
      { label: 'p99 encode / search / match / whole', keys: ['eval.latency.encode.p99_ms', 'eval.latency.search.p99_ms', 'eval.latency.match.p99_ms', 'eval.latency.total.p99_ms'] },
      { label: 'indexing the 44 dev originals (`POST /index`)', keys: ['eval.index_images_per_s'] },
      { label: 'both halves, all transforms: precision / recall / null FP rate', keys: ['eval.both.all.precision', 'eval.both.all.recall', 'eval.both.all.null_fp'] },
      { label: 'v2 transforms: precision / recall; v3: precision / recall', keys: ['eval.both.v2.precision', 'eval.both.v2.recall', 'eval.both.v3.precision', 'eval.both.v3.recall'] },
      { label: 'candidate recall@1 / @10 (all transforms)', keys: ['eval.both.all.recall_at_1', 'eval.both.all.recall_at_10'] },
    ],
  });
  return [block, ...shardLines(r), '', 'Per half and per transform: the root README\'s quality table (same run).', '', latency(r)].join('\n');
}

/** Issue #15's ratios: one run of bench/pipeline/latency.bench.ts, this tree against the baseline commit. */
function latency(r: BenchResults): string {
  const rows = (['small', 'large'] as const).flatMap((size) => {
    const at = `latency.${size}`;
    return [
      { label: `${size === 'small' ? 'dev scan set' : '+ 10,000 distractors'}: images indexed`, keys: [`${at}.indexed`] },
      { label: 'query by path p50 / p99 (in raw forward passes)', keys: [`${at}.p50_ms`, `${at}.p50_x`, `${at}.p99_ms`, `${at}.p99_x`] },
      { label: 'query sent as bytes (always encoded): p50 / p99 in raw forward passes', keys: [`${at}.upload_p50_x`, `${at}.upload_p99_x`] },
      { label: 'stage p50: encode / search / match; the query\'s SIFT extraction', keys: [`${at}.encode_ms`, `${at}.search_ms`, `${at}.match_ms`, `${at}.extract_ms`] },
      { label: 'queries settled in their own orientation (1 forward pass)', keys: [`${at}.one_orientation`] },
      { label: '`doppel scan` queries/s: this tree / baseline / ratio', keys: [`${at}.scan_qps`, `${at}.baseline.scan_qps`, `${at}.scan_x`] },
      { label: '`doppel index` images/s: this tree / baseline / ratio', keys: [`${at}.index_img_s`, `${at}.baseline.index_img_s`, `${at}.index_x`] },
      { label: 'baseline query p50 / p99 (in raw forward passes)', keys: [`${at}.baseline.p50_ms`, `${at}.baseline.p50_x`, `${at}.baseline.p99_ms`, `${at}.baseline.p99_x`] },
    ];
  });
  return [
    'Latency against one raw forward pass, and throughput against commit 71052c2, in one run (issue #15):',
    '',
    renderBlock(r, { rows: [{ label: 'one raw fp32 batch-1 forward pass of the default model', keys: ['latency.forward_ms'] }, ...rows] }),
  ].join('\n');
}

function cli(r: BenchResults): string {
  return [renderBlock(r, {
    rows: [
      { label: 'report page of generated groups: images', keys: ['report.images'] },
      { label: 'page / thumbnail sidecar size', keys: ['report.page_mb', 'report.sidecar_mb'] },
      { label: 'facts + report written', keys: ['report.write_s'] },
      { label: 'Chromium: first group drawn / load event / every group rendered by scrolling', keys: ['report.first_group_ms', 'report.load_ms', 'report.scroll_ms'] },
      { label: '`doppel eval` on the dev set: precision / recall / null FP rate (both halves, all transforms)', keys: ['eval.both.all.precision', 'eval.both.all.recall', 'eval.both.all.null_fp'] },
    ],
  }), ...shardLines(r)].join('\n');
}

/** The shard parts a merged eval was made of, one line each. */
function shardLines(r: BenchResults): string[] {
  return r.parts.filter((p) => /^eval-\d+$/.test(p.name)).map((p) => `- ${p.name}: ${commandLine(p)}`);
}

/** Block name -> README file and renderer. */
export const BLOCKS: Array<{ file: string; name: string; render: (r: BenchResults) => string }> = [
  { file: 'README.md', name: 'quality', render: quality },
  { file: 'README.md', name: 'speed', render: speed },
  { file: 'services/image-encoder/README.md', name: 'encoder', render: encoder },
  { file: 'services/contextual-search/README.md', name: 'search', render: search },
  { file: 'services/instance-matching/README.md', name: 'matcher', render: matcher },
  { file: 'services/pipeline/README.md', name: 'pipeline', render: pipeline },
  { file: 'packages/cli/README.md', name: 'cli', render: cli },
];

/** The README text with every block of that file re-rendered. */
export function renderFile(text: string, file: string, r: BenchResults): string {
  let out = text;
  for (const b of BLOCKS.filter((x) => x.file === file)) {
    const start = `<!-- bench:${b.name}:start -->`;
    const end = `<!-- bench:${b.name}:end -->`;
    const i = out.indexOf(start);
    const j = out.indexOf(end);
    if (i < 0 || j < i) throw new Error(`${file}: markers ${start} ... ${end} not found`);
    out = `${out.slice(0, i + start.length)}\n${b.render(r)}\n${out.slice(j)}`;
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = JSON.parse(readFileSync(RESULTS, 'utf8')) as BenchResults;
  const check = process.argv.includes('--check');
  let differs = false;
  for (const file of [...new Set(BLOCKS.map((b) => b.file))]) {
    const path = join(repo, file);
    const text = readFileSync(path, 'utf8');
    const next = renderFile(text, file, r);
    if (next === text) continue;
    differs = true;
    if (check) process.stderr.write(`${file}: figures blocks differ from bench/results/latest.json (run pnpm bench:readme)\n`);
    else { writeFileSync(path, next); process.stderr.write(`${file}: figures blocks rewritten\n`); }
  }
  // latest.md is the same results as one summary: a part merged into latest.json by hand
  // (an `--only ... --out DIR` run) reaches it here too.
  const summary = join(repo, 'bench', 'results', 'latest.md');
  if (readFileSync(summary, 'utf8') !== renderSummary(r)) {
    differs = true;
    if (check) process.stderr.write('bench/results/latest.md differs from bench/results/latest.json (run pnpm bench:readme)\n');
    else { writeFileSync(summary, renderSummary(r)); process.stderr.write('bench/results/latest.md rewritten\n'); }
  }
  if (check && differs) process.exitCode = 1;
}
