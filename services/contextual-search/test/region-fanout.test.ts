import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from '@doppel/service-kit';
import { removeDir, search, start, tempDir, upsert } from './search-fixture.js';

/** The summed ef of the regions store's searches so far, from /metrics. */
async function regionsEf(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(/^search_regions_ef_sum (\d+)/m.exec(text)?.[1] ?? 0);
}

describe('contextual-search: region hits fetched per wanted image', () => {
  const rand = mulberry32(11);
  const vec = () => [rand() - 0.5, rand() - 0.5, rand() - 0.5, rand() - 0.5];
  const regionEfFor = async (entriesPerImage: number) => {
    const dir = await tempDir();
    const svc = await start(dir);
    try {
      const items = Array.from({ length: 30 }, (_, i) => ({ relative_path: `img-${i}.jpg`, vec_features: vec(), regions: Array.from({ length: entriesPerImage }, vec) }));
      assert.equal((await upsert(svc.base, items)).status, 200);
      const before = await regionsEf(svc.base);
      // k = 40: the regions store is asked for 40 x fan-out hits, so its ef is 4 x that (HNSW_EF_PER_K).
      assert.equal((await search(svc.base, vec(), 40)).status, 200);
      return (await regionsEf(svc.base)) - before;
    } finally {
      await svc.close();
      await removeDir(dir);
    }
  };

  it('when each image holds one other entry (a grey entry), then the regions store is asked for k hits; with 13 regions, for 4 k', async () => {
    assert.equal(await regionEfFor(1), 4 * 40);
    assert.equal(await regionEfFor(13), 4 * 4 * 40);
    assert.equal(await regionEfFor(2), 4 * 2 * 40);
  });
});
