/**
 * contextual-search on its two backends, side by side on the same data: the embedded
 * hnswlib index and PostgreSQL + pgvector (PGlite, PostgreSQL compiled to WASM and run
 * single-threaded, served over the wire protocol; or a real server via BENCH_DATABASE_URL).
 * Each backend runs as the real service process; everything goes through HTTP, so the
 * figures are comparable: build (POST /vectors, 1000 per batch), recall@10 and QPS per ef
 * (one client), then 1 and 4 concurrent clients at the default ef. Prints figures, asserts nothing.
 *   node --conditions=source --import tsx bench/search/backends.bench.ts
 * Env: BENCH_N (100000), BENCH_DIM (512), BENCH_QUERIES (200), BENCH_HTTP_SECONDS (8),
 *      BENCH_EF_QUERIES (400 timed queries per ef), BENCH_BATCH (1000 vectors per upsert), BENCH_BACKENDS (hnswlib,pglite),
 *      BENCH_DATABASE_URL (adds a "postgres" column against that server).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { benchSet, groundTruth, measureEf, row } from './clustered.data.js';
import { searchLoad } from './http.load.js';

const env = (k: string, d: number): number => (process.env[k] === undefined ? d : Number(process.env[k]));
const N = env('BENCH_N', 100_000);
const DIM = env('BENCH_DIM', 512);
const Q = env('BENCH_QUERIES', 200);
const HTTP_SECONDS = env('BENCH_HTTP_SECONDS', 8);
const EF_QUERIES = env('BENCH_EF_QUERIES', 400);
const BATCH = env('BENCH_BATCH', 1000);
const K = 10;
const EFS = [16, 32, 64, 128, 256];
const backends = (process.env.BENCH_BACKENDS ?? 'hnswlib,pglite').split(',').filter(Boolean);
if (process.env.BENCH_DATABASE_URL) backends.push('postgres');
const root = fileURLToPath(new URL('../..', import.meta.url));
const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const rssOf = (pid: number | undefined): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;

async function duBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) total += (await stat(join(e.parentPath, e.name))).size;
  return total;
}

function spawnTs(script: string, args: string[], extraEnv: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ['--conditions=source', '--import', 'tsx', script, ...args], { cwd: root, env: { ...process.env, ...extraEnv }, stdio: ['ignore', 'pipe', 'inherit'] });
}
const firstLine = async (c: ChildProcess, re: RegExp): Promise<RegExpExecArray> =>
  new Promise((resolve, reject) => {
    createInterface({ input: c.stdout! }).on('line', (l) => {
      const m = re.exec(l);
      if (m) resolve(m);
    });
    c.once('exit', (code) => reject(new Error(`exited with ${code}`)));
  });
async function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = once(c, 'exit');
  c.kill('SIGTERM');
  await exited;
}

const set = benchSet(N, DIM, Q, K);
console.log(`# backends bench: N=${N} dim=${DIM} queries=${Q} k=${K}, Cosine, service defaults (M=16, efConstruction=100), node ${process.version}, load ${loadavg()}`);
const gt = groundTruth(set, N);
const work = await mkdtemp(join(tmpdir(), 'doppel-backends-bench-'));
const cols: Record<string, Record<string, string>> = {};

for (const backend of backends) {
  const col: Record<string, string> = {};
  cols[backend] = col;
  let db: ChildProcess | undefined;
  let dbDir = '';
  const svcEnv: Record<string, string> = { SERVER_PORT: '0', SERVER_HOST: '127.0.0.1', LOG_LEVEL: 'warn', DIMENSION: String(DIM), SNAPSHOT_INTERVAL_MS: '0', SNAPSHOT_WAL_RECORDS: '1000000', INDEX_MODE: 'hnsw', LOCATION: join(work, backend) };
  if (backend === 'pglite') {
    dbDir = join(work, 'pglite');
    db = spawnTs('services/contextual-search/scripts/pglite-server.ts', ['--db', dbDir], {});
    const m = await firstLine(db, /"url":"([^"]+)"/);
    Object.assign(svcEnv, { SEARCH_BACKEND: 'pgvector', DATABASE_URL: m[1]!, DATABASE_TABLE: 'bench_vectors' });
  }
  if (backend === 'postgres') Object.assign(svcEnv, { SEARCH_BACKEND: 'pgvector', DATABASE_URL: process.env.BENCH_DATABASE_URL!, DATABASE_TABLE: `bench_${process.pid}` });
  // LOG_LEVEL=warn hides the "listening" line; ask for info only for that.
  const svc = spawnTs('services/contextual-search/src/main.ts', [], { ...svcEnv, LOG_LEVEL: 'info' });
  const base = `http://127.0.0.1:${(await firstLine(svc, /"port":(\d+).*"msg":"listening"/))[1]}`;
  while ((await fetch(`${base}/readyz`).catch(() => undefined))?.status !== 200) await new Promise((r) => setTimeout(r, 100));
  let retries = 0;
  // Upserts and searches are idempotent: a 503 (Retry-After) is retried as a client would, and counted.
  const post = async (path: string, body: unknown, attempt = 0): Promise<{ neighbors?: Array<{ relative_path: string }> }> => {
    const r = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const j = (await r.json()) as { response: { neighbors?: Array<{ relative_path: string }> } };
    if (r.status === 503 && attempt < 5) {
      retries++;
      await new Promise((res) => setTimeout(res, 1000 * Number(r.headers.get('retry-after') ?? 1)));
      return post(path, body, attempt + 1);
    }
    if (r.status !== 200) throw new Error(`${backend} ${path}: ${r.status} ${JSON.stringify(j).slice(0, 200)}`);
    return j.response;
  };

  const rss0 = rssOf(svc.pid) + (db ? rssOf(db.pid) : 0);
  const t0 = performance.now();
  for (let i = 0; i < N; i += BATCH) {
    const items = [];
    for (let j = i; j < Math.min(N, i + BATCH); j++) items.push({ relative_path: `img/${j}.jpg`, vec_features: row(set.data, j, DIM) });
    await post('/vectors', { items });
  }
  const buildS = (performance.now() - t0) / 1000;
  col[`build (POST /vectors, ${BATCH} per batch)`] = `${fmt(buildS, 1)} s = ${fmt(N / buildS)} vectors/s`;
  const rss1 = rssOf(svc.pid) + (db ? rssOf(db.pid) : 0);
  col['RSS growth per vector (service + database process)'] = `${fmt((rss1 - rss0) / N)} B`;
  if (db) col['database files per vector (table + HNSW index + WAL)'] = `${fmt((await duBytes(dbDir)) / N)} B`;

  const lab = (p: string) => Number(p.slice(4, -4));
  const r = await measureEf(set, async (q, ef) => (await post('/search', { nb_neighbors: K, vec_features: q, ef })).neighbors!.map((n) => lab(n.relative_path)), gt, EFS, EF_QUERIES);
  for (const x of r) col[`ef=${x.ef}: recall@${K} / QPS (HTTP, 1 client)`] = `${x.recall.toFixed(3)} / ${fmt(x.qps)}`;

  const bodies = set.qrows.map((q) => JSON.stringify({ nb_neighbors: K, vec_features: q }));
  for (const conc of [1, 4]) {
    const l = await searchLoad(base, bodies, conc, HTTP_SECONDS / 2);
    col[`default ef=64, ${conc} client(s): p50 / p99 / QPS`] = `${fmt(l.p50, 1)} / ${fmt(l.p99, 1)} ms / ${fmt(l.qps)}`;
  }
  col['503 answers retried (statement over the 30 s client timeout)'] = String(retries);
  col['load average after'] = loadavg();
  await stop(svc);
  if (db) await stop(db);
  console.log(`${backend}: done`);
}

const rows = Object.keys(Object.values(cols)[0] ?? {});
console.log(`\n| figure (N=${N}, dim ${DIM}) | ${backends.join(' | ')} |\n| --- |${backends.map(() => ' --- |').join('')}`);
for (const r of rows) console.log(`| ${r} | ${backends.map((b) => cols[b]![r] ?? '-').join(' | ')} |`);
await rm(work, { recursive: true, force: true });
