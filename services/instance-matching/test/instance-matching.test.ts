import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { cv } from '../src/sift.features.js';
import { MatchingConfig } from '@doppel/schemas';
import { createLogger, loadConfig, Registry, serve, type RunningServer } from '@doppel/service-kit';
import { call } from '@doppel/service-kit/testing';
import { createApp, WorkerPool } from '../src/index.js';
import { lowTextureScene, texturedScene, TRANSFORMS } from './scenes.fixture.js';

interface Started { srv: RunningServer; pool: WorkerPool; base: string }

async function start(env: Record<string, string>): Promise<Started> {
  const config = loadConfig(MatchingConfig, { LOG_LEVEL: 'silent', ...env });
  const logger = createLogger('instance-matching', 'silent');
  const pool = new WorkerPool({ size: config.NB_WORKERS, queueLimit: config.QUEUE_LIMIT });
  const { app } = createApp({ config, registry: new Registry(), logger, pool });
  const srv = await serve(app, { port: 0, host: '127.0.0.1', logger, onShutdown: () => pool.close() });
  return { srv, pool, base: `http://127.0.0.1:${srv.port}` };
}

describe('the patched binding', () => {
  it('when SIFTDetector is used on a generated scene, then it exists and finds keypoints', async () => {
    assert.equal(typeof cv.SIFTDetector, 'function');
    const { data, info } = await sharp(await texturedScene(7)).greyscale().raw().toBuffer({ resolveWithObject: true });
    const mat = new cv.Mat(data, info.height, info.width, cv.CV_8UC1);
    const sift = new cv.SIFTDetector({ nFeatures: 500 });
    const kps = sift.detect(mat);
    assert.ok(kps.length > 100, `only ${kps.length} keypoints`);
    const desc = sift.compute(mat, kps);
    assert.deepEqual([desc.rows, desc.cols], [kps.length, 128]);
  });
});

