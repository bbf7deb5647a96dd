import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call, freePorts } from '@doppel/service-kit/testing';
import { pgvectorEnv, startPglite, stopSharedPglite } from './pglite.fixture.js';
import { postgresEnv, postgresMissing, startPostgres, stopSharedPostgres } from './postgres.fixture.js';
import { launchSearch, type SearchProcess } from './process.fixture.js';
import { removeDir, start, tempDir, upsert } from './search-fixture.js';

const DIM = 8;
const vec = (id: number): number[] => Array.from({ length: DIM }, (_, j) => Math.sin(id * 13 + j * 7) + (j === 0 ? 2 : 0));
const item = (id: number) => ({ relative_path: `p/${id}.jpg`, vec_features: vec(id), metadata: { id } });
const top = async (base: string, id: number) => (await call(base, 'POST', '/search', { nb_neighbors: 1, vec_features: vec(id) })).body.response.neighbors[0];

after(() => Promise.all([stopSharedPglite(), stopSharedPostgres()]));

/**
 * Each suite runs on PGlite and on a real PostgreSQL server: `env` is a table of its own on
 * the shared database, `start` a database of the test's own that it can stop and start again
 * on the same port and folder.
 */
const DATABASES = {
  pglite: {
    env: pgvectorEnv,
    start: async (port: number, dir?: string) => startPglite({ port, ...(dir ? { db: join(dir, 'pg') } : {}) }),
    skip: undefined,
  },
  postgres: {
    env: postgresEnv,
    // Without a folder of the caller's, the server's own goes when it stops.
    start: async (port: number, dir?: string) => {
      const server = await startPostgres({ port, ...(dir ? { dir } : {}) });
      return dir ? server : { ...server, stop: server.destroy };
    },
    skip: postgresMissing,
  },
} as const;

