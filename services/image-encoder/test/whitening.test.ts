import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { call } from '@doppel/service-kit/testing';
import { fitWhitening } from '../src/pca-whitening.transform.js';
import { ensureTestModel } from '../src/testing.js';
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

  describe('the default (WHITENING_PATH=auto): the fit beside the model', () => {
    // A copy of the generated model in its own folder, so its `x.pca.json` is ours alone.
    const modelDir = tempDir('doppel-whiten-auto-');
    const modelPath = join(modelDir, 'model.onnx');
    const fitPath = join(modelDir, 'model.pca.json');
    before(() => copyFileSync(ensureTestModel(), modelPath));
    after(() => rmSync(modelDir, { recursive: true, force: true }));
    const sha = () => createHash('sha256').update(readFileSync(modelPath)).digest('hex');
    const modelName = async (env: Record<string, string> = {}) => {
      const e = await startEncoder(env, modelPath);
      try {
        const r = await call(e.base, 'POST', '/encode', { image_base64: b64(query) });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        return { model: r.body.response.model as string, fingerprint: r.body.response.fingerprint as number[] };
      } finally {
        await e.close();
      }
    };

    it('when no fit is beside the model, then the fingerprints are plain and the model name has no +pca', async () => {
      rmSync(fitPath, { force: true });
      assert.equal((await modelName()).model, 'model.onnx');
    });

    it('when the fit beside the model was made for it, then every fingerprint is whitened and the model name gets +pca', async () => {
      writeFileSync(fitPath, JSON.stringify({ ...fitted, model: 'model.onnx', model_sha256: sha() }));
      const auto = await modelName();
      assert.equal(auto.model, 'model.onnx+pca');
      const p = await call(plain.base, 'POST', '/encode', { image_base64: b64(query) });
      assert.ok(cosine(auto.fingerprint, p.body.response.fingerprint) < 0.99, 'whitened');
      // none turns it off even with the fit there.
      assert.equal((await modelName({ WHITENING_PATH: 'none' })).model, 'model.onnx');
    });

    it('when the fit beside the model belongs to another model, then the service does not start and says how to refit', async () => {
      writeFileSync(fitPath, JSON.stringify({ ...fitted, model: 'other.onnx', model_sha256: '0'.repeat(64) }));
      await assert.rejects(startEncoder({}, modelPath), /model\.pca\.json: fitted for another model \(other\.onnx.*pnpm models.*WHITENING_PATH=none/);
      // A fit that names no model cannot be told to be this one's.
      writeFileSync(fitPath, JSON.stringify(fitted));
      await assert.rejects(startEncoder({}, modelPath), /records no model checksum/);
      // An explicit path is checked the same way when the file names its model.
      writeFileSync(fitPath, JSON.stringify({ ...fitted, model_sha256: '0'.repeat(64) }));
      await assert.rejects(startEncoder({ WHITENING_PATH: fitPath }, modelPath), /fitted for another model/);
    });
  });
});