describe('instance-matching over HTTP', () => {
  let root: string;
  let s: Started;
  const src = (p: string) => path.join(root, 'source', p);
  const tgt = (p: string) => path.join(root, 'target', p);

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'doppel-matching-'));
    await mkdir(src('copies'), { recursive: true });
    await mkdir(tgt('originals'), { recursive: true });
    await writeFile(path.join(root, 'outside.png'), await texturedScene(99));
    const original = await texturedScene(1);
    await writeFile(tgt('originals/scene.png'), original);
    await writeFile(tgt('originals/other.png'), await texturedScene(2));
    await writeFile(tgt('originals/third.png'), await texturedScene(3, 500, 500));
    for (const [name, fn] of Object.entries(TRANSFORMS)) await writeFile(src(`copies/${name}.jpg`), await fn(original));
    await writeFile(src('copies/unrelated.png'), await texturedScene(4));
    const flat = await lowTextureScene(11);
    await writeFile(tgt('originals/flat.jpg'), flat);
    await writeFile(tgt('originals/flat-other.jpg'), await lowTextureScene(12));
    await writeFile(src('copies/flat-copy.jpg'), await sharp(flat).resize({ width: 300 }).jpeg({ quality: 40 }).toBuffer());
    await writeFile(src('copies/flat-mirror.jpg'), await sharp(flat).flop().jpeg({ quality: 80 }).toBuffer());
    await writeFile(tgt('garbage.jpg'), Buffer.from('this is not an image at all'));
    await symlink(path.join(root, 'outside.png'), tgt('escape.png'));
    await symlink(path.join(root, 'outside.png'), src('escape.png'));
    s = await start({ SOURCE_DIR: path.join(root, 'source'), TARGET_DIR: path.join(root, 'target'), NB_WORKERS: '2', MAX_PIXELS: '4000000' });
  });
  after(async () => {
    await s.srv.close();
    await rm(root, { recursive: true, force: true });
  });

  const neighbors = ['originals/scene.png', 'originals/other.png', 'originals/third.png'];

  for (const name of Object.keys(TRANSFORMS)) {
    it(`when the candidate is a ${name} copy, then only its original is duplicated`, async () => {
      const r = await call(s.base, 'POST', '/match', { candidate: `copies/${name}.jpg`, neighbors });
      assert.equal(r.status, 200, r.body.error_message);
      const { duplicated, checked, errors } = r.body.response;
      assert.deepEqual(errors, []);
      assert.equal(checked.length, 3);
      assert.deepEqual(duplicated.map((d: { relative_path: string }) => d.relative_path), ['originals/scene.png'], JSON.stringify(checked));
      const hit = duplicated[0];
      assert.equal(hit.method, 'sift');
      assert.ok(hit.inliers >= 10 && hit.score > 0.5 && hit.score <= 1);
      assert.equal(hit.region.length, 4);
    });
  }

  it('when the copy is a crop, then the region locates it in the original', async () => {
    const r = await call(s.base, 'POST', '/match', { candidate: 'copies/crop50.jpg', neighbors: ['originals/scene.png'] });
    const region: Array<[number, number]> = r.body.response.duplicated[0].region;
    // crop50 keeps the top-right 71% x 71% of the scene.
    const xs = region.map((p) => p[0]);
    const ys = region.map((p) => p[1]);
    assert.ok(Math.abs(Math.min(...xs) - 0.28) < 0.04 && Math.abs(Math.max(...xs) - 0.99) < 0.04, JSON.stringify(region));
    assert.ok(Math.abs(Math.min(...ys) - 0.006) < 0.04 && Math.abs(Math.max(...ys) - 0.72) < 0.04, JSON.stringify(region));
  });

  it('when the candidate is unrelated, then nothing is duplicated but every neighbour is checked', async () => {
    const r = await call(s.base, 'POST', '/match', { candidate: 'copies/unrelated.png', neighbors });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.response.duplicated, []);
    assert.equal(r.body.response.checked.length, 3);
    for (const c of r.body.response.checked) assert.ok(c.score < 0.5, JSON.stringify(c));
  });

  it('when the candidate is sent as base64, then it verifies like a path', async () => {
    const b64 = (await TRANSFORMS.rot90!(await texturedScene(2))).toString('base64');
    const r = await call(s.base, 'POST', '/match', { candidate_base64: b64, neighbors });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.response.duplicated.map((d: { relative_path: string }) => d.relative_path), ['originals/other.png']);
  });

  it('when a low-texture copy is matched, then the dense check verifies it and rejects the other low-texture image', async () => {
    for (const copy of ['copies/flat-copy.jpg', 'copies/flat-mirror.jpg']) {
      const r = await call(s.base, 'POST', '/match', { candidate: copy, neighbors: ['originals/flat.jpg', 'originals/flat-other.jpg', 'originals/scene.png'] });
      assert.equal(r.status, 200);
      const { duplicated, checked } = r.body.response;
      assert.deepEqual(duplicated.map((d: { relative_path: string }) => d.relative_path), ['originals/flat.jpg'], JSON.stringify(checked));
      assert.equal(duplicated[0].method, 'dense');
    }
  });

  it('when the threshold is given, then it decides duplicated and checked keeps every score', async () => {
    const r = await call(s.base, 'POST', '/match', { candidate: 'copies/blur.jpg', neighbors, threshold: 1 });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.response.duplicated, []);
    assert.ok(r.body.response.checked[0].score > 0.5);
  });

  it('when /compare gets a pair, then it answers score, inliers and duplicated', async () => {
    const yes = await call(s.base, 'POST', '/compare', { candidate: 'copies/mirror.jpg', target: 'originals/scene.png' });
    assert.equal(yes.status, 200);
    assert.equal(yes.body.response.duplicated, true);
    assert.ok(yes.body.response.inliers >= 10);
    const no = await call(s.base, 'POST', '/compare', {
      candidate: 'copies/unrelated.png',
      target_base64: (await texturedScene(2)).toString('base64'),
    });
    assert.equal(no.status, 200);
    assert.equal(no.body.response.duplicated, false);
  });

  it('when neighbours are missing, unreadable or escape the root, then each is reported in errors', async () => {
    const r = await call(s.base, 'POST', '/match', {
      candidate: 'copies/grey.jpg',
      neighbors: ['originals/scene.png', 'originals/nope.png', '../outside.png', '/etc/passwd', 'escape.png', 'garbage.jpg'],
    });
    assert.equal(r.status, 200);
    const errs = Object.fromEntries(r.body.response.errors.map((e: { relative_path: string; error_code: string }) => [e.relative_path, e.error_code]));
    assert.deepEqual(errs, {
      'originals/nope.png': 'IMAGE_NOT_FOUND',
      '../outside.png': 'FORBIDDEN_PATH',
      '/etc/passwd': 'FORBIDDEN_PATH',
      'escape.png': 'FORBIDDEN_PATH',
      'garbage.jpg': 'UNDECODABLE_IMAGE',
    });
    assert.deepEqual(r.body.response.duplicated.map((d: { relative_path: string }) => d.relative_path), ['originals/scene.png']);
  });

  it('when the candidate path escapes the root, then 403', async () => {
    for (const candidate of ['../outside.png', '/etc/passwd', 'escape.png', 'copies/../../outside.png']) {
      const r = await call(s.base, 'POST', '/match', { candidate, neighbors });
      assert.equal(r.status, 403, candidate);
      assert.equal(r.body.error_code, 'FORBIDDEN_PATH');
    }
    const missing = await call(s.base, 'POST', '/match', { candidate: 'copies/none.jpg', neighbors });
    assert.equal(missing.status, 404);
  });

  it('when the candidate is not an image or is a pixel bomb, then 422 / 413', async () => {
    const bad = await call(s.base, 'POST', '/match', { candidate_base64: Buffer.from('GIF89a nope').toString('base64'), neighbors });
    assert.equal(bad.status, 422);
    assert.equal(bad.body.error_code, 'UNDECODABLE_IMAGE');
    const bomb = await sharp({ create: { width: 2500, height: 2500, channels: 3, background: '#000000' } }).png().toBuffer();
    const r = await call(s.base, 'POST', '/match', { candidate_base64: bomb.toString('base64'), neighbors });
    assert.equal(r.status, 413);
    assert.equal(r.body.error_code, 'PAYLOAD_TOO_LARGE');
  });

  it('when the body is invalid, then 400 names the field', async () => {
    const r = await call(s.base, 'POST', '/match', { candidate: 'a.jpg', candidate_base64: 'AAAA', neighbors: [] });
    assert.equal(r.status, 400);
    assert.match(r.body.error_message, /candidate/);
    const t = await call(s.base, 'POST', '/match', { candidate: 'a.jpg', neighbors: [], threshold: 2 });
    assert.equal(t.status, 400);
    assert.match(t.body.error_message, /threshold/);
  });

  it('when health, readiness and docs are asked, then they answer', async () => {
    assert.equal((await call(s.base, 'GET', '/healthz')).status, 200);
    const ready = await call(s.base, 'GET', '/readyz');
    assert.equal(ready.status, 200, ready.body.error_message);
    assert.equal(ready.body.response.checks.sift.ok, true);
    const doc = (await (await fetch(`${s.base}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    assert.ok(doc.paths['/match'] && doc.paths['/compare']);
    assert.match(await (await fetch(`${s.base}/metrics`)).text(), /http_request_duration_seconds/);
  });
});

describe('instance-matching under load', () => {
  let s: Started;
  let root: string;
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'doppel-matching-load-'));
    await writeFile(path.join(root, 'a.png'), await texturedScene(5, 1024, 768));
    s = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1', QUEUE_LIMIT: '1', CACHE_ENTRIES: '0' });
  });
  after(async () => {
    await s.srv.close();
    await rm(root, { recursive: true, force: true });
  });

  it('when more work arrives than the queue holds, then 429 with Retry-After and the rest succeed', async () => {
    const replies = await Promise.all(
      Array.from({ length: 8 }, () => call(s.base, 'POST', '/match', { candidate: 'a.png', neighbors: ['a.png'] })),
    );
    const statuses = replies.map((r) => r.status);
    assert.ok(statuses.includes(429), statuses.join(','));
    assert.ok(statuses.includes(200), statuses.join(','));
    for (const r of replies) {
      if (r.status === 429) assert.equal(r.headers.get('retry-after'), '1');
      else assert.equal(r.status, 200);
    }
    // The pool recovers: a lone request afterwards succeeds.
    const again = await call(s.base, 'POST', '/match', { candidate: 'a.png', neighbors: ['a.png'] });
    assert.equal(again.status, 200);
    assert.equal(again.body.response.duplicated.length, 1);
  });
});
