import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import ort from 'onnxruntime-node';
import { EncoderConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { call } from '@doppel/service-kit/testing';
import { buildInt8Model } from '../src/int8-model.builder.js';
import { int8PathFor } from '../src/model-path.config.js';
import { loadOnnxModel, ModelFileError } from '../src/onnx.model.js';
import { decodeModel } from '../src/onnx-proto.schema.js';
import { whiteningPathFor, type WhiteningFile } from '../src/pca-whitening.transform.js';
import { fitWhiteningOnFolder } from '../src/whitening.fitter.js';
import { decodeImage } from '../src/preprocess.image.js';
import { rgbToTensor } from '../src/tensor-layout.transform.js';
import { ensureTestModel, REPO_ROOT, SHARED_MODELS_DIR } from '../src/testing.js';
import { cosine, drawJpeg, startEncoder, tempDir } from './helpers.js';

const DEV_INDEX = join(REPO_ROOT, '..', 'shared', 'bench', 'dev', 'index');

async function tensorsOf(images: Buffer[], size: number): Promise<() => AsyncIterable<ort.Tensor>> {
  const xs: ort.Tensor[] = [];
  for (const img of images) {
    const x = new Float32Array(3 * size * size);
    rgbToTensor(await decodeImage(img, { size, mode: 'center-crop', maxPixels: 50_000_000 }), size, x);
    xs.push(new ort.Tensor('float32', x, [1, 3, size, size]));
  }
  return async function* () { yield* xs; };
}

/** Quantises `fp32File` into a temp dir beside a copy of it; returns both paths. */
async function quantised(fp32File: string, calibration: Buffer[], size: number) {
  const dir = tempDir('doppel-int8-');
  const fp32 = join(dir, 'model.onnx');
  writeFileSync(fp32, readFileSync(fp32File));
  const q = await buildInt8Model(readFileSync(fp32), await tensorsOf(calibration, size), { method: 'percentile', weightQmax: 63 });
  writeFileSync(int8PathFor(fp32), q.bytes);
  return { fp32, int8: int8PathFor(fp32) };
}

async function fingerprints(modelPath: string, images: Buffer[]): Promise<number[][]> {
  const enc = await startEncoder({}, modelPath);
  try {
    const r = await call(enc.base, 'POST', '/encode/batch', { items: images.map((b) => ({ image_base64: b.toString('base64') })) });
    assert.equal(r.status, 200);
    const results = (r.body as { response: { results: Array<{ fingerprint: number[]; model: string }> } }).response.results;
    return results.map((x) => x.fingerprint);
  } finally {
    await enc.close();
  }
}

test('when the generated model is quantised, then onnxruntime runs every Conv as QLinearConv and the fingerprints stay close to fp32', async () => {
  const calib = await Promise.all([1, 2, 3, 4, 5, 6].map((s) => drawJpeg(96, 80, s)));
  const { fp32, int8 } = await quantised(ensureTestModel(), calib, 64);
  const optimised = join(tempDir('doppel-int8-opt-'), 'opt.onnx');
  const s = await ort.InferenceSession.create(int8, { graphOptimizationLevel: 'all', optimizedModelFilePath: optimised });
  await s.release();
  const ops = (decodeModel(readFileSync(optimised)).graph?.node ?? []).map((n) => n.op_type);
  assert.equal(ops.filter((o) => o === 'QLinearConv').length, 4, `fused graph: ${ops.join(' ')}`);
  assert.equal(ops.filter((o) => o === 'Conv').length, 0);

  const probes = await Promise.all([11, 12, 13].map((s) => drawJpeg(120, 90, s)));
  const [a, b] = [await fingerprints(fp32, probes), await fingerprints(int8, probes)];
  for (let i = 0; i < probes.length; i++) assert.ok(cosine(a[i]!, b[i]!) > 0.98, `image ${i}: cosine ${cosine(a[i]!, b[i]!)}`);
});

test('when MODEL_SHA256 names the float weights, then their quantised file loads and another hash is refused', async () => {
  const calib = await Promise.all([1, 2].map((s) => drawJpeg(64, 64, s)));
  const { fp32, int8 } = await quantised(ensureTestModel(), calib, 64);
  const { createHash } = await import('node:crypto');
  const sha = createHash('sha256').update(readFileSync(fp32)).digest('hex');
  const m = await loadOnnxModel({ path: int8, sha256: sha, intraOpThreads: 1 });
  assert.equal(m.name, 'model.int8.onnx');
  await m.close();
  await assert.rejects(loadOnnxModel({ path: int8, sha256: 'a'.repeat(64) }), (e: unknown) => e instanceof ModelFileError && /quantised from/.test(e.message));
});

test('when the int8 model is fitted as `pnpm quantize` fits it, then MODEL_PRECISION=int8 whitens with its own fit and refuses the float model\'s', async () => {
  const calib = await Promise.all([1, 2, 3, 4].map((s) => drawJpeg(96, 80, s)));
  const { fp32, int8 } = await quantised(ensureTestModel(), calib, 64);
  const images = tempDir('doppel-int8-fit-');
  for (let s = 1; s <= 16; s++) writeFileSync(join(images, `fit${String(s).padStart(2, '0')}.jpg`), await drawJpeg(70 + 3 * s, 60 + 2 * s, 20 + s));
  // What scripts/quantize-model.ts has provisionWhitening do once the fit images are collected.
  const config = loadConfig(EncoderConfig, { LOG_LEVEL: 'silent', MODEL_PATH: int8, MODEL_PRECISION: 'fp32', INTRA_OP_THREADS: '1' });
  const fit = await fitWhiteningOnFolder(config, { dir: images, limit: 100, alpha: 0.5, out: whiteningPathFor(int8) });
  assert.equal(fit.images, 16);
  const written = JSON.parse(readFileSync(join(dirname(fp32), 'model.int8.pca.json'), 'utf8')) as WhiteningFile;
  const { createHash } = await import('node:crypto');
  assert.equal(written.model_sha256, createHash('sha256').update(readFileSync(int8)).digest('hex'));

  const probe = (await drawJpeg(88, 72, 77)).toString('base64');
  const encode = async (env: Record<string, string>) => {
    const enc = await startEncoder({ MODEL_PRECISION: 'int8', ...env }, fp32);
    try {
      const r = await call(enc.base, 'POST', '/encode', { image_base64: probe });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.response as { fingerprint: number[]; model: string };
    } finally {
      await enc.close();
    }
  };
  const [whitened, plain] = [await encode({}), await encode({ WHITENING_PATH: 'none' })];
  assert.equal(whitened.model, 'model.int8.onnx+pca');
  assert.equal(plain.model, 'model.int8.onnx');
  assert.ok(cosine(whitened.fingerprint, plain.fingerprint) < 0.99, 'the fit changes the fingerprint');

  // A fit of the float model put where the int8 one belongs names other bytes: int8 does not start with it.
  const floatFit = { ...written, model: 'model.onnx', model_sha256: createHash('sha256').update(readFileSync(fp32)).digest('hex') };
  writeFileSync(whiteningPathFor(int8), JSON.stringify(floatFit));
  await assert.rejects(startEncoder({ MODEL_PRECISION: 'int8' }, fp32), /fitted for another model.*Run `pnpm quantize`/s);
});

const realModel = join(SHARED_MODELS_DIR, 'resnet18-imagenet-layer3.onnx');
test('when the real layer3 model is quantised on photos, then its fingerprints of other photos stay within cosine 0.99 of fp32', { skip: !existsSync(realModel) || !existsSync(DEV_INDEX) }, async () => {
  const names = readdirSync(DEV_INDEX).sort();
  const calib = names.filter((_, i) => i % 2 === 0).slice(0, 6).map((n) => readFileSync(join(DEV_INDEX, n)));
  const probes = names.filter((_, i) => i % 2 === 1).slice(0, 4).map((n) => readFileSync(join(DEV_INDEX, n)));
  const { fp32, int8 } = await quantised(realModel, calib, 224);
  const [a, b] = [await fingerprints(fp32, probes), await fingerprints(int8, probes)];
  for (let i = 0; i < probes.length; i++) assert.ok(cosine(a[i]!, b[i]!) > 0.99, `image ${i}: cosine ${cosine(a[i]!, b[i]!)}`);
});
