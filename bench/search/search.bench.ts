/**
 * contextual-search benchmark: prints figures, asserts nothing.
 *   node --conditions=source --import tsx bench/search/search.bench.ts
 * Env: BENCH_N (100000), BENCH_DIM (256, the fingerprint size of the default model),
 *      BENCH_QUERIES (200), BENCH_SWEEP_N (10000, 0 = skip),
 *      BENCH_JSONL_N (20000), BENCH_HTTP_SECONDS (8), BENCH_M / BENCH_EFC (service defaults).
 * Per ef, side by side on the same vectors: the service's collection (maps, WAL, score
 * conversion), a raw hnswlib-node index (no service, no WAL) and brute force.
 * Single-threaded in-process figures; the machine is shared, so expect noise.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import hnswlib from 'hnswlib-node';
import { Registry, createLogger, loadConfig } from '@doppel/service-kit';
import { SearchConfig } from '@doppel/schemas';
import { buildService, ExactIndex, HnswIndex, HnswlibBackend } from '@doppel/contextual-search';
import { searchLoad } from './http.load.js';
import { NC, benchSet, gauss, groundTruth, makeData, measureEf, recallOf, row } from './clustered.data.js';
import { figure } from '../figures.record.js';
import { envNumber } from '../bench.env.js';

const env = envNumber;
const N = env('BENCH_N', 100_000);
const DIM = env('BENCH_DIM', 256);
const Q = env('BENCH_QUERIES', 200);
const SWEEP_N = env('BENCH_SWEEP_N', 10_000);
const JSONL_N = env('BENCH_JSONL_N', 20_000);
const HTTP_SECONDS = env('BENCH_HTTP_SECONDS', 8);
const defaults = loadConfig(SearchConfig, {});
const M = env('BENCH_M', defaults.HNSW_M);
const EFC = env('BENCH_EFC', defaults.HNSW_EF_CONSTRUCTION);
const K = 10;
const EFS = [16, 20, 24, 32, 48, 64, 96, 128, 256];
const root = fileURLToPath(new URL('../..', import.meta.url));

const out = (label: string, value: string) => console.log(`${label.padEnd(52)} ${value}`);
const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

// ---------------------------------------------------------------- data
const set = benchSet(N, DIM, Q, K);
const { data, qrows, cr } = set;
let t0 = performance.now();
console.log(`# contextual-search bench: N=${N} dim=${DIM} queries=${Q} k=${K}, Cosine, M=${M} efConstruction=${EFC}, node ${process.version}`);
out('data generation', `${fmt((performance.now() - t0) / 1000, 1)} s`);

const groundTruthOf = (n: number) => groundTruth(set, n);

// ---------------------------------------------------------------- M / efConstruction sweep
if (SWEEP_N > 0) {
  const n = Math.min(SWEEP_N, N);
  console.log(`\n## parameter sweep on the first ${n} vectors (recall@${K} / in-process QPS, one thread)`);
  const gt = groundTruthOf(n);
  for (const [m, efc] of [[8, 100], [16, 100], [16, 200], [32, 100]] as const) {
    const idx = HnswIndex.create('Cosine', DIM, { M: m, efConstruction: efc, efSearch: 64 }, n);
    const t = performance.now();
    for (let i = 0; i < n; i++) idx.add(i, row(data, i, DIM), true);
    const s = (performance.now() - t) / 1000;
    const r = await measureEf(set, (q, ef) => idx.search(q, K, ef).labels, gt, [16, 32, 64, 128]);
    out(`M=${m} efC=${efc}: build ${fmt(n / s)} vec/s`, r.map((x) => `ef${x.ef} ${x.recall.toFixed(3)}/${fmt(x.qps)}`).join('  '));
    const key = `search.sweep.m${m}_efc${efc}`;
    figure(`${key}.build.vectors_per_s`, `sweep on ${n}: M=${m} efC=${efc}, build rate`, n / s, 'vectors/s');
    for (const x of r) figure(`${key}.ef${x.ef}.recall`, `sweep on ${n}: M=${m} efC=${efc}, recall@${K} at ef=${x.ef}`, x.recall);
  }
}

// ---------------------------------------------------------------- full build through the service's collection
console.log(`\n## ${N} vectors through the service's Collection (WAL + fsync per 1000-vector batch), then in-process search`);
const work = await mkdtemp(join(tmpdir(), 'doppel-search-bench-'));
const snapDir = join(work, 'snap');
const cfgEnv = (location: string, extra: Record<string, string> = {}) => ({
  LOCATION: location,
  DIMENSION: String(DIM),
  HNSW_M: String(M),
  HNSW_EF_CONSTRUCTION: String(EFC),
  SNAPSHOT_INTERVAL_MS: '0',
  SNAPSHOT_WAL_RECORDS: '1000000',
  INDEX_MODE: 'hnsw',
  LOG_LEVEL: 'warn',
  ...extra,
});
{
  globalThis.gc?.();
  const rss0 = process.memoryUsage().rss;
  const config = loadConfig(SearchConfig, cfgEnv(snapDir));
  const registry = new Registry();
  const service = buildService(config, { registry, logger: createLogger('bench', 'warn') });
  const { collection } = service;
  await service.start?.();
  t0 = performance.now();
  const B = 1000;
  for (let i = 0; i < N; i += B) {
    const items = [];
    for (let j = i; j < Math.min(N, i + B); j++) items.push({ relative_path: `img/${j}.jpg`, vec_features: row(data, j, DIM) });
    await collection.upsert(items);
  }
  const buildS = (performance.now() - t0) / 1000;
  globalThis.gc?.();
  const rss1 = process.memoryUsage().rss;
  figure('search.n', 'vectors (clustered, Cosine)', N);
  figure('search.dim', 'dimension of the vectors', DIM);
  figure('search.build.vectors_per_s', 'build through the Collection (WAL + fdatasync per 1000-vector batch)', N / buildS, 'vectors/s');
  out('build time', `${fmt(buildS, 1)} s (${fmt(N / buildS)} vectors/s added)`);
  // A histogram's values carry the series name (_sum, _count); prom-client's type omits it.
  const fsync = (await registry.getSingleMetric('search_wal_fsync_seconds')!.get()).values as Array<{ metricName?: string; value: number }>;
  const fsum = fsync.find((x) => x.metricName === 'search_wal_fsync_seconds_sum')?.value ?? NaN;
  const fcount = fsync.find((x) => x.metricName === 'search_wal_fsync_seconds_count')?.value ?? NaN;
  out('WAL fdatasync per group commit (1000-vector records)', `mean ${fmt((fsum / fcount) * 1000, 2)} ms over ${fcount}`);
  // Computed after the build so its 100k-row matrix does not blur the RSS figure above.
  const gtFull = groundTruthOf(N);
  const lab = (p: string) => Number(p.slice(4, -4));
  const r = await measureEf(set, async (q, ef) => (await collection.search(q, K, 0, ef)).map((n) => lab(n.relative_path)), gtFull, EFS);
  for (const x of r) {
    figure(`search.ef${x.ef}.recall`, `ef=${x.ef}: recall@${K} vs brute force`, x.recall);
    figure(`search.ef${x.ef}.qps`, `ef=${x.ef}: in-process QPS, one thread`, x.qps, 'QPS');
  }
  rawHnswlib(gtFull);
  // Brute force over the same vectors, the baseline of every ef above (recall 1 by definition).
  {
    const ex = new ExactIndex('Cosine', DIM, N);
    for (let i = 0; i < N; i++) ex.set(i, data.subarray(i * DIM, (i + 1) * DIM));
    const nq = Math.min(qrows.length, 50);
    for (let i = 0; i < 5; i++) ex.search(qrows[i]!, K);
    const t = performance.now();
    for (let i = 0; i < nq; i++) ex.search(qrows[i]!, K);
    const qps = nq / ((performance.now() - t) / 1000);
    figure('search.exact.qps', `brute force (exact, JS) over all ${N}: in-process QPS, one thread`, qps, 'QPS');
    out('brute force (exact)', `QPS ${fmt(qps)} (${fmt(1000 / qps, 2)} ms/query)`);
  }
  for (const x of r) out(`ef=${x.ef}`, `recall@${K} ${x.recall.toFixed(3)}  QPS ${fmt(x.qps)}  (${fmt(1000 / x.qps, 3)} ms/query)`);
  // A concurrent search stream shows whether searches stall while the snapshot is written.
  let worst = 0;
  let writing = true;
  const probe = (async () => {
    while (writing) {
      const s = performance.now();
      await new Promise((res) => setImmediate(res));
      await collection.search(qrows[0]!, K);
      const gap = performance.now() - s;
      worst = Math.max(worst, gap);
    }
  })();
  if (!(collection.backend instanceof HnswlibBackend)) throw new Error('the hnswlib section needs SEARCH_BACKEND=hnswlib');
  const snap = await collection.backend.snapshot();
  writing = false;
  await probe;
  if (snap) {
    figure('search.snapshot.s', `snapshot of ${N} vectors: write time`, snap.ms / 1000, 's');
    figure('search.snapshot.blocked_s', 'snapshot: mutations blocked', snap.mutations_blocked_ms / 1000, 's');
    figure('search.snapshot.search_wait_ms', 'snapshot: longest wait of a concurrent search loop', worst, 'ms');
  }
  if (snap) out('snapshot write', `${fmt(snap.ms / 1000, 2)} s for ${fmt(snap.bytes / 1e6)} MB; mutations blocked ${fmt(snap.mutations_blocked_ms / 1000, 2)} s; a search loop meanwhile waited at most ${fmt(worst, 1)} ms for the event loop + search`);
  await service.close();
  const files = await readdir(join(snapDir, '.index'));
  const hnswFile = files.find((f) => f.endsWith('.hnsw'))!;
  const bytes = (await stat(join(snapDir, '.index', hnswFile))).size;
  figure('search.memory.index_file_b', 'memory per vector: index file (the float32 vector is 4 B x dim)', bytes / N, 'B');
  figure('search.memory.rss_b', 'memory per vector: RSS growth of the process, maps included', (rss1 - rss0) / N, 'B');
  out('memory per vector', `${fmt(bytes / N)} B in the index file (${fmt((DIM * 4) / 1)} B of it the float32 vector); RSS growth ${fmt((rss1 - rss0) / N)} B/vector`);
}

// ---------------------------------------------------------------- raw hnswlib-node, same data
/**
 * The same vectors in a bare hnswlib-node index (same M, efConstruction, seed; no WAL, no
 * path maps, no score conversion): what the service's collection costs on top of the
 * library, per ef.
 */
