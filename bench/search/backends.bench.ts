/**
 * contextual-search on its two backends, side by side on the same data: the embedded
 * hnswlib index and PostgreSQL + pgvector (PGlite, PostgreSQL compiled to WASM and run
 * single-threaded, served over the wire protocol; or a real server via BENCH_DATABASE_URL).
 * Each backend runs as the real service process; everything goes through HTTP, so the
 * figures are comparable: build (POST /vectors, 1000 per batch), recall@10 and QPS per ef
 * (one client), then 1 and 4 concurrent clients at the default ef. Prints figures, asserts nothing.
 * Then, with BENCH_BULK_N > 0, pgvector's other way to build: rows loaded first (one
 * INSERT ... unnest per BENCH_BATCH, no index), then the service started on that table,
 * which creates the HNSW index over the full table (`CREATE INDEX`, as pgvector advises for
 * a first load); build time, recall@10 vs brute force, p50/p95 and database bytes per vector.
 *   node --conditions=source --import tsx bench/search/backends.bench.ts
 * Env: BENCH_N (100000), BENCH_DIM (256, the default model's fingerprint size), BENCH_QUERIES (200), BENCH_HTTP_SECONDS (8),
 *      BENCH_EF_QUERIES (400 timed queries per ef), BENCH_BATCH (1000 vectors per upsert), BENCH_BACKENDS (hnswlib,pglite),
 *      BENCH_DATABASE_URL (a real server: adds a "postgres" column, unless BENCH_SERVER_COLUMN=0, and takes the bulk build),
 *      BENCH_BULK_N (0), BENCH_BULK_DB (server when BENCH_DATABASE_URL is set, else pglite), BENCH_BULK_MEM (maintenance_work_mem, 1GB).
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
import pg from 'pg';
import { figure } from '../figures.record.js';
import { envNumber } from '../bench.env.js';
import { searchLoad } from './http.load.js';

const env = envNumber;
const N = env('BENCH_N', 100_000);
const DIM = env('BENCH_DIM', 256);
const Q = env('BENCH_QUERIES', 200);
const HTTP_SECONDS = env('BENCH_HTTP_SECONDS', 8);
const EF_QUERIES = env('BENCH_EF_QUERIES', 400);
const BATCH = env('BENCH_BATCH', 1000);
const BULK_N = env('BENCH_BULK_N', 0);
const BULK_MEM = process.env.BENCH_BULK_MEM ?? '1GB';
// Figure keys start with this (`pnpm bench` runs this bench twice, at two sizes).
const KEY = process.env.BENCH_FIGURE_PREFIX ?? 'backends';
const K = 10;
const EFS = [16, 32, 64, 128, 256];
const backends = (process.env.BENCH_BACKENDS ?? 'hnswlib,pglite').split(',').filter(Boolean);
// A real server adds a column built through the service, unless BENCH_SERVER_COLUMN=0 (at
// 100k, pgvector's row-at-a-time HNSW inserts take most of an hour on 2 cores: there the
// server is measured loaded first and indexed after, as pgvector advises for a first load).
if (process.env.BENCH_DATABASE_URL && process.env.BENCH_SERVER_COLUMN !== '0') backends.push('postgres');
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

const set = benchSet(Math.max(N, BULK_N), DIM, Q, K);
console.log(`# backends bench: N=${N} dim=${DIM} queries=${Q} k=${K}, Cosine, service defaults (M=16, efConstruction=100), node ${process.version}, load ${loadavg()}`);
const gt = groundTruth(set, N);
figure(`${KEY}.n`, 'vectors per backend (through the service)', N);
figure(`${KEY}.batch`, 'vectors per upsert (BENCH_BATCH)', BATCH);
figure(`${KEY}.dim`, 'dimension of the vectors', DIM);
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
  const fk = `${KEY}.${backend}`;
  const engine = backend === 'pglite' ? 'pgvector on PGlite' : backend === 'postgres' ? 'pgvector on PostgreSQL' : 'hnswlib';
  figure(`${fk}.build.s`, `${engine}: build of ${N} through POST /vectors (${BATCH} per batch)`, buildS, 's');
  figure(`${fk}.build.vectors_per_s`, `${engine}: build rate`, N / buildS, 'vectors/s');
  const rss1 = rssOf(svc.pid) + (db ? rssOf(db.pid) : 0);
  col['RSS growth per vector (service + database process)'] = `${fmt((rss1 - rss0) / N)} B`;
  figure(`${fk}.rss_b`, `${engine}: RSS growth per vector (service + database process)`, (rss1 - rss0) / N, 'B');
  if (db) {
    const per = (await duBytes(dbDir)) / N;
    col['database files per vector (table + HNSW index + WAL)'] = `${fmt(per)} B`;
    figure(`${fk}.db_files_b`, `${engine}: database files per vector (table + HNSW index + WAL)`, per, 'B');
  }
  if (backend === 'postgres') {
    const per = Number((await serverQuery(`SELECT pg_total_relation_size('${svcEnv.DATABASE_TABLE}') AS b`)).b) / N;
    col['table + HNSW index size per vector'] = `${fmt(per)} B`;
    figure(`${fk}.db_files_b`, `${engine}: table + HNSW index size per vector`, per, 'B');
  }

  const lab = (p: string) => Number(p.slice(4, -4));
  const r = await measureEf(set, async (q, ef) => (await post('/search', { nb_neighbors: K, vec_features: q, ef })).neighbors!.map((n) => lab(n.relative_path)), gt, EFS, EF_QUERIES);
  for (const x of r) {
    col[`ef=${x.ef}: recall@${K} / QPS (HTTP, 1 client)`] = `${x.recall.toFixed(3)} / ${fmt(x.qps)}`;
    figure(`${fk}.ef${x.ef}.recall`, `${engine}: ef=${x.ef}, recall@${K} vs brute force`, x.recall);
    figure(`${fk}.ef${x.ef}.qps`, `${engine}: ef=${x.ef}, QPS over HTTP (1 client)`, x.qps, 'QPS');
  }

  const bodies = set.qrows.map((q) => JSON.stringify({ nb_neighbors: K, vec_features: q }));
  for (const conc of [1, 4]) {
    const l = await searchLoad(base, bodies, conc, HTTP_SECONDS / 2);
    col[`default ef=64, ${conc} client(s): p50 / p95 / p99 / QPS`] = `${fmt(l.p50, 1)} / ${fmt(l.p95, 1)} / ${fmt(l.p99, 1)} ms / ${fmt(l.qps)}`;
    figure(`${fk}.c${conc}.p50_ms`, `${engine}: POST /search default ef, ${conc} client(s): p50`, l.p50, 'ms');
    figure(`${fk}.c${conc}.p95_ms`, `${engine}: ${conc} client(s): p95`, l.p95, 'ms');
    figure(`${fk}.c${conc}.qps`, `${engine}: ${conc} client(s): QPS`, l.qps, 'QPS');
  }
  col['503 answers retried (statement over the 30 s client timeout)'] = String(retries);
  figure(`${fk}.retries`, `${engine}: 503 answers retried`, retries);
  col['load average after'] = loadavg();
  await stop(svc);
  if (db) await stop(db);
  if (backend === 'postgres') await serverQuery(`DROP TABLE IF EXISTS ${svcEnv.DATABASE_TABLE}, ${svcEnv.DATABASE_TABLE}_regions`);
  console.log(`${backend}: done`);
}

if (BULK_N > 0) await bulkBuild(BULK_N);

/**
 * pgvector built the other way: rows first, index after. The table is the service's own
 * (same columns, same index name and operator class), so the service then opens it as it
 * would any table and every search goes through HTTP as above.
 */
