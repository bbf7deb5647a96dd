import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureTestModel } from '@doppel/image-encoder/testing';
import { call, freePorts } from '@doppel/service-kit/testing';
import { startStack, type Stack } from '@doppel/cli';
import { syntheticImage, transformed, type Transform } from './helpers/images.fixture.js';

/*
 * The four real services as processes (the production entry points, from source), a
 * generated ResNet-shaped model and generated images: index a folder, query edited
 * copies, and check what a dead downstream does to the pipeline.
 */
const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const ORIGINALS = 5;
const TRANSFORMS: Transform[] = ['crop', 'rot90', 'mirror', 'recompress'];

describe('e2e: four real services', { timeout: 240_000 }, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'doppel-e2e-'));
  const root = join(tmp, 'images');
  const outside = join(tmp, 'outside');
  let stack: Stack;
  let base: string;

  before(async () => {
    mkdirSync(join(root, 'index', 'nested'), { recursive: true });
    mkdirSync(join(root, 'queries'), { recursive: true });
    mkdirSync(outside, { recursive: true });
    for (let i = 0; i < ORIGINALS; i++) {
      const img = await syntheticImage(100 + i);
      writeFileSync(join(root, 'index', i % 2 ? 'nested' : '', `orig-${i}.jpg`), img);
      for (const t of TRANSFORMS) writeFileSync(join(root, 'queries', `orig-${i}__${t}.jpg`), await transformed(img, t));
    }
    // Never indexed: its right answer is "no duplicate".
    writeFileSync(join(outside, 'unrelated.jpg'), await syntheticImage(999));
    writeFileSync(join(outside, 'orig-0__crop.jpg'), await transformed(await syntheticImage(100), 'crop'));
    const [pipeline, encoder, search, matching] = await freePorts(4);
    stack = await startStack({
      repoRoot, imagesRoot: root, stateDir: join(tmp, 'state'), modelPath: ensureTestModel(),
      ports: { pipeline: pipeline!, encoder: encoder!, search: search!, matching: matching! },
      readyTimeoutMs: 120_000,
    });
    base = stack.urls.pipeline;
  });

  after(async () => {
    await stack?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  const pathOf = (i: number) => `index/${i % 2 ? 'nested/' : ''}orig-${i}.jpg`;

  it('when the folder is indexed, then every original is indexed, and a rerun skips them all', async () => {
    const first = await call(base, 'POST', '/index', { relative_path: 'index' });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual({ ...first.body.response }, { total: ORIGINALS, indexed: ORIGINALS, skipped: 0, removed: 0, failed: [] });
    const again = await call(base, 'POST', '/index', { relative_path: 'index', prune: true });
    assert.deepEqual({ ...again.body.response }, { total: ORIGINALS, indexed: 0, skipped: ORIGINALS, removed: 0, failed: [] });
  });

  for (const t of TRANSFORMS) {
    it(`when ${t} copies are queried by path, then each finds its original and nothing else`, async () => {
      for (let i = 0; i < ORIGINALS; i++) {
        const r = await call(base, 'POST', '/duplicates', { relative_path: `queries/orig-${i}__${t}.jpg` });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        const found = r.body.response.duplicated.map((d: { relative_path: string }) => d.relative_path);
        assert.deepEqual(found, [pathOf(i)], `orig-${i}__${t}: ${JSON.stringify(r.body.response.duplicated)}`);
        assert.ok(r.body.response.duplicated[0].inliers > 0);
      }
    });
  }

  it('when an image outside the root is sent as base64, then its original is found', async () => {
    const r = await call(base, 'POST', '/duplicates', { image_base64: readFileSync(join(outside, 'orig-0__crop.jpg')).toString('base64') });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.response.duplicated.map((d: { relative_path: string }) => d.relative_path), [pathOf(0)]);
  });

  it('when an unrelated image is queried, then candidates come back but no duplicate', async () => {
    const r = await call(base, 'POST', '/duplicates', { image_base64: readFileSync(join(outside, 'unrelated.jpg')).toString('base64') });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.response.duplicated, []);
    assert.ok(r.body.response.candidates.length > 0);
  });

  it('when the matcher is killed, then the pipeline answers a clear 503 naming it, stays ready, and /health/downstream names it', async () => {
    const matcher = stack.children['instance-matching'];
    const exited = new Promise((resolve) => matcher.once('exit', resolve));
    matcher.kill('SIGKILL');
    await exited;
    const t = Date.now();
    const r = await call(base, 'POST', '/duplicates', { relative_path: 'queries/orig-1__mirror.jpg' });
    const elapsed = Date.now() - t;
    assert.ok([502, 503].includes(r.status), `status ${r.status}`);
    assert.equal(r.body.global_status, 0);
    assert.equal(r.body.error_code, 'UNAVAILABLE');
    assert.match(r.body.error_message, /instance-matching/);
    assert.ok(elapsed < 5000, `answered in ${elapsed} ms`);
    // The pipeline's readiness is its own: one downstream restarting does not take it out
    // of its load balancer; downstream health is reported apart.
    const ready = await call(base, 'GET', '/readyz');
    assert.equal(ready.status, 200);
    assert.equal(ready.body.response.downstream['instance-matching'].ok, false);
    const down = await call(base, 'GET', '/health/downstream');
    assert.equal(down.status, 503);
    assert.match(down.body.error_message, /instance-matching/);
  });
});
