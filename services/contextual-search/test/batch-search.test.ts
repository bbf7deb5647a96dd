import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { call } from '@doppel/service-kit/testing';
import { mulberry32 } from '@doppel/service-kit';
import { removeDir, search, start, tempDir, upsert, type Running } from './search-fixture.js';

type Hit = { relative_path: string; score: number; query?: number };

describe('contextual-search: POST /search/batch', () => {
  let dir: string;
  let svc: Running;
  const rand = mulberry32(7);
  const vec = () => [rand() - 0.5, rand() - 0.5, rand() - 0.5, rand() - 0.5];
  const stored = new Map<string, number[]>();
  before(async () => {
    dir = await tempDir();
    // HNSW from the first vector, so the batch goes through the graph as single searches do.
    svc = await start(dir, { INDEX_MODE: 'hnsw' });
    const items = Array.from({ length: 200 }, (_, i) => ({ relative_path: `img-${i}.jpg`, vec_features: vec(), metadata: { i } }));
    for (const it of items) stored.set(it.relative_path, it.vec_features);
    const r = await upsert(svc.base, items);
    assert.equal(r.status, 200);
  });
  after(async () => {
    await svc.close();
    await removeDir(dir);
  });

  it('when several vectors are searched in one batch, then the answer is the union of their single searches with each path\'s best score', async () => {
    const queries = Array.from({ length: 8 }, vec);
    const batch = await call(svc.base, 'POST', '/search/batch', { queries: queries.map((v) => ({ vec_features: v })), nb_neighbors: 10 });
    assert.equal(batch.status, 200);
    const got: Hit[] = batch.body.response.neighbors;
    const union = new Map<string, { score: number; query: number }>();
    for (const [q, v] of queries.entries()) {
      for (const n of (await search(svc.base, v, 10)).body.response.neighbors as Hit[]) {
        const prev = union.get(n.relative_path);
        if (!prev || n.score > prev.score) union.set(n.relative_path, { score: n.score, query: q });
      }
    }
    assert.equal(got.length, union.size);
    for (const n of got) {
      const u = union.get(n.relative_path);
      assert.ok(u, `${n.relative_path} comes from some single search`);
      assert.ok(Math.abs(u.score - n.score) < 1e-9);
      assert.equal(n.query, u.query, 'the vector that gave the best score is named');
    }
    assert.equal(new Set(got.map((n) => n.relative_path)).size, got.length, 'no path twice');
    for (let i = 1; i < got.length; i++) assert.ok(got[i - 1]!.score >= got[i]!.score, 'best first');
    assert.ok(got.every((n) => typeof (n as { metadata?: { i?: number } }).metadata?.i === 'number'), 'metadata kept');
  });

  it('when the same vector is sent twice, then each path still appears once, credited to the first', async () => {
    const v = vec();
    const r = await call(svc.base, 'POST', '/search/batch', { queries: [{ vec_features: v }, { vec_features: v }], nb_neighbors: 5 });
    const got: Hit[] = r.body.response.neighbors;
    assert.equal(got.length, 5);
    assert.ok(got.every((n) => n.query === 0));
  });

  it('when a limit is given, then only the best merged neighbours are returned', async () => {
    const queries = Array.from({ length: 4 }, () => ({ vec_features: vec() }));
    const all: Hit[] = (await call(svc.base, 'POST', '/search/batch', { queries, nb_neighbors: 10 })).body.response.neighbors;
    const top: Hit[] = (await call(svc.base, 'POST', '/search/batch', { queries, nb_neighbors: 10, limit: 3 })).body.response.neighbors;
    assert.deepEqual(top, all.slice(0, 3));
  });

  it('when hubness_k is asked, then each neighbour carries the mean score of its k nearest other images', async () => {
    const queries = Array.from({ length: 3 }, () => ({ vec_features: vec() }));
    const plain: Hit[] = (await call(svc.base, 'POST', '/search/batch', { queries, nb_neighbors: 10, limit: 12 })).body.response.neighbors;
    const r = await call(svc.base, 'POST', '/search/batch', { queries, nb_neighbors: 10, limit: 12, hubness_k: 5 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const got: Array<Hit & { hubness: number }> = r.body.response.neighbors;
    assert.deepEqual(got.map(({ hubness: _h, ...n }) => n), plain, 'same neighbours, same order');
    for (const n of got) {
      // The stored vector is float32: its own search differs from the float64 one by ~1e-7.
      const others = ((await search(svc.base, stored.get(n.relative_path)!, 6)).body.response.neighbors as Hit[])
        .filter((o) => o.relative_path !== n.relative_path).slice(0, 5);
      const want = others.reduce((a, o) => a + o.score, 0) / others.length;
      assert.ok(Math.abs(n.hubness - want) < 1e-6, `${n.relative_path}: ${n.hubness} vs ${want}`);
    }
    for (const k of [0, 101, 1.5]) {
      const bad = await call(svc.base, 'POST', '/search/batch', { queries, nb_neighbors: 3, hubness_k: k });
      assert.equal(bad.status, 400);
      assert.match(bad.body.error_message, /hubness_k/);
    }
  });

  it('when an image gains a twin after its hubness was computed, then the next hubness counts the twin', async () => {
    const queries = [{ vec_features: vec() }];
    const hits = async () => (await call(svc.base, 'POST', '/search/batch', { queries, nb_neighbors: 2, hubness_k: 3 })).body.response.neighbors as Array<Hit & { hubness: number }>;
    const before = (await hits())[0]!;
    // The twin ties with it: find the image by its path.
    const ask = async () => (await hits()).find((n) => n.relative_path === before.relative_path)!;
    assert.equal((await ask()).hubness, before.hubness);
    const r = await upsert(svc.base, [{ relative_path: 'twin.jpg', vec_features: stored.get(before.relative_path)! }]);
    assert.equal(r.status, 200);
    const after = await ask();
    assert.ok(after.hubness > before.hubness, `${after.hubness} > ${before.hubness}`);
    await call(svc.base, 'DELETE', '/vectors', { relative_paths: ['twin.jpg'] });
    assert.ok(Math.abs((await ask()).hubness - before.hubness) < 1e-9, 'and a delete takes it back out');
  });

  it('when one vector of a batch is invalid, then the whole request is a 400 envelope', async () => {
    for (const body of [
      { queries: [{ vec_features: vec() }, { vec_features: [1, 2, 3] }], nb_neighbors: 3 },
      { queries: [{ vec_features: vec() }, { vec_features: [0, 0, 0, 0] }], nb_neighbors: 3 },
      { queries: [], nb_neighbors: 3 },
      { queries: Array.from({ length: 65 }, () => ({ vec_features: vec() })), nb_neighbors: 3 },
      { queries: [{ vec_features: vec(), extra: 1 }], nb_neighbors: 3 },
    ]) {
      const r = await call(svc.base, 'POST', '/search/batch', body);
      assert.equal(r.status, 400, JSON.stringify(body).slice(0, 80));
      assert.equal(r.body.global_status, 0);
      assert.equal(r.body.error_code, 'INVALID_REQUEST');
      assert.deepEqual(r.body.response, {});
    }
  });

  it('when a search names no ef, then its ef grows with k (HNSW_EF_PER_K x k, at least HNSW_EF_SEARCH), and an ef it names is kept', async () => {
    const efSum = async () => {
      const text = await (await fetch(`${svc.base}/metrics`)).text();
      return [Number(/^search_ef_sum (\d+)/m.exec(text)?.[1]), Number(/^search_ef_count (\d+)/m.exec(text)?.[1])] as const;
    };
    const efOf = async (body: Record<string, unknown>) => {
      const [sum0, n0] = await efSum();
      const r = await call(svc.base, 'POST', '/search', { vec_features: vec(), ...body });
      assert.equal(r.status, 200);
      const [sum1, n1] = await efSum();
      assert.equal(n1 - n0, 1, 'one k-NN search');
      return sum1 - sum0;
    };
    // Defaults: HNSW_EF_SEARCH 64, HNSW_EF_PER_K 4.
    assert.equal(await efOf({ nb_neighbors: 10 }), 64);
    assert.equal(await efOf({ nb_neighbors: 100 }), 400);
    assert.equal(await efOf({ nb_neighbors: 100, ef: 150 }), 150);
    assert.equal(await efOf({ nb_neighbors: 100, ef: 20 }), 100, 'never below k');
  });
});