async function readyWithin(base: string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while ((await fetch(`${base}/readyz`).catch(() => undefined))?.status !== 200) {
    if (Date.now() > until) throw new Error(`${base} not ready within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

for (const [database, db0] of Object.entries(DATABASES)) {
const { env: databaseEnv, start: startDatabase } = db0;
const options = db0.skip ? { skip: db0.skip } : {};

describe(`contextual-search on pgvector (${database}): stateless replicas`, options, () => {
  it('when two processes share one database, then a write on one is found by a search on the other at once', { timeout: 400_000 }, async () => {
    const env = { ...(await databaseEnv()), DIMENSION: String(DIM) };
    const procs: SearchProcess[] = [];
    try {
      procs.push(await launchSearch(env), await launchSearch(env));
      const [a, b] = procs as [SearchProcess, SearchProcess];
      const w = await call(a.base, 'POST', '/vectors', { items: [item(1), item(2), item(3)] });
      assert.deepEqual(w.body.response, { inserted: 3, replaced: 0, count: 3 });
      const found = await top(b.base, 2);
      assert.equal(found.relative_path, 'p/2.jpg');
      assert.deepEqual(found.metadata, { id: 2 });
      assert.ok(found.score > 0.999);
      // Hubness reads the stored vectors back from the database: p/2's 2 nearest others are p/1 and p/3.
      const hub = await call(b.base, 'POST', '/search/batch', { queries: [{ vec_features: vec(2) }], nb_neighbors: 1, hubness_k: 2 });
      const others = (await call(b.base, 'POST', '/search', { nb_neighbors: 3, vec_features: vec(2) })).body.response.neighbors.slice(1) as Array<{ score: number }>;
      assert.ok(Math.abs(hub.body.response.neighbors[0].hubness - (others[0]!.score + others[1]!.score) / 2) < 1e-6, JSON.stringify(hub.body));
      // And back: a delete and a replacement on b are what a sees.
      assert.equal((await call(b.base, 'DELETE', '/vectors', { relative_paths: ['p/1.jpg'] })).body.response.count, 2);
      await call(b.base, 'POST', '/vectors', { items: [{ ...item(3), metadata: { id: 3, v: 2 } }] });
      assert.deepEqual((await top(a.base, 3)).metadata, { id: 3, v: 2 });
      assert.notEqual((await top(a.base, 1)).relative_path, 'p/1.jpg');
      assert.equal((await call(a.base, 'GET', '/stats')).body.response.count, 2);
      assert.equal((await call(a.base, 'GET', '/stats')).body.response.backend, 'pgvector');
    } finally {
      for (const p of procs) await p.stop();
    }
  });

  it('when the table was created with another dimension, then the start is refused naming the table and both dimensions', { timeout: 400_000 }, async () => {
    const env = await databaseEnv();
    const dir = await tempDir();
    try {
      const a = await start(dir, { ...env, DIMENSION: '4' });
      await upsert(a.base, [{ relative_path: 'x', vec_features: [1, 0, 0, 0] }]);
      await a.close();
      await assert.rejects(start(dir, { ...env, DIMENSION: '8' }), (e: Error) => e.message.includes(env.DATABASE_TABLE!) && /vector\(4\)/.test(e.message) && /DIMENSION=8/.test(e.message));
      await assert.rejects(start(dir, { ...env, DIMENSION: '4', DISTANCE_TYPE: 'L2' }), (e: Error) => /vector_l2_ops/.test(e.message));
    } finally {
      await removeDir(dir);
    }
  });
});

describe(`contextual-search on pgvector (${database}): the database goes away and comes back`, options, () => {
  it('when the database stops under a running service, then it answers 503 with Retry-After, recovers by itself and no acknowledged write is lost', { timeout: 400_000 }, async () => {
    const dataDir = await mkdtemp(join(tmpdir(), `doppel-${database}-`));
    const [port] = await freePorts(1);
    let db = await startDatabase(port!, dataDir);
    const svc = await launchSearch({ SEARCH_BACKEND: 'pgvector', DATABASE_URL: db.url, DATABASE_TABLE: 'restart_test', DIMENSION: String(DIM) });
    const acked = new Set<number>();
    try {
      for (let id = 0; id < 50; id += 10) {
        const r = await call(svc.base, 'POST', '/vectors', { items: Array.from({ length: 10 }, (_, k) => item(id + k)) });
        assert.equal(r.status, 200);
        for (let k = 0; k < 10; k++) acked.add(id + k);
      }
      await db.stop();

      const ready = await call(svc.base, 'GET', '/readyz');
      assert.equal(ready.status, 503);
      assert.equal(ready.headers.get('retry-after'), '1');
      assert.match(ready.body.error_message, /database unreachable/);
      const s = await call(svc.base, 'POST', '/search', { nb_neighbors: 3, vec_features: vec(1) });
      assert.equal(s.status, 503);
      assert.equal(s.body.error_code, 'UNAVAILABLE');
      assert.equal(s.headers.get('retry-after'), '1');
      // Writes while it is down are refused, never acknowledged.
      for (let id = 1000; id < 1005; id++) {
        const w = await call(svc.base, 'POST', '/vectors', { items: [item(id)] });
        assert.equal(w.status, 503, JSON.stringify(w.body));
        assert.equal(w.headers.get('retry-after'), '1');
      }
      assert.equal((await call(svc.base, 'GET', '/healthz')).status, 200, 'liveness is not readiness');

      db = await startDatabase(port!, dataDir);
      await readyWithin(svc.base, 60_000);
      const all = await call(svc.base, 'GET', '/vectors?limit=1000');
      assert.equal(all.status, 200);
      const present = new Set((all.body.response.items as Array<{ relative_path: string }>).map((i) => i.relative_path));
      for (const id of acked) assert.ok(present.has(`p/${id}.jpg`), `acknowledged upsert of ${id} is missing`);
      assert.equal(all.body.response.total, acked.size);
      assert.equal((await top(svc.base, 7)).relative_path, 'p/7.jpg');
      assert.equal((await call(svc.base, 'POST', '/vectors', { items: [item(2000)] })).status, 200);
    } finally {
      await svc.stop();
      await db.stop();
      await removeDir(dataDir);
    }
  });

  it('when the service starts before the database, then it is not ready until the database answers, and then it is', { timeout: 400_000 }, async () => {
    const [port] = await freePorts(1);
    const svc = await launchSearch(
      { SEARCH_BACKEND: 'pgvector', DATABASE_URL: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`, DATABASE_TABLE: 'late_db', DIMENSION: String(DIM) },
      { ready: false },
    );
    let db: { stop(): Promise<void> } | undefined;
    try {
      const r = await call(svc.base, 'GET', '/readyz');
      assert.equal(r.status, 503);
      assert.equal((await call(svc.base, 'POST', '/search', { nb_neighbors: 1, vec_features: vec(1) })).status, 503);
      db = await startDatabase(port!);
      await readyWithin(svc.base, 60_000);
      assert.equal((await call(svc.base, 'POST', '/vectors', { items: [item(1)] })).status, 200);
      assert.equal((await top(svc.base, 1)).relative_path, 'p/1.jpg');
    } finally {
      await svc.stop();
      await db?.stop();
    }
  });
});
}
