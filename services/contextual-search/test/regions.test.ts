import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { call } from '@doppel/service-kit/testing';
import { listAll, remove, removeDir, search, start, stats, tempDir, upsert, type Running } from './search-fixture.js';
import { pgvectorEnv, stopSharedPglite } from './pglite.fixture.js';

type Hit = { relative_path: string; score: number; region?: number };
const paths = (hits: Hit[]) => hits.map((h) => h.relative_path);

describe('contextual-search: regional fingerprints', () => {
  let dir: string;
  let svc: Running;
  before(async () => {
    dir = await tempDir();
    svc = await start(dir);
  });
  after(async () => {
    await svc.close();
    await removeDir(dir);
  });

  it('when an image is upserted with regions, then a vector near one region finds the image, naming the region', async () => {
    const r = await upsert(svc.base, [
      { relative_path: 'a.jpg', vec_features: [1, 0, 0, 0], metadata: { w: 1 }, regions: [[0, 1, 0, 0], [0, 0, 1, 0]] },
      { relative_path: 'b.jpg', vec_features: [0.7, 0.7, 0, 0] },
    ]);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.response, { inserted: 2, replaced: 0, count: 2 });
    assert.equal((await stats(svc.base)).region_vectors, 2);
    const hits: Hit[] = (await search(svc.base, [0, 0, 1, 0.05], 2)).body.response.neighbors;
    assert.equal(hits[0]!.relative_path, 'a.jpg');
    assert.equal(hits[0]!.region, 1);
    assert.ok(hits[0]!.score > 0.99);
    assert.deepEqual((hits[0] as { metadata?: unknown }).metadata, { w: 1 }, 'the image\'s metadata, from its whole-image hit');
    // The listing and the count are the images', not their regions'.
    assert.deepEqual((await listAll(svc.base)).map((i) => i.relative_path), ['a.jpg', 'b.jpg']);
  });

  it('when the whole image and its regions all match, then the image is returned once with its best score', async () => {
    const hits: Hit[] = (await search(svc.base, [0.6, 0.6, 0.5, 0], 10)).body.response.neighbors;
    assert.equal(new Set(paths(hits)).size, hits.length);
    assert.deepEqual(paths(hits).sort(), ['a.jpg', 'b.jpg']);
    const batch: Hit[] = (await call(svc.base, 'POST', '/search/batch', {
      queries: [{ vec_features: [1, 0, 0, 0] }, { vec_features: [0, 1, 0, 0] }, { vec_features: [0, 0, 1, 0] }], nb_neighbors: 10,
    })).body.response.neighbors;
    assert.deepEqual(paths(batch).sort(), ['a.jpg', 'b.jpg']);
    const a = batch.find((h) => h.relative_path === 'a.jpg')!;
    assert.ok(a.score > 0.999);
    assert.deepEqual((a as { metadata?: unknown }).metadata, { w: 1 }, 'the whole-image hit lends its metadata');
  });

  it('when an image is replaced with fewer regions, then its old regions stop matching', async () => {
    const r = await upsert(svc.base, [{ relative_path: 'a.jpg', vec_features: [1, 0, 0, 0], regions: [[0, 0, 0, 1]] }]);
    assert.deepEqual(r.body.response, { inserted: 0, replaced: 1, count: 2 });
    assert.equal((await stats(svc.base)).region_vectors, 1);
    const old: Hit[] = (await search(svc.base, [0, 0, 1, 0], 2)).body.response.neighbors;
    assert.ok(old.every((h) => h.score < 0.75), 'region [0,0,1,0] is gone');
    const now: Hit[] = (await search(svc.base, [0, 0, 0, 1], 1)).body.response.neighbors;
    assert.deepEqual([now[0]!.relative_path, now[0]!.region], ['a.jpg', 0]);
    await upsert(svc.base, [{ relative_path: 'a.jpg', vec_features: [1, 0, 0, 0] }]);
    assert.equal((await stats(svc.base)).region_vectors, 0, 'an upsert without regions drops them');
  });

  it('when an image is deleted, then its regions go with it, also after a restart', async () => {
    await upsert(svc.base, [{ relative_path: 'c.jpg', vec_features: [0, 0, 0, 1], regions: [[0, 0, 1, 0], [0, 1, 0, 0], [0, -1, 0, 0]] }]);
    await svc.close();
    svc = await start(dir);
    assert.equal((await stats(svc.base)).region_vectors, 3, 'regions are durable');
    const found: Hit[] = (await search(svc.base, [0, -1, 0, 0], 1)).body.response.neighbors;
    assert.deepEqual([found[0]!.relative_path, found[0]!.region], ['c.jpg', 2]);
    const r = await remove(svc.base, ['c.jpg']);
    assert.deepEqual(r.body.response, { deleted: 1, not_found: [], count: 2 });
    assert.equal((await stats(svc.base)).region_vectors, 0);
    const after: Hit[] = (await search(svc.base, [0, -1, 0, 0], 5)).body.response.neighbors;
    assert.ok(!paths(after).includes('c.jpg'));
  });

  it('when a region vector or a path is invalid, then the upsert is a 400 and nothing changes', async () => {
    const before = await stats(svc.base);
    for (const item of [
      { relative_path: 'd.jpg', vec_features: [1, 0, 0, 0], regions: [[1, 0, 0]] },
      { relative_path: 'd.jpg', vec_features: [1, 0, 0, 0], regions: [[0, 0, 0, 0]] },
      { relative_path: 'd.jpg', vec_features: [1, 0, 0], regions: [[1, 0, 0, 0]] },
      { relative_path: 'd.jpg', vec_features: [1, 0, 0, 0], regions: Array.from({ length: 17 }, () => [1, 0, 0, 0]) },
      { relative_path: 'd\u001f1.jpg', vec_features: [1, 0, 0, 0] },
    ]) {
      const r = await upsert(svc.base, [item]);
      assert.equal(r.status, 400, JSON.stringify(item).slice(0, 80));
      assert.equal(r.body.error_code, 'INVALID_REQUEST');
    }
    const now = await stats(svc.base);
    assert.equal(now.count, before.count);
    assert.equal(now.region_vectors, before.region_vectors);
  });
});

