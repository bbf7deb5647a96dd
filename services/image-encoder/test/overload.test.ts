import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { call } from '@doppel/service-kit/testing';
import { drawPng, startEncoder, tempDir, type TestEncoder } from './helpers.js';

describe('image-encoder: a full queue', () => {
  let enc: TestEncoder;
  before(async () => {
    const root = tempDir();
    for (let i = 0; i < 5; i++) writeFileSync(join(root, `${i}.png`), await drawPng(64, 64, i + 1));
    // A batch is decoded first and submitted in one tick, so QUEUE_LIMIT decides exactly.
    enc = await startEncoder({ IMAGES_ROOT: root, QUEUE_LIMIT: '2', MAX_BATCH: '1' });
  });
  after(() => enc.close());

  it('when a batch holds more images than the queue, then the excess items get 429 and Retry-After', async () => {
    const items = Array.from({ length: 5 }, (_, i) => ({ request_id: i, relative_path: `${i}.png` }));
    const r = await call(enc.base, 'POST', '/encode/batch', { items });
    assert.equal(r.status, 200);
    const res = r.body.response.results;
    assert.deepEqual(res.map((x: { status?: number }) => x.status ?? 200), [200, 200, 429, 429, 429]);
    assert.equal(res[2].error_code, 'OVERLOADED');
    assert.equal(r.headers.get('retry-after'), '1');
  });

  it('when one request needs more slots than the queue has, then 429 with Retry-After', async () => {
    const r = await call(enc.base, 'POST', '/encode', { relative_path: '0.png', orientations: 'all' });
    assert.equal(r.status, 429);
    assert.equal(r.body.error_code, 'OVERLOADED');
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    const metrics = await (await fetch(`${enc.base}/metrics`)).text();
    assert.match(metrics, /encoder_errors_total\{code="OVERLOADED"\} 4\b/);
  });

  it('when every item of a batch is refused for load, then the whole batch is 429', async () => {
    const items = [0, 1].map((i) => ({ relative_path: `${i}.png`, orientations: 'all' }));
    const r = await call(enc.base, 'POST', '/encode/batch', { items });
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '1');
  });

  it('when the queue has drained, then requests are served again', async () => {
    assert.equal((await call(enc.base, 'POST', '/encode', { relative_path: '1.png' })).status, 200);
  });
});