/** One statement on the BENCH_DATABASE_URL server; its first row. */
async function serverQuery(sql: string): Promise<Record<string, number>> {
  const c = new pg.Client({ connectionString: process.env.BENCH_DATABASE_URL });
  await c.connect();
  try {
    return ((await c.query(sql)).rows[0] ?? {}) as Record<string, number>;
  } finally {
    await c.end();
  }
}

async function bulkBuild(n: number): Promise<void> {
  // On a real server when one is given (PGlite is single-threaded WASM: its build time is
  // not PostgreSQL's) unless BENCH_BULK_DB=pglite, else on PGlite started here.
  const real = (process.env.BENCH_BULK_DB ?? 'server') === 'server' ? process.env.BENCH_DATABASE_URL : undefined;
  const dir = join(work, 'pglite-bulk');
  const db = real ? undefined : spawnTs('services/contextual-search/scripts/pglite-server.ts', ['--db', dir], {});
  const url = real ?? (await firstLine(db!, /"url":"([^"]+)"/))[1]!;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const table = real ? `bench_bulk_${process.pid}` : 'bench_bulk';
  await client.query(`CREATE EXTENSION IF NOT EXISTS vector; CREATE TABLE ${table} (
    relative_path text PRIMARY KEY, embedding vector(${DIM}) NOT NULL, metadata jsonb,
    updated_at timestamptz NOT NULL DEFAULT now(), seq bigint GENERATED ALWAYS AS IDENTITY);
    CREATE INDEX "${table}_seq" ON ${table} (seq);`);
  const unit = (v: number[]) => { const s = Math.hypot(...v); return `[${v.map((x) => x / s).join(',')}]`; };
  let t = performance.now();
  for (let i = 0; i < n; i += BATCH) {
    const paths: string[] = [];
    const vecs: string[] = [];
    for (let j = i; j < Math.min(n, i + BATCH); j++) { paths.push(`img/${j}.jpg`); vecs.push(unit(row(set.data, j, DIM))); }
    await client.query(`INSERT INTO ${table} (relative_path, embedding) SELECT p, v::vector FROM unnest($1::text[], $2::text[]) AS x(p, v)`, [paths, vecs]);
  }
  const loadS = (performance.now() - t) / 1000;
  console.log(`bulk: ${n} rows loaded in ${fmt(loadS, 1)} s, building the HNSW index (maintenance_work_mem ${BULK_MEM}, load ${loadavg()}) ...`);
  t = performance.now();
  await client.query(`SET maintenance_work_mem = '${BULK_MEM}'`);
  await client.query(`CREATE INDEX "${table}_embedding_hnsw" ON ${table} USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 100)`);
  const indexS = (performance.now() - t) / 1000;
  await client.query('RESET maintenance_work_mem');
  // The figures below are the index's only if the planner uses it (a seq scan would be exact).
  const plan = (await client.query(`EXPLAIN SELECT relative_path FROM ${table} ORDER BY embedding <=> $1::vector LIMIT ${K}`, [unit(set.qrows[0]!)])).rows.map((x: Record<string, string>) => Object.values(x)[0]).join(' ');
  const usesIndex = plan.includes(`Index Scan using ${table}_embedding_hnsw`);
  // A server's data directory holds other tables: count this table's relations only.
  await client.end();
  const bytes = real ? Number((await serverQuery(`SELECT pg_total_relation_size('${table}') AS b`)).b) : await duBytes(dir);
  const dbRss = db ? rssOf(db.pid) : NaN;
  const svc = spawnTs('services/contextual-search/src/main.ts', [], {
    SERVER_PORT: '0', SERVER_HOST: '127.0.0.1', LOG_LEVEL: 'info', DIMENSION: String(DIM), LOCATION: join(work, 'bulk-svc'),
    SEARCH_BACKEND: 'pgvector', DATABASE_URL: url, DATABASE_TABLE: table,
  });
  const base = `http://127.0.0.1:${(await firstLine(svc, /"port":(\d+).*"msg":"listening"/))[1]}`;
  while ((await fetch(`${base}/readyz`).catch(() => undefined))?.status !== 200) await new Promise((r) => setTimeout(r, 100));
  const gtBulk = groundTruth(set, n);
  const search = async (q: number[], ef: number) => {
    const r = await fetch(`${base}/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ nb_neighbors: K, vec_features: q, ef }) });
    if (r.status !== 200) throw new Error(`bulk search: ${r.status}`);
    return ((await r.json()) as { response: { neighbors: Array<{ relative_path: string }> } }).response.neighbors.map((x) => Number(x.relative_path.slice(4, -4)));
  };
  const efs = await measureEf(set, search, gtBulk, [16, 32, 64, 128], EF_QUERIES);
  const bodies = set.qrows.map((q) => JSON.stringify({ nb_neighbors: K, vec_features: q }));
  const l = await searchLoad(base, bodies, 1, HTTP_SECONDS / 2);
  const l4 = await searchLoad(base, bodies, 4, HTTP_SECONDS / 2);
  await stop(svc);
  if (db) await stop(db);
  else await serverQuery(`DROP TABLE IF EXISTS ${table}, ${table}_regions`);
  const e = `pgvector on ${real ? 'PostgreSQL' : 'PGlite'}, index built after the load`;
  figure(`${KEY}.bulk.n`, `${e}: vectors`, n);
  figure(`${KEY}.bulk.load_s`, `${e}: rows loaded (INSERT ... unnest, ${BATCH} per statement, no index)`, loadS, 's');
  figure(`${KEY}.bulk.index_s`, `${e}: CREATE INDEX hnsw (m 16, ef_construction 100, maintenance_work_mem ${BULK_MEM})`, indexS, 's');
  figure(`${KEY}.bulk.build.vectors_per_s`, `${e}: load + index rate`, n / (loadS + indexS), 'vectors/s');
  figure(`${KEY}.bulk.plan`, `${e}: query plan of a k-NN query (EXPLAIN)`, usesIndex ? 'HNSW index scan' : `not the index: ${plan.slice(0, 80)}`);
  figure(`${KEY}.bulk.db_files_b`, `${e}: ${real ? 'table + index size' : 'database files'} per vector`, bytes / n, 'B');
  if (db) figure(`${KEY}.bulk.db_rss_b`, `${e}: RSS of the database process per vector, after the build`, dbRss / n, 'B');
  for (const x of efs) {
    figure(`${KEY}.bulk.ef${x.ef}.recall`, `${e}: ef=${x.ef}, recall@${K} vs brute force`, x.recall);
    figure(`${KEY}.bulk.ef${x.ef}.qps`, `${e}: ef=${x.ef}, QPS over HTTP (1 client)`, x.qps, 'QPS');
  }
  figure(`${KEY}.bulk.c1.p50_ms`, `${e}: POST /search default ef, 1 client: p50`, l.p50, 'ms');
  figure(`${KEY}.bulk.c1.p95_ms`, `${e}: 1 client: p95`, l.p95, 'ms');
  figure(`${KEY}.bulk.c1.qps`, `${e}: 1 client: QPS`, l.qps, 'QPS');
  figure(`${KEY}.bulk.c4.p50_ms`, `${e}: POST /search default ef, 4 clients: p50`, l4.p50, 'ms');
  figure(`${KEY}.bulk.c4.p95_ms`, `${e}: 4 clients: p95`, l4.p95, 'ms');
  figure(`${KEY}.bulk.c4.qps`, `${e}: 4 clients: QPS`, l4.qps, 'QPS');
  console.log(`\nbulk ${e}, ${n} vectors: load ${fmt(loadS, 1)} s, CREATE INDEX ${fmt(indexS, 1)} s, ${fmt(bytes / n)} B/vector on disk; ${efs.map((x) => `ef ${x.ef} recall ${x.recall.toFixed(3)} / ${fmt(x.qps)} QPS`).join(', ')}; 1 client p50 ${fmt(l.p50, 1)} / p95 ${fmt(l.p95, 1)} ms / ${fmt(l.qps)} QPS; 4 clients p50 ${fmt(l4.p50, 1)} / p95 ${fmt(l4.p95, 1)} ms / ${fmt(l4.qps)} QPS; load ${loadavg()}`);
}

const rows = Object.keys(Object.values(cols)[0] ?? {});
console.log(`\n| figure (N=${N}, dim ${DIM}) | ${backends.join(' | ')} |\n| --- |${backends.map(() => ' --- |').join('')}`);
for (const r of rows) console.log(`| ${r} | ${backends.map((b) => cols[b]![r] ?? '-').join(' | ')} |`);
await rm(work, { recursive: true, force: true });
