import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { call } from '@doppel/service-kit/testing';
import { inspectModel } from '../src/feature-output.graph.js';
import { loadOnnxModel, ModelFileError } from '../src/onnx.model.js';
import { ensureTestModel, SHARED_MODELS_DIR } from '../src/testing.js';
import { cosine, drawJpeg, drawPng, norm, startEncoder, type TestEncoder } from './helpers.js';

const squeezenet = join(SHARED_MODELS_DIR, 'squeezenet1_1-imagenet.onnx');

describe('image-encoder: features of classifier models', () => {
  const started: TestEncoder[] = [];
  after(async () => { for (const e of started) await e.close(); });
  const start = async (env: Record<string, string>, model: string) => {
    const e = await startEncoder(env, model);
    started.push(e);
    return e;
  };

  it('when the generated model has a Gemm classifier head, then the fingerprint is the pooled vector before it', async () => {
    const headed = ensureTestModel({ classifierClasses: 10 });
    const layout = inspectModel(readFileSync(headed));
    assert.equal(layout.featureTensor, 'features');
    assert.match(layout.reason, /classifier Gemm/);
    const plain = await start({}, ensureTestModel());
    const withHead = await start({}, headed);
    assert.equal(withHead.model.dimension, 16);
    const img = (await drawPng(90, 70, 4)).toString('base64');
    const a = (await call(plain.base, 'POST', '/encode', { image_base64: img })).body.response;
    const b = (await call(withHead.base, 'POST', '/encode', { image_base64: img })).body.response;
    assert.equal(b.dimension, 16);
    // Same seed, same trunk: the head must not change the fingerprint.
    assert.ok(cosine(a.fingerprint, b.fingerprint) > 0.99999);
  });

  it('when FEATURE_TENSOR names a 4-D map, then it is average-pooled into the fingerprint', async () => {
    const plain = await start({}, ensureTestModel());
    const mapped = await start({ FEATURE_TENSOR: 'down_relu_out' }, ensureTestModel({ classifierClasses: 10 }));
    assert.equal(mapped.model.dimension, 16);
    const img = (await drawJpeg(64, 64, 6)).toString('base64');
    const a = (await call(plain.base, 'POST', '/encode', { image_base64: img })).body.response;
    const b = (await call(mapped.base, 'POST', '/encode', { image_base64: img })).body.response;
    assert.ok(cosine(a.fingerprint, b.fingerprint) > 0.99999);
    // An 8-channel map of the residual block: the dimension follows the tensor.
    const early = await loadOnnxModel({ path: ensureTestModel(), featureTensor: 'block_relu2_out', intraOpThreads: 1 });
    assert.equal(early.dimension, 8);
    await early.close();
  });

  it('when FEATURE_TENSOR is not in the model or the file is not a model, then loading fails naming the problem', async () => {
    await assert.rejects(loadOnnxModel({ path: ensureTestModel(), featureTensor: 'nope' }), (e: unknown) => e instanceof ModelFileError && /FEATURE_TENSOR nope/.test(e.message));
    await assert.rejects(loadOnnxModel({ path: join(SHARED_MODELS_DIR, 'README.md') }), ModelFileError);
    await assert.rejects(loadOnnxModel({ path: ensureTestModel(), sha256: '0'.repeat(64) }), /sha256/);
  });

  it('when the SqueezeNet ImageNet classifier is loaded, then its last Concat is pooled into a 512-d fingerprint', { skip: !existsSync(squeezenet) && 'no ../shared/models' }, async () => {
    const layout = inspectModel(readFileSync(squeezenet));
    assert.match(layout.featureTensor, /Concat/);
    assert.match(layout.reason, /convolutional classifier/);
    const enc = await start({}, squeezenet);
    assert.equal(enc.model.dimension, 512);
    assert.equal(enc.model.inputSize, 224);
    const r = await call(enc.base, 'POST', '/encode/batch', {
      items: [{ image_base64: (await drawPng(200, 150, 1)).toString('base64') }, { image_base64: (await drawPng(200, 150, 7)).toString('base64') }],
    });
    const [a, b] = r.body.response.results;
    assert.equal(a.dimension, 512);
    assert.equal(a.fingerprint.length, 512);
    assert.ok(Math.abs(norm(a.fingerprint) - 1) < 1e-5);
    assert.ok(cosine(a.fingerprint, b.fingerprint) < 0.999);
  });
});