function rawHnswlib(gt: number[][]): void {
  const idx = new hnswlib.HierarchicalNSW('cosine', DIM);
  idx.initIndex(N, M, EFC, 100);
  const t = performance.now();
  for (let i = 0; i < N; i++) idx.addPoint(row(data, i, DIM), i);
  const s = (performance.now() - t) / 1000;
  figure('search.raw.build.vectors_per_s', 'raw hnswlib-node: build rate (addPoint, no WAL)', N / s, 'vectors/s');
  out('raw hnswlib-node build', `${fmt(s, 1)} s (${fmt(N / s)} vectors/s)`);
  const reps = Math.max(1, Math.ceil(2000 / qrows.length));
  for (const ef of EFS) {
    idx.setEf(ef);
    const got = qrows.map((q) => idx.searchKnn(q, K).neighbors);
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) for (const q of qrows) idx.searchKnn(q, K);
    const qps = (reps * qrows.length) / ((performance.now() - t0) / 1000);
    const recall = recallOf(got, gt, K);
    figure(`search.raw.ef${ef}.recall`, `raw hnswlib-node, ef=${ef}: recall@${K} vs brute force`, recall);
    figure(`search.raw.ef${ef}.qps`, `raw hnswlib-node, ef=${ef}: QPS, one thread`, qps, 'QPS');
    out(`raw hnswlib-node ef=${ef}`, `recall@${K} ${recall.toFixed(3)}  QPS ${fmt(qps)}`);
  }
}

