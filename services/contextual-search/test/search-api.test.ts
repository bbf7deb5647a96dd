import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { call } from '@doppel/service-kit/testing';
import { MAX_UPSERT_ITEMS, SearchConfig } from '@doppel/schemas';
import { createLogger, loadConfig, serve } from '@doppel/service-kit';
import { buildService } from '../src/app.js';
import { stopSharedPglite } from './pglite.fixture.js';
import { stopSharedPostgres } from './postgres.fixture.js';
import { BACKENDS, backendEnv, engineOf, suiteOptions, listAll, remove, removeDir, search, start, stats, tempDir, upsert, type Running } from './search-fixture.js';

after(() => Promise.all([stopSharedPglite(), stopSharedPostgres()]));

for (const backend of BACKENDS) describe(`contextual-search on ${backend}: vectors and search (Cosine, dimension 4)`, suiteOptions(backend), () => {
  let dir: string;
  let svc: Running;
  before(async () => {
    dir = await tempDir();
    svc = await start(dir, await backendEnv(backend));
  });
  after(async () => {
    await svc.close();
    await removeDir(dir);
  });

  it('when the index is loaded, then /readyz is ready and /stats describes it', async () => {
    assert.equal((await call(svc.base, 'GET', '/readyz')).status, 200);
    const s = await stats(svc.base);
    assert.equal(s.count, 0);
    assert.equal(s.dimension, 4);
    assert.equal(s.distance, 'Cosine');
    assert.equal(s.ready, true);
  });

  it('when vectors are upserted, then a search finds them best first with metadata', async () => {
    const r = await upsert(svc.base, [
      { relative_path: 'a.jpg', vec_features: [1, 0, 0, 0], metadata: { w: 10 } },
      { relative_path: 'b.jpg', vec_features: [0, 1, 0, 0] },
      { relative_path: 'c.jpg', vec_features: [-1, 0, 0, 0] },
    ]);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.response, { inserted: 3, replaced: 0, count: 3 });
    const s = await search(svc.base, [2, 0, 0, 0], 3);
    assert.equal(s.status, 200);
    const n = s.body.response.neighbors;
    assert.deepEqual(n.map((x: { relative_path: string }) => x.relative_path), ['a.jpg', 'b.jpg', 'c.jpg']);
    assert.deepEqual(n[0].metadata, { w: 10 });
    assert.ok(Math.abs(n[0].score - 1) < 1e-6, 'same direction scores 1');
    assert.ok(Math.abs(n[1].score - 0.5) < 1e-6, 'orthogonal scores 0.5');
    assert.ok(n[2].score < 1e-6, 'opposite scores 0');
    assert.equal(n[1].metadata, undefined);
  });

  it('when an existing path is upserted again, then its vector and metadata are replaced', async () => {
    const r = await upsert(svc.base, [{ relative_path: 'b.jpg', vec_features: [1, 0.01, 0, 0], metadata: { v: 2 } }]);
    assert.deepEqual(r.body.response, { inserted: 0, replaced: 1, count: 3 });
    const n = (await search(svc.base, [0, 1, 0, 0], 3)).body.response.neighbors;
    assert.ok(n[0].score < 0.6, 'the old vector [0,1,0,0] is gone');
    const top = (await search(svc.base, [1, 0.01, 0, 0], 1)).body.response.neighbors;
    assert.equal(top[0].relative_path, 'b.jpg');
    assert.deepEqual(top[0].metadata, { v: 2 });
  });

  it('when min_score is given, then weaker neighbours are left out', async () => {
    const n = (await search(svc.base, [1, 0, 0, 0], 10, { min_score: 0.9 })).body.response.neighbors;
    assert.deepEqual(n.map((x: { relative_path: string }) => x.relative_path).sort(), ['a.jpg', 'b.jpg']);
    for (const x of n) assert.ok(x.score >= 0.9);
  });

  it('when nb_neighbors exceeds the count, then every vector is returned once', async () => {
    const n = (await search(svc.base, [0, 0, 1, 0], 1000)).body.response.neighbors;
    assert.equal(n.length, 3);
  });

  it('when paths are deleted, then they leave results at once and unknown ones are reported', async () => {
    const r = await remove(svc.base, ['a.jpg', 'nope.jpg']);
    assert.deepEqual(r.body.response, { deleted: 1, not_found: ['nope.jpg'], count: 2 });
    const n = (await search(svc.base, [1, 0, 0, 0], 10)).body.response.neighbors;
    assert.ok(!n.some((x: { relative_path: string }) => x.relative_path === 'a.jpg'));
    if (backend === 'hnswlib') assert.equal((await stats(svc.base)).deleted_slots, 1);
  });

  it(`when a new path is inserted after a delete, then it is counted${backend === 'hnswlib' ? ' and the deleted slot is reused' : ''}`, async () => {
    const before = await stats(svc.base);
    await upsert(svc.base, [{ relative_path: 'd.jpg', vec_features: [0, 0, 0, 1] }]);
    const s = await stats(svc.base);
    assert.equal(s.count, 3);
    assert.equal(s.backend, engineOf(backend));
    if (backend !== 'hnswlib') return;
    assert.equal(s.deleted_slots, 0);
    assert.deepEqual(s.index, before.index);
  });

  it('when the list is paged, then offset and limit apply and vectors come on request', async () => {
    const page = (await call(svc.base, 'GET', '/vectors?offset=1&limit=1')).body.response;
    assert.equal(page.total, 3);
    assert.equal(page.items.length, 1);
    assert.equal(page.items[0].vec_features, undefined);
    const all = await listAll(svc.base);
    assert.deepEqual(all.map((i) => i.relative_path).sort(), ['b.jpg', 'c.jpg', 'd.jpg']);
    const c = all.find((i) => i.relative_path === 'c.jpg')!;
    assert.deepEqual(c.vec_features, [-1, 0, 0, 0]);
    assert.equal((await call(svc.base, 'GET', '/vectors?limit=0')).status, 400);
  });

  it('when stored paths are looked up, then each comes with its vector and metadata in the order asked, and unknown ones are listed', async () => {
    const r = await call(svc.base, 'POST', '/vectors/lookup', { relative_paths: ['c.jpg', 'nope.jpg', 'b.jpg'] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const listed = new Map((await listAll(svc.base)).map((i) => [i.relative_path, i]));
    const items = r.body.response.items as Array<{ relative_path: string; vec_features: number[]; metadata?: unknown }>;
    assert.deepEqual(items.map((i) => i.relative_path), ['c.jpg', 'b.jpg']);
    for (const it of items) {
      assert.deepEqual(it.vec_features, listed.get(it.relative_path)!.vec_features);
      assert.deepEqual(it.metadata, listed.get(it.relative_path)!.metadata);
    }
    assert.ok(items.some((i) => i.metadata !== undefined), 'one looked-up path carries metadata');
    assert.deepEqual(r.body.response.not_found, ['nope.jpg']);
    for (const body of [{ relative_paths: [] }, { relative_paths: [''] }, {}, { relative_paths: ['b.jpg'], extra: 1 }]) {
      const bad = await call(svc.base, 'POST', '/vectors/lookup', body);
      assert.equal(bad.status, 400, JSON.stringify(body));
      assert.equal(bad.body.global_status, 0);
    }
  });

  describe('when a request is invalid, then it is refused with 400 and the index is unchanged', () => {
    const good = { relative_path: 'ok.jpg', vec_features: [1, 1, 1, 1] };
    const cases: Array<[string, unknown]> = [
      ['wrong dimension', { items: [good, { relative_path: 'x', vec_features: [1, 2, 3] }] }],
      ['a string element', { items: [good, { relative_path: 'x', vec_features: [1, '2', 3, 4] }] }],
      ['a null element (NaN/Infinity serialise to null)', { items: [good, { relative_path: 'x', vec_features: [1, null, 3, 4] }] }],
      ['an empty path', { items: [good, { relative_path: '', vec_features: [1, 2, 3, 4] }] }],
      ['a path too long', { items: [good, { relative_path: 'p'.repeat(5000), vec_features: [1, 2, 3, 4] }] }],
      ['an unknown item field', { items: [good, { relative_path: 'x', vec_features: [1, 2, 3, 4], extra: 1 }] }],
      ['an unknown top-level field', { items: [good], force: true }],
      ['a zero vector under Cosine', { items: [good, { relative_path: 'x', vec_features: [0, 0, 0, 0] }] }],
      ['a value beyond float32', { items: [good, { relative_path: 'x', vec_features: [1e39, 0, 0, 0] }] }],
      ['metadata that is not an object', { items: [{ ...good, metadata: [1, 2] }] }],
      ['oversized metadata', { items: [{ ...good, metadata: { big: 'x'.repeat(20000) } }] }],
      ['an empty batch', { items: [] }],
      ['a batch too large', { items: Array.from({ length: MAX_UPSERT_ITEMS + 1 }, (_, i) => ({ relative_path: `p${i}`, vec_features: [1, 0, 0, 0] })) }],
    ];
    for (const [name, body] of cases) {
      it(`upsert with ${name}`, async () => {
        const before = await listAll(svc.base);
        const r = await call(svc.base, 'POST', '/vectors', body);
        assert.equal(r.status, 400, JSON.stringify(r.body).slice(0, 200));
        assert.equal(r.body.error_code, 'INVALID_REQUEST');
        assert.deepEqual(await listAll(svc.base), before);
      });
    }

    it('upsert with metadata nested deeper than the bound (33 levels, and 4,100 levels in 13 KB), the service staying up', async () => {
      const nest = (depth: number): unknown => { let v: unknown = 1; for (let i = 0; i < depth; i++) v = { a: v }; return v; };
      const before = await listAll(svc.base);
      for (const depth of [33, 4100]) {
        const r = await upsert(svc.base, [{ ...good, metadata: nest(depth) as Record<string, unknown> }]);
        assert.equal(r.status, 400, `depth ${depth}: ${JSON.stringify(r.body).slice(0, 200)}`);
        if (depth === 33) {
          assert.equal(r.body.error_code, 'INVALID_REQUEST');
          assert.match(r.body.error_message, /items\[0\]\.metadata: .*32 levels/);
        } else {
          // Past the kit's JSON depth bound (64) the body is refused before it is parsed.
          assert.equal(r.body.error_code, 'INVALID_JSON');
          assert.match(r.body.error_message, /nests deeper than 64 levels/);
        }
      }
      assert.deepEqual(await listAll(svc.base), before);
      // At the bound it is stored, and searches and lists that return it still answer.
      const ok = await upsert(svc.base, [{ relative_path: 'deep.jpg', vec_features: [0.5, 0.5, 0.5, 0.5], metadata: nest(32) as Record<string, unknown> }]);
      assert.equal(ok.status, 200);
      assert.equal((await search(svc.base, [1, 1, 1, 1], 1000)).status, 200);
      assert.equal((await call(svc.base, 'GET', '/vectors?limit=1000')).status, 200);
      assert.equal((await remove(svc.base, ['deep.jpg'])).status, 200);
    });

    it(`upsert with a NUL character in a path or in metadata (${engineOf(backend) === 'pgvector' ? 'PostgreSQL cannot store it: 400' : 'stored'})`, async () => {
      for (const item of [{ relative_path: 'nul\u0000.jpg', vec_features: [1, 1, 1, 1] }, { ...good, relative_path: 'nulmeta.jpg', metadata: { s: 'a\u0000b' } }]) {
        const r = await upsert(svc.base, [item]);
        assert.equal(r.status, engineOf(backend) === 'pgvector' ? 400 : 200, JSON.stringify(r.body).slice(0, 200));
        if (engineOf(backend) === 'pgvector') assert.match(r.body.error_message, /NUL/);
        else await remove(svc.base, [item.relative_path]);
      }
    });

    it('upsert with Infinity written as an overflowing literal (1e999)', async () => {
      const before = await listAll(svc.base);
      const raw = '{"items":[{"relative_path":"ok.jpg","vec_features":[1,1,1,1]},{"relative_path":"x","vec_features":[1e999,0,0,0]}]}';
      const r = await call(svc.base, 'POST', '/vectors', undefined, { headers: { 'content-type': 'application/json' }, raw });
      assert.equal(r.status, 400);
      assert.match(r.body.error_message, /items\[1\]\.vec_features\[0\]/);
      assert.deepEqual(await listAll(svc.base), before);
    });

    it('upsert with NaN in the body (not JSON)', async () => {
      const raw = '{"items":[{"relative_path":"x","vec_features":[NaN,0,0,0]}]}';
      const r = await call(svc.base, 'POST', '/vectors', undefined, { headers: { 'content-type': 'application/json' }, raw });
      assert.equal(r.status, 400);
      assert.equal(r.body.error_code, 'INVALID_JSON');
    });

    it('delete with an empty list, an empty path or an unknown field', async () => {
      const before = await listAll(svc.base);
      for (const body of [{ relative_paths: [] }, { relative_paths: [''] }, { relative_paths: ['b.jpg'], all: true }]) {
        const r = await call(svc.base, 'DELETE', '/vectors', body);
        assert.equal(r.status, 400);
      }
      assert.deepEqual(await listAll(svc.base), before);
    });

    it('search with a wrong dimension, a null, too many neighbours or min_score above 1', async () => {
      for (const body of [
        { nb_neighbors: 3, vec_features: [1, 2, 3] },
        { nb_neighbors: 3, vec_features: [1, null, 3, 4] },
        { nb_neighbors: 1001, vec_features: [1, 2, 3, 4] },
        { nb_neighbors: 0, vec_features: [1, 2, 3, 4] },
        { nb_neighbors: 3, vec_features: [1, 2, 3, 4], min_score: 1.5 },
        { nb_neighbors: 3, vec_features: [1, 2, 3, 4], k: 3 },
      ]) {
        const r = await call(svc.base, 'POST', '/search', body);
        assert.equal(r.status, 400, JSON.stringify(body));
        assert.equal(r.body.error_code, 'INVALID_REQUEST');
      }
    });
  });

  it('when the same path appears twice in one batch, then the last one wins', async () => {
    const r = await upsert(svc.base, [
      { relative_path: 'twice.jpg', vec_features: [1, 2, 3, 4], metadata: { n: 1 } },
      { relative_path: 'twice.jpg', vec_features: [4, 3, 2, 1], metadata: { n: 2 } },
    ]);
    assert.deepEqual(r.body.response, { inserted: 1, replaced: 1, count: 4 });
    const top = (await search(svc.base, [4, 3, 2, 1], 1)).body.response.neighbors[0];
    assert.equal(top.relative_path, 'twice.jpg');
    assert.deepEqual(top.metadata, { n: 2 });
  });

  it('when many upserts arrive concurrently, then all are acknowledged and present', async () => {
    const replies = await Promise.all(
      Array.from({ length: 40 }, (_, i) => upsert(svc.base, [{ relative_path: `conc/${i}`, vec_features: [1, i, 0, 1] }])),
    );
    for (const r of replies) assert.equal(r.status, 200);
    assert.equal((await stats(svc.base)).count, 44);
  });

  it('when upserts are queued while a write is on its way to disk, then they share one fsync (hnswlib group commit)', async (t) => {
    if (backend !== 'hnswlib') return t.skip('group commit is the hnswlib backend\'s');
    const fsyncCount = async () => Number(/search_wal_fsync_seconds_count (\d+)/.exec(await (await fetch(`${svc.base}/metrics`)).text())?.[1]);
    const before = await fsyncCount();
    // All 40 are queued in one turn of the event loop, before any fsync can finish (it runs
    // on the thread pool): however fast the disk, one round takes the first, one the rest.
    const acks = Array.from({ length: 40 }, (_, i) => svc.collection.upsert([{ relative_path: `group/${i}`, vec_features: [1, i, 1, 0] }]));
    await Promise.all(acks);
    const fsyncs = (await fsyncCount()) - before;
    assert.ok(fsyncs >= 1 && fsyncs <= 2, `${fsyncs} fsyncs for 40 queued upserts`);
  });
});

describe('contextual-search: score range per distance', () => {
  const vectors = [
    [1, 0, 0, 0], [0, 1, 0, 0], [-1, 0, 0, 0], [0.6, 0.8, 0, 0], [3, 4, 0, 0], [-5, 2, 1, 0.5],
  ];
  const cases = [
    ...(['hnsw', 'exact'] as const).flatMap((mode) => (['Cosine', 'L2', 'InnerProduct'] as const).map((distance) => ['hnswlib', distance, mode] as const)),
    ...(['pgvector', 'postgres'] as const).flatMap((backend) => (['Cosine', 'L2', 'InnerProduct'] as const).map((distance) => [backend, distance, 'hnsw'] as const)),
  ];
  for (const [backend, distance, mode] of cases) {
    it(`when DISTANCE_TYPE=${distance} (${backend}, ${mode}), then scores are in [0, 1], best first, and an identical unit vector scores 1`, suiteOptions(backend), async () => {
      const dir = await tempDir();
      const svc = await start(dir, { DISTANCE_TYPE: distance, INDEX_MODE: mode, ...(await backendEnv(backend)) });
      try {
        await upsert(svc.base, vectors.map((v, i) => ({ relative_path: `v${i}`, vec_features: v })));
        for (const q of [[1, 0, 0, 0], [0, 0, 0, 1], [100, -100, 3, 0], [-5, 2, 1, 0.5]]) {
          const n = (await search(svc.base, q, 10)).body.response.neighbors as Array<{ relative_path: string; score: number }>;
          assert.equal(n.length, vectors.length);
          for (let i = 0; i < n.length; i++) {
            assert.ok(n[i]!.score >= 0 && n[i]!.score <= 1, `${distance} score ${n[i]!.score}`);
            if (i > 0) assert.ok(n[i]!.score <= n[i - 1]!.score, 'best first');
          }
        }
        const top = (await search(svc.base, [1, 0, 0, 0], 1)).body.response.neighbors[0];
        // Inner product ranks [3,4,0,0] (dot 3) above the identical unit vector; its score saturates at 1.
        assert.equal(top.relative_path, distance === 'InnerProduct' ? 'v4' : 'v0');
        assert.ok(Math.abs(top.score - 1) < 1e-6, `${distance}: ${top.score}`);
        if (distance === 'L2') {
          // 1 / (1 + |a - b|): v1 is at distance sqrt(2) from [1,0,0,0].
          const n = (await search(svc.base, [1, 0, 0, 0], 10)).body.response.neighbors as Array<{ relative_path: string; score: number }>;
          const v1 = n.find((x) => x.relative_path === 'v1')!;
          assert.ok(Math.abs(v1.score - 1 / (1 + Math.SQRT2)) < 1e-5);
        }
        assert.equal((await stats(svc.base)).mode, mode);
      } finally {
        await svc.close();
        await removeDir(dir);
      }
    });
  }
});

describe('contextual-search: exact and HNSW agree', () => {
  it('when INDEX_MODE=auto crosses EXACT_MAX, then the engine switches and results stay the same', async () => {
    const dir = await tempDir();
    const svc = await start(dir, { DIMENSION: '16', EXACT_MAX: '50' });
    try {
      let seed = 7;
      const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
      const items = Array.from({ length: 40 }, (_, i) => ({ relative_path: `r${i}`, vec_features: Array.from({ length: 16 }, rnd) }));
      await upsert(svc.base, items);
      assert.equal((await stats(svc.base)).mode, 'exact');
      const q = Array.from({ length: 16 }, rnd);
      const exact = (await search(svc.base, q, 5)).body.response.neighbors;
      await upsert(svc.base, Array.from({ length: 20 }, (_, i) => ({ relative_path: `far${i}`, vec_features: q.map((x) => -x + i * 1e-3) })));
      assert.equal((await stats(svc.base)).mode, 'hnsw');
      const approx = (await search(svc.base, q, 5)).body.response.neighbors;
      assert.deepEqual(approx.map((x: { relative_path: string }) => x.relative_path), exact.map((x: { relative_path: string }) => x.relative_path));
      for (let i = 0; i < 5; i++) assert.ok(Math.abs(approx[i].score - exact[i].score) < 1e-5);
      await remove(svc.base, Array.from({ length: 20 }, (_, i) => `far${i}`));
      assert.equal((await stats(svc.base)).mode, 'exact');
      assert.deepEqual((await search(svc.base, q, 5)).body.response.neighbors, exact);
    } finally {
      await svc.close();
      await removeDir(dir);
    }
  });
});

describe('contextual-search: query ef and loading state', () => {
  for (const backend of BACKENDS) it(`when HNSW_EF_SEARCH is below nb_neighbors (${backend}), then ef is raised and all k neighbours come back`, suiteOptions(backend), async () => {
    const dir = await tempDir();
    const svc = await start(dir, { DIMENSION: '8', INDEX_MODE: 'hnsw', HNSW_EF_SEARCH: '1', ...(await backendEnv(backend)) });
    try {
      const items = Array.from({ length: 300 }, (_, i) => ({ relative_path: `e${i}`, vec_features: Array.from({ length: 8 }, (_, j) => Math.cos(i * 3 + j * 11)) }));
      await upsert(svc.base, items);
      const n = (await search(svc.base, items[0]!.vec_features, 50)).body.response.neighbors;
      assert.equal(n.length, 50);
      assert.equal(n[0].relative_path, 'e0');
      assert.equal((await search(svc.base, items[0]!.vec_features, 50, { ef: 400 })).body.response.neighbors.length, 50);
    } finally {
      await svc.close();
      await removeDir(dir);
    }
  });

  it('when the index has not finished loading, then /readyz and the data routes answer 503', async () => {
    const dir = await tempDir();
    const config = loadConfig(SearchConfig, { LOCATION: dir, DIMENSION: '4', LOG_LEVEL: 'silent' });
    const logger = createLogger('contextual-search', 'silent');
    // Served before start(), the window main.ts leaves while a large index loads.
    const service = buildService(config, { logger, checkResponses: true });
    const srv = await serve(service.app, { port: 0, host: '127.0.0.1', logger });
    const base = `http://127.0.0.1:${srv.port}`;
    try {
      const ready = await call(base, 'GET', '/readyz');
      assert.equal(ready.status, 503);
      assert.match(ready.body.error_message, /index/);
      assert.equal((await search(base, [1, 0, 0, 0], 1)).status, 503);
      assert.equal((await upsert(base, [{ relative_path: 'x', vec_features: [1, 0, 0, 0] }])).status, 503);
      await service.start?.();
      assert.equal((await call(base, 'GET', '/readyz')).status, 200);
    } finally {
      await srv.close();
      await service.close();
      await removeDir(dir);
    }
  });
});
