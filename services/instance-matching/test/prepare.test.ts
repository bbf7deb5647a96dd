import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MatchingConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { call, listen, type Listening } from '@doppel/service-kit/testing';
import { buildService } from '../src/index.js';
import { texturedScene, TRANSFORMS } from './scenes.fixture.js';

describe('prepared candidates (POST /prepare, then /match by candidate_handle)', () => {
  let root: string;
  let srv: Listening;
  let base: string;
  /** The TTL clock of the app: moved by the tests instead of sleeping. */
  let now = 1_000_000;
  const TTL = 5000;

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'doppel-prepare-'));
    await mkdir(path.join(root, 'images'), { recursive: true });
    const original = await texturedScene(1);
    await writeFile(path.join(root, 'images', 'scene.png'), original);
    await writeFile(path.join(root, 'images', 'other.png'), await texturedScene(2));
    await writeFile(path.join(root, 'images', 'copy.jpg'), await TRANSFORMS.rot90!(original));
    const images = path.join(root, 'images');
    const config = loadConfig(MatchingConfig, { LOG_LEVEL: 'silent', SOURCE_DIR: images, TARGET_DIR: images, NB_WORKERS: '1', PREPARED_TTL_MS: String(TTL) });
    srv = await listen(buildService(config, { clock: { now: () => now } }));
    base = srv.base;
  });
  after(async () => {
    await srv.close();
    await rm(root, { recursive: true, force: true });
  });

  const neighbors = ['scene.png', 'other.png'];

  it('when a prepared candidate is matched, then the verdicts equal those of sending the candidate itself', async () => {
    const p = await call(base, 'POST', '/prepare', { candidate: 'copy.jpg' });
    assert.equal(p.status, 200, p.body.error_message);
    const { candidate_handle: handle, keypoints, expires_in_ms: expires, timings_ms: t } = p.body.response;
    assert.ok(keypoints > 50 && expires === TTL && t.extract > 0 && t.decode > 0);
    const byHandle = await call(base, 'POST', '/match', { candidate_handle: handle, neighbors });
    const direct = await call(base, 'POST', '/match', { candidate: 'copy.jpg', neighbors });
    assert.equal(byHandle.status, 200, byHandle.body.error_message);
    assert.deepEqual(byHandle.body.response, direct.body.response);
    assert.deepEqual(byHandle.body.response.duplicated.map((d: { relative_path: string }) => d.relative_path), ['scene.png']);
  });

  it('when a prepared candidate goes unused past its TTL, then /match answers 410 HANDLE_EXPIRED in the error envelope', async () => {
    const b64 = (await TRANSFORMS.rot90!(await texturedScene(1))).toString('base64');
    const p = await call(base, 'POST', '/prepare', { candidate_base64: b64 });
    assert.equal(p.status, 200, p.body.error_message);
    const handle: string = p.body.response.candidate_handle;
    now += TTL - 1; // still alive, and using it restarts its TTL
    assert.equal((await call(base, 'POST', '/match', { candidate_handle: handle, neighbors })).status, 200);
    now += TTL - 1;
    assert.equal((await call(base, 'POST', '/match', { candidate_handle: handle, neighbors })).status, 200);
    now += TTL + 1;
    const stale = await call(base, 'POST', '/match', { candidate_handle: handle, neighbors });
    assert.equal(stale.status, 410);
    assert.deepEqual({ ...stale.body, error_message: '' }, { global_status: 0, error_message: '', error_code: 'HANDLE_EXPIRED', response: {} });
    assert.match(stale.body.error_message, /candidate_handle .* unknown or expired/);
  });

  it('when a handle was never issued or is malformed, then the answer is a 4xx naming it', async () => {
    const unknown = await call(base, 'POST', '/match', { candidate_handle: '00000000-0000-4000-8000-000000000000', neighbors });
    assert.equal(unknown.status, 410);
    const bad = await call(base, 'POST', '/match', { candidate_handle: 'not-a-handle', neighbors });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error_message, /candidate_handle/);
    const both = await call(base, 'POST', '/match', { candidate_handle: '00000000-0000-4000-8000-000000000000', candidate: 'copy.jpg', neighbors });
    assert.equal(both.status, 400);
    const notImage = await call(base, 'POST', '/prepare', { candidate_base64: Buffer.from('not an image').toString('base64') });
    assert.equal(notImage.status, 415);
    const truncated = await call(base, 'POST', '/prepare', { candidate_base64: Buffer.from('GIF89a nope').toString('base64') });
    assert.equal(truncated.status, 422);
  });
});