// ---------------------------------------------------------------- HTTP: cold start from the snapshot, then /search
interface Proc { child: ChildProcess; base: string; readyMs: number }
async function launch(location: string): Promise<Proc> {
  const t = performance.now();
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', 'services/contextual-search/src/main.ts'], {
    cwd: root,
    env: { ...process.env, ...cfgEnv(location, { SERVER_PORT: '0', SERVER_HOST: '127.0.0.1', LOG_LEVEL: 'info', HNSW_EF_SEARCH: String(defaults.HNSW_EF_SEARCH) }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const base = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (l) => {
      const m = /"port":(\d+).*"msg":"listening"/.exec(l);
      if (m) resolve(`http://127.0.0.1:${m[1]}`);
    });
    child.once('exit', (c) => reject(new Error(`service exited ${c}`)));
  });
  for (;;) {
    const r = await fetch(`${base}/readyz`).catch(() => undefined);
    if (r?.status === 200) break;
    await new Promise((res) => setTimeout(res, 20));
  }
  return { child, base, readyMs: performance.now() - t };
}
async function stop(p: Proc): Promise<void> {
  p.child.kill('SIGTERM');
  await once(p.child, 'exit');
}

console.log('\n## HTTP (service process, client in this process on the same 2 cores)');
{
  const p = await launch(snapDir);
  figure('search.cold_start_s', `cold start from the snapshot of ${N} (spawn to /readyz 200, incl. tsx start-up)`, p.readyMs / 1000, 's');
  out(`cold start from snapshot (${N} vectors)`, `${fmt(p.readyMs / 1000, 2)} s (spawn to /readyz 200, includes ~1 s of tsx start-up)`);
  const bodies = qrows.map((q) => JSON.stringify({ nb_neighbors: K, vec_features: q }));
  const one = async (i: number) => {
    const r = await fetch(`${p.base}/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: bodies[i % bodies.length] });
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`search ${r.status}`);
  };
  for (let i = 0; i < 100; i++) await one(i); // warm-up
  for (const conc of [1, 4]) {
    const l = await searchLoad(p.base, bodies, conc, HTTP_SECONDS / 2);
    figure(`search.http.c${conc}.p50_ms`, `HTTP POST /search k=10, default ef, ${conc} client(s): p50`, l.p50, 'ms');
    figure(`search.http.c${conc}.p99_ms`, `HTTP POST /search, ${conc} client(s): p99`, l.p99, 'ms');
    figure(`search.http.c${conc}.qps`, `HTTP POST /search, ${conc} client(s): QPS`, l.qps, 'QPS');
    out(`POST /search k=${K} ef=${defaults.HNSW_EF_SEARCH}, ${conc} client(s)`, `p50 ${fmt(l.p50, 2)} ms  p99 ${fmt(l.p99, 2)} ms  QPS ${fmt(l.qps)}`);
  }
  // Server-side view, to tell service time from client and scheduling time on the shared cores.
  const metrics = await (await fetch(`${p.base}/metrics`)).text();
  const num = (re: RegExp) => Number(re.exec(metrics)?.[1] ?? NaN);
  const httpSum = num(/http_request_duration_seconds_sum\{method="POST",route="\/search",status_code="200"\} ([\d.e-]+)/);
  const httpCount = num(/http_request_duration_seconds_count\{method="POST",route="\/search",status_code="200"\} (\d+)/);
  const knnSum = num(/search_query_seconds_sum\{mode="hnsw"\} ([\d.e-]+)/);
  const knnCount = num(/search_query_seconds_count\{mode="hnsw"\} (\d+)/);
  out('server side, mean per /search', `${fmt((httpSum / httpCount) * 1000, 3)} ms in express, of which ${fmt((knnSum / knnCount) * 1000, 3)} ms k-NN`);
  await stop(p);
}

// ---------------------------------------------------------------- cold start from JSONL
{
  const n = Math.min(JSONL_N, N);
  const loc = join(work, 'jsonl');
  await rm(loc, { recursive: true, force: true });
  await import('node:fs/promises').then((fs) => fs.mkdir(loc, { recursive: true }));
  const ws = createWriteStream(join(loc, 'embeddings.jsonl'));
  for (let i = 0; i < n; i++) {
    const ok = ws.write(`${JSON.stringify({ relative_path: `img/${i}.jpg`, vec_features: row(data, i, DIM).map((x) => Math.round(x * 1e5) / 1e5) })}\n`);
    if (!ok) await once(ws, 'drain');
  }
  ws.end();
  await once(ws, 'finish');
  const size = (await stat(join(loc, 'embeddings.jsonl'))).size;
  const p = await launch(loc);
  figure('search.jsonl.lines_per_s', `cold start from a JSONL seed of ${n} lines (parse + HNSW insert)`, n / (p.readyMs / 1000), 'lines/s');
  out(`cold start from JSONL (${n} lines, ${fmt(size / 1e6)} MB)`, `${fmt(p.readyMs / 1000, 1)} s (${fmt(n / (p.readyMs / 1000))} lines/s, parse + HNSW insert)`);
  await stop(p);
  const p2 = await launch(loc);
  out('restart after that (snapshot, JSONL file skipped)', `${fmt(p2.readyMs / 1000, 2)} s`);
  await stop(p2);
}

// ---------------------------------------------------------------- exact-mode crossover
console.log('\n## exact (brute force, JS) vs HNSW (ef=64) per query, k=10, one thread');
for (const dim of [...new Set([256, 512, DIM])]) {
  const cells: string[] = [];
  let crossover = 0;
  for (const n of [25, 50, 100, 200, 500, 1000, 2000]) {
    const d = makeData(n, dim, 9, new Float32Array(NC * dim).map(() => gauss(cr)), NC);
    const ex = new ExactIndex('Cosine', dim, n);
    const hn = HnswIndex.create('Cosine', dim, { M, efConstruction: EFC, efSearch: 64 }, n);
    for (let i = 0; i < n; i++) {
      ex.set(i, d.subarray(i * dim, (i + 1) * dim));
      hn.add(i, row(d, i, dim), true);
    }
    const qs = Array.from({ length: 200 }, (_, i) => row(d, i % n, dim).map((x) => x + 0.1));
    const time = (f: (q: number[]) => void) => {
      for (let r = 0; r < 3; r++) for (const q of qs) f(q); // JIT warm-up
      const t = performance.now();
      for (let r = 0; r < 5; r++) for (const q of qs) f(q);
      return (performance.now() - t) / (5 * qs.length);
    };
    const te = time((q) => ex.search(q, K));
    const th = time((q) => hn.search(q, K, 64));
    if (te <= th) crossover = n;
    cells.push(`n=${n}: ${fmt(te, 3)}/${fmt(th, 3)} ms`);
  }
  out(`dim ${dim} (exact/hnsw)`, cells.join('  '));
  out(`dim ${dim}: exact still as fast up to`, crossover ? `${crossover} vectors` : 'never (below 25)');
  figure(`search.crossover.dim${dim}`, `${dim}-d: brute force as fast as HNSW (ef=64) up to`, crossover ? `${crossover} vectors` : 'below 25 vectors');
}

await rm(work, { recursive: true, force: true });
console.log('\n(figures are from a shared 2-core machine; other work was running, expect noise)');
