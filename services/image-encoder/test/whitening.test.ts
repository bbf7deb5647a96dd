import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { call } from '@doppel/service-kit/testing';
import { fitWhitening } from '../src/pca-whitening.transform.js';
import { cosine, drawPng, norm, startEncoder, tempDir, type TestEncoder } from './helpers.js';

const b64 = (b: Buffer) => b.toString('base64');

describe('image-encoder: PCA whitening (WHITENING_PATH)', () => {
  const dir = tempDir('doppel-whiten-');
  const file = join(dir, 'test.pca.json');
  let plain: TestEncoder;
  let whitened: TestEncoder;
  let fitted: ReturnType<typeof fitWhitening>;
  let query: Buffer;

  before(async () => {
    plain = await startEncoder();
    // Fit on 24 pictures, then query a 25th the fit never saw.
    const fps: number[][] = [];
    for (let s = 1; s <= 24; s++) {
      const r = await call(plain.base, 'POST', '/encode', { image_base64: b64(await drawPng(64 + s, 48 + 2 * s, s)) });
      fps.push(r.body.response.fingerprint as number[]);
    }
    fitted = fitWhitening(Float32Array.from(fps.flat()), plain.model.dimension, 0.5, 1e-3, 'test pictures');
    writeFileSync(file, JSON.stringify(fitted));
    whitened = await startEncoder({ WHITENING_PATH: file });
    query = await drawPng(80, 60, 31);
  });
  after(async () => {
    await Promise.all([plain?.close(), whitened?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('when a whitening file is set, then every fingerprint (orientations too) is the unit vector of P (x - mean) of the plain one', async () => {
    const [a, b] = await Promise.all([plain, whitened].map((e) => call(e.base, 'POST', '/encode', { image_base64: b64(query), orientations: 'all' })));
    assert.equal(b!.status, 200, JSON.stringify(b!.body));
    const d = fitted.dimension;
    const expect = (x: number[]) => {
      const y = Array.from({ length: d }, (_, r) => x.reduce((s, v, i) => s + fitted.projection[r * d + i]! * (v - fitted.mean[i]!), 0));
      const n = norm(y);
      return y.map((v) => v / n);
    };
    const pairs: Array<[number[], number[]]> = [[a!.body.response.fingerprint, b!.body.response.fingerprint]];
    a!.body.response.orientations.forEach((o: { fingerprint: number[] }, i: number) => pairs.push([o.fingerprint, b!.body.response.orientations[i].fingerprint]));
    for (const [x, w] of pairs) {
      assert.ok(Math.abs(norm(w) - 1) < 1e-6);
      assert.ok(cosine(expect(x), w) > 0.99999);
      assert.ok(cosine(x, w) < 0.99, 'whitening changes the fingerprint');
    }
    assert.match(b!.body.response.model, /\+pca$/);
  });

  it('when the whitening file does not fit the model, then the service does not start and names WHITENING_PATH', async () => {
    const bad = join(dir, 'bad.pca.json');
    writeFileSync(bad, JSON.stringify({ ...fitted, dimension: 3, mean: [0, 0, 0], projection: Array(9).fill(0) }));
    await assert.rejects(startEncoder({ WHITENING_PATH: bad }), /WHITENING_PATH=.*bad\.pca\.json/);
    await assert.rejects(startEncoder({ WHITENING_PATH: join(dir, 'missing.json') }), /WHITENING_PATH=.*missing\.json/);
  });
});