/** Sum of a metric's samples (every label set) in a /metrics text; 0 when absent. */
async function metricSum(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([\\d.e+-]+)$`, 'gm'))) sum += Number(m[1]);
  return sum;
}

describe('contextual-search: regions off (no image carries any)', () => {
  after(() => stopSharedPglite());
  it('when no image has regions, then upserts, deletes and searches leave the regions store alone, until the first region arrives', async () => {
    const dir = await tempDir();
    const svc = await start(dir);
    try {
      await upsert(svc.base, [{ relative_path: 'a.jpg', vec_features: [1, 0, 0, 0] }, { relative_path: 'b.jpg', vec_features: [0, 1, 0, 0] }]);
      await remove(svc.base, ['b.jpg']);
      await upsert(svc.base, [{ relative_path: 'a.jpg', vec_features: [1, 0.1, 0, 0] }]);
      assert.equal((await search(svc.base, [1, 0, 0, 0], 2)).body.response.neighbors[0].relative_path, 'a.jpg');
      const batch = await call(svc.base, 'POST', '/search/batch', { queries: [{ vec_features: [1, 0, 0, 0] }, { vec_features: [0, 0, 1, 0] }], nb_neighbors: 2 });
      assert.equal(batch.status, 200);
      assert.equal(await metricSum(svc.base, 'search_regions_wal_records'), 0, 'no blind region delete was logged');
      assert.equal(await metricSum(svc.base, 'search_regions_query_seconds_count'), 0, 'no k-NN query on the empty regions store');
      assert.ok(await metricSum(svc.base, 'search_query_seconds_count') >= 3, 'the images were searched');

      await upsert(svc.base, [{ relative_path: 'c.jpg', vec_features: [0, 0, 0, 1], regions: [[0, 0, 1, 0]] }]);
      const hits = (await search(svc.base, [0, 0, 1, 0], 1)).body.response.neighbors;
      assert.deepEqual([hits[0].relative_path, hits[0].region], ['c.jpg', 0]);
      assert.ok(await metricSum(svc.base, 'search_regions_query_seconds_count') > 0, 'regions are searched once there are some');
      await remove(svc.base, ['c.jpg']);
      assert.equal((await stats(svc.base)).region_vectors, 0, 'its regions went with it');
    } finally {
      await svc.close();
      await removeDir(dir);
    }
  });

  it('when another pgvector replica adds the first regions, then a delete here still removes them', { timeout: 400_000 }, async () => {
    const env = { ...(await pgvectorEnv()), SEARCH_BACKEND: 'pgvector' };
    const [da, db] = [await tempDir(), await tempDir()];
    const a = await start(da, env);
    const b = await start(db, env);
    try {
      assert.equal((await search(a.base, [1, 0, 0, 0], 1)).status, 200, 'a has seen the regions table empty');
      await upsert(b.base, [{ relative_path: 'r.jpg', vec_features: [1, 0, 0, 0], regions: [[0, 1, 0, 0], [0, 0, 1, 0]] }]);
      assert.equal((await stats(a.base)).region_vectors, 2);
      await remove(a.base, ['r.jpg']);
      assert.equal((await stats(b.base)).region_vectors, 0, 'no region of the deleted image is left behind');
    } finally {
      await a.close();
      await b.close();
      await removeDir(da);
      await removeDir(db);
    }
  });
});
