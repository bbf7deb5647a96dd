import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import sharp from 'sharp';
import { call } from '@doppel/service-kit/testing';
import { rmacWindows } from '../src/feature-output.graph.js';
import { SHARED_MODELS_DIR } from '../src/testing.js';
import { pattern, startEncoder, type TestEncoder } from './helpers.js';

const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);
const norm = (a: number[]) => Math.sqrt(dot(a, a));
const b64 = (b: Buffer) => b.toString('base64');

describe('image-encoder: regional fingerprints and pooling', () => {
  let plain: TestEncoder;
  let regional: TestEncoder;
  let gem: TestEncoder;
  let img: Buffer;
  before(async () => {
    [plain, regional, gem] = await Promise.all([
      startEncoder({ REGIONS: 'none' }),
      startEncoder({ REGIONS: 'rmac' }),
      startEncoder({ REGIONS: 'none', POOLING: 'gem' }),
    ]);
    img = await sharp(pattern(128, 96, 3), { raw: { width: 128, height: 96, channels: 3 } }).png().toBuffer();
  });
  after(async () => {
    await Promise.all([plain.close(), regional.close(), gem.close()]);
  });

  it('when regions are asked of a REGIONS=rmac encoder, then 13 unit vectors come back and the fingerprint is unchanged', async () => {
    const r = await call(regional.base, 'POST', '/encode', { image_base64: b64(img), regions: true });
    assert.equal(r.status, 200);
    const { fingerprint, regions, dimension } = r.body.response as { fingerprint: number[]; regions: number[][]; dimension: number };
    assert.equal(regions.length, rmacWindows().length);
    assert.equal(fingerprint.length, dimension);
    for (const v of regions) {
      assert.equal(v.length, dimension);
      assert.ok(Math.abs(norm(v) - 1) < 1e-4);
    }
    const base = (await call(plain.base, 'POST', '/encode', { image_base64: b64(img) })).body.response as { fingerprint: number[]; dimension: number };
    assert.equal(base.dimension, dimension);
    assert.ok(dot(base.fingerprint, fingerprint) > 0.99999, 'the whole-image vector is the plain fingerprint');
    const none = (await call(regional.base, 'POST', '/encode', { image_base64: b64(img), orientations: 'all' })).body.response;
    assert.equal(none.regions, undefined, 'not asked, not sent');
    assert.ok(dot(none.orientations[0].fingerprint, fingerprint) > 0.99999);
  });

  it('when an encoder has no regions, then asking for them returns none', async () => {
    const r = await call(plain.base, 'POST', '/encode/batch', { items: [{ image_base64: b64(img), regions: true }] });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.response.results[0].regions, []);
  });

  it('when POOLING=gem, then the fingerprint is a unit vector different from the average pooling', async () => {
    const a = (await call(plain.base, 'POST', '/encode', { image_base64: b64(img) })).body.response.fingerprint as number[];
    const g = (await call(gem.base, 'POST', '/encode', { image_base64: b64(img) })).body.response.fingerprint as number[];
    assert.ok(Math.abs(norm(g) - 1) < 1e-4);
    assert.ok(dot(a, g) < 0.9999);
  });

  it('when a corner crop of an image is encoded with the real model, then one of the original\'s regions is closer to it than the whole image', async () => {
    const real = await startEncoder({ REGIONS: 'rmac', INTRA_OP_THREADS: '1' }, join(SHARED_MODELS_DIR, 'resnet18-imagenet-layer3.onnx'));
    try {
      // Four different pictures as the quarters of one: the crop of a quarter is unlike the whole.
      const side = 448;
      const q = side / 2;
      const tiles = await Promise.all([2, 5, 9, 13].map((seed) => sharp(pattern(q, q, seed), { raw: { width: q, height: q, channels: 3 } }).rotate(seed * 20 % 360 === 0 ? 0 : 90 * (seed % 4)).png().toBuffer()));
      const original = await sharp({ create: { width: side, height: side, channels: 3, background: '#000' } })
        .composite(tiles.map((input, i) => ({ input, left: (i % 2) * q, top: Math.floor(i / 2) * q })))
        .png().toBuffer();
      // A quarter of the area, from the top-left corner: the R-MAC window [0, 0.5] x [0, 0.5].
      const crop = await sharp(original).extract({ left: 0, top: 0, width: side / 2, height: side / 2 }).png().toBuffer();
      const o = (await call(real.base, 'POST', '/encode', { image_base64: b64(original), regions: true })).body.response as { fingerprint: number[]; regions: number[][] };
      const c = (await call(real.base, 'POST', '/encode', { image_base64: b64(crop) })).body.response.fingerprint as number[];
      const scores = o.regions.map((r) => dot(r, c));
      const best = scores.indexOf(Math.max(...scores));
      assert.ok(scores[best]! > dot(o.fingerprint, c) + 0.05, `best region ${scores[best]} vs whole ${dot(o.fingerprint, c)}`);
      assert.deepEqual(rmacWindows()[best]!.slice(0, 2), [0, 0], 'the best region is a top-left window');
    } finally {
      await real.close();
    }
  });
});
