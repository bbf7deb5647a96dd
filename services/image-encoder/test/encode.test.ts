import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { ORIENTATION_NAMES } from '@doppel/schemas';
import { call } from '@doppel/service-kit/testing';
import { cosine, drawJpeg, drawPng, norm, pattern, startEncoder, tempDir, type TestEncoder } from './helpers.js';

describe('image-encoder: encoding images', () => {
  let enc: TestEncoder;
  let root: string;
  let png: Buffer;
  let jpeg: Buffer;
  const outside = tempDir('doppel-outside-');

  before(async () => {
    root = tempDir();
    png = await drawPng(96, 64, 1);
    jpeg = await drawJpeg(120, 80, 2);
    mkdirSync(join(root, 'sub'));
    writeFileSync(join(root, 'a.png'), png);
    writeFileSync(join(root, 'sub', 'b.jpg'), jpeg);
    writeFileSync(join(root, 'other.png'), await drawPng(96, 64, 5));
    writeFileSync(join(outside, 'secret.png'), png);
    symlinkSync(join(outside, 'secret.png'), join(root, 'escape.png'));
    symlinkSync(join(root, 'a.png'), join(root, 'inner-link.png'));
    // Big enough to pass MAX_IMAGE_BYTES (300 kB): random-looking pixels do not compress.
    const noisy = Buffer.alloc(400 * 400 * 3);
    for (let i = 0, s = 7; i < noisy.length; i++) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; noisy[i] = s >>> 24; }
    writeFileSync(join(root, 'huge.png'), await sharp(noisy, { raw: { width: 400, height: 400, channels: 3 } }).png().toBuffer());
    // Few bytes, many pixels: a decompression bomb for MAX_PIXELS = 1,000,000.
    writeFileSync(join(root, 'bomb.png'), await sharp({ create: { width: 2000, height: 2000, channels: 3, background: '#808080' } }).png().toBuffer());
    writeFileSync(join(root, 'truncated.jpg'), jpeg.subarray(0, Math.floor(jpeg.length / 2)));
    writeFileSync(join(root, 'notes.txt'), 'this is not an image at all, just text\n'.repeat(10));
    writeFileSync(join(root, 'drawing.svg'), '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="red"/></svg>');
    enc = await startEncoder({ IMAGES_ROOT: root, MAX_IMAGE_BYTES: '300000', MAX_PIXELS: '1000000' });
  });
  after(() => enc.close());

  const encode = (body: unknown) => call(enc.base, 'POST', '/encode', body);

  it('when a relative_path is encoded, then a unit-norm fingerprint of the model dimension comes back', async () => {
    const r = await encode({ relative_path: 'a.png', request_id: 42 });
    assert.equal(r.status, 200);
    const b = r.body.response;
    assert.equal(b.request_id, 42);
    assert.equal(b.dimension, 16);
    assert.equal(b.fingerprint.length, 16);
    assert.match(b.model, /\.onnx$/);
    assert.ok(Math.abs(norm(b.fingerprint) - 1) < 1e-5);
    assert.equal(b.orientations, undefined);
  });

  it('when the same image comes as path, base64, upload or through a symlink inside the root, then the fingerprints agree', async () => {
    const byPath = (await encode({ relative_path: 'a.png' })).body.response.fingerprint;
    const byB64 = await encode({ image_base64: png.toString('base64') });
    assert.equal(byB64.status, 200);
    const form = new FormData();
    form.append('image', new Blob([png], { type: 'image/png' }), 'a.png');
    form.append('request_id', '9');
    const up = await call(enc.base, 'POST', '/encode', undefined, { raw: form });
    assert.equal(up.status, 200);
    assert.equal(up.body.response.request_id, 9);
    const link = await encode({ relative_path: 'inner-link.png' });
    assert.equal(link.status, 200);
    for (const fp of [byB64.body.response.fingerprint, up.body.response.fingerprint, link.body.response.fingerprint]) {
      assert.ok(cosine(byPath, fp) > 0.99999);
    }
    const other = (await encode({ relative_path: 'other.png' })).body.response.fingerprint;
    assert.ok(cosine(byPath, other) < 0.9999, 'different pictures give different fingerprints');
  });

  it('when orientations=all, then 8 named fingerprints come back and each matches the image turned that way', async () => {
    const r = await encode({ relative_path: 'sub/b.jpg', orientations: 'all' });
    assert.equal(r.status, 200);
    const o = r.body.response.orientations as Array<{ name: string; fingerprint: number[] }>;
    assert.deepEqual(o.map((x) => x.name), [...ORIENTATION_NAMES]);
    assert.deepEqual(o[0]!.fingerprint, r.body.response.fingerprint);
    const turned = async (angle: number, flop: boolean) => {
      let img = sharp(jpeg);
      if (flop) img = img.flop();
      const buf = await sharp(await img.toBuffer()).rotate(angle).png().toBuffer();
      return (await encode({ image_base64: buf.toString('base64') })).body.response.fingerprint as number[];
    };
    const expect: Array<[string, number, boolean]> = [
      ['rot90', 90, false], ['rot180', 180, false], ['rot270', 270, false],
      ['flip', 0, true], ['flip_rot90', 90, true], ['flip_rot180', 180, true], ['flip_rot270', 270, true],
    ];
    for (const [name, angle, flop] of expect) {
      const fp = o.find((x) => x.name === name)!.fingerprint;
      const c = cosine(fp, await turned(angle, flop));
      assert.ok(c > 0.99, `${name}: cosine ${c}`);
      assert.ok(cosine(fp, o[0]!.fingerprint) < c, `${name} differs from identity`);
    }
  });

  it('when orientations=turns, then the 4 quarter turns come back, the same fingerprints as the first 4 of all', async () => {
    const turns = await encode({ relative_path: 'sub/b.jpg', orientations: 'turns' });
    const all = await encode({ relative_path: 'sub/b.jpg', orientations: 'all' });
    assert.equal(turns.status, 200);
    const t = turns.body.response.orientations as Array<{ name: string; fingerprint: number[] }>;
    const a = all.body.response.orientations as Array<{ name: string; fingerprint: number[] }>;
    assert.deepEqual(t.map((x) => x.name), ['identity', 'rot90', 'rot180', 'rot270']);
    assert.ok(cosine(turns.body.response.fingerprint, all.body.response.fingerprint) > 0.99999);
    for (let k = 0; k < 4; k++) assert.ok(cosine(t[k]!.fingerprint, a[k]!.fingerprint) > 0.99999, t[k]!.name);
  });

  it('when a JPEG carries an EXIF orientation, then it is encoded upright', async () => {
    const raw = sharp(pattern(120, 80, 2), { raw: { width: 120, height: 80, channels: 3 } });
    const tagged = await raw.clone().jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    const upright = await raw.clone().rotate(90).jpeg({ quality: 95 }).toBuffer();
    const a = (await encode({ image_base64: tagged.toString('base64') })).body.response.fingerprint;
    const b = (await encode({ image_base64: upright.toString('base64') })).body.response.fingerprint;
    assert.ok(cosine(a, b) > 0.995, `cosine ${cosine(a, b)}`);
  });

  it('when images are greyscale, transparent, 16-bit, webp or animated, then they are encoded (first frame)', async () => {
    const raw = { raw: { width: 64, height: 48, channels: 3 as const } };
    const frameA = pattern(64, 48, 1);
    const frameB = pattern(64, 48, 9);
    const anim = await sharp(Buffer.concat([frameA, frameB]), { raw: { width: 64, height: 96, channels: 3, pageHeight: 48 } }).gif().toBuffer();
    const images = [
      await sharp(frameA, raw).greyscale().png().toBuffer(),
      await sharp(frameA, raw).ensureAlpha(0.5).png().toBuffer(),
      await sharp(frameA, raw).toColourspace('rgb16').png().toBuffer(),
      await sharp(frameA, raw).webp().toBuffer(),
      anim,
      await sharp(frameA, raw).gif().toBuffer(),
    ];
    const r = await call(enc.base, 'POST', '/encode/batch', { items: images.map((b) => ({ image_base64: b.toString('base64') })) });
    const res = r.body.response.results;
    for (const x of res) assert.equal(x.dimension, 16, JSON.stringify(x).slice(0, 200));
    assert.ok(cosine(res[4].fingerprint, res[5].fingerprint) > 0.9999, 'an animation is encoded from its first frame');
  });

  it('when the request has no source or two sources, then 400 names the fields', async () => {
    const none = await encode({ request_id: 1 });
    assert.equal(none.status, 400);
    assert.match(none.body.error_message, /exactly one of relative_path, image_base64, url/);
    const two = await encode({ relative_path: 'a.png', url: 'http://example.com/a.png' });
    assert.equal(two.status, 400);
    assert.equal(two.body.error_code, 'INVALID_REQUEST');
    assert.equal((await encode({ relative_path: 'a.png', orientations: 'some' })).status, 400);
    assert.equal((await encode({ relative_path: 'a.png', extra: 1 })).status, 400);
  });

  it('when relative_path climbs out, is absolute, has a NUL or follows a symlink out of the root, then 403', async () => {
    for (const p of ['../a.png', 'sub/../../etc/passwd', '/etc/passwd', 'a\u0000.png']) {
      const r = await encode({ relative_path: p });
      assert.equal(r.status, 403, p);
      assert.equal(r.body.error_code, 'FORBIDDEN_PATH');
    }
    const esc = await encode({ relative_path: 'escape.png' });
    assert.equal(esc.status, 403);
    assert.equal(esc.body.error_code, 'FORBIDDEN_PATH');
  });

  it('when the image does not exist or is a directory, then 404', async () => {
    for (const p of ['missing.png', 'sub/missing.jpg', 'sub']) {
      const r = await encode({ relative_path: p });
      assert.equal(r.status, 404, p);
      assert.equal(r.body.error_code, 'IMAGE_NOT_FOUND');
    }
  });

  it('when the image is too large in bytes (file, base64, upload) or pixels, then 413', async () => {
    assert.equal((await encode({ relative_path: 'huge.png' })).status, 413);
    assert.equal((await encode({ image_base64: 'A'.repeat(500_000) })).status, 413);
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(400_000)]), 'big.png');
    const up = await call(enc.base, 'POST', '/encode', undefined, { raw: form });
    assert.equal(up.status, 413);
    const bomb = await encode({ relative_path: 'bomb.png' });
    assert.equal(bomb.status, 413);
    assert.match(bomb.body.error_message, /pixels/);
  });

  it('when the data is not an image, is SVG, or the body is not JSON, then 415', async () => {
    for (const p of ['notes.txt', 'drawing.svg']) {
      const r = await encode({ relative_path: p });
      assert.equal(r.status, 415, p);
      assert.equal(r.body.error_code, 'UNSUPPORTED_MEDIA_TYPE');
    }
    assert.equal((await encode({ image_base64: Buffer.from('hello world, not an image').toString('base64') })).status, 415);
    const text = await call(enc.base, 'POST', '/encode', undefined, { headers: { 'content-type': 'text/plain' }, raw: 'a.png' });
    assert.equal(text.status, 415);
  });

  it('when the image is truncated or base64 is malformed, then 422/400 and the service keeps serving', async () => {
    const t = await encode({ relative_path: 'truncated.jpg' });
    assert.equal(t.status, 422);
    assert.equal(t.body.error_code, 'UNDECODABLE_IMAGE');
    assert.equal((await encode({ image_base64: '%%%not-base64%%%' })).status, 400);
    assert.equal((await call(enc.base, 'POST', '/encode', undefined, { headers: { 'content-type': 'application/json' }, raw: '{"relative_path":' })).status, 400);
    assert.equal((await encode({ relative_path: 'a.png' })).status, 200);
  });

  it('when a multipart request has no image field or a wrong field, then 400', async () => {
    const noFile = new FormData();
    noFile.append('request_id', '3');
    assert.equal((await call(enc.base, 'POST', '/encode', undefined, { raw: noFile })).status, 400);
    const wrong = new FormData();
    wrong.append('picture', new Blob([png]), 'a.png');
    assert.equal((await call(enc.base, 'POST', '/encode', undefined, { raw: wrong })).status, 400);
    const badId = new FormData();
    badId.append('image', new Blob([png]), 'a.png');
    badId.append('request_id', 'abc');
    assert.equal((await call(enc.base, 'POST', '/encode', undefined, { raw: badId })).status, 400);
  });

  it('when a batch mixes good and bad items, then each gets its result or its own error, in order', async () => {
    const r = await call(enc.base, 'POST', '/encode/batch', {
      items: [
        { request_id: 10, relative_path: 'a.png' },
        { request_id: 11, relative_path: 'missing.png' },
        { request_id: 12, relative_path: 'truncated.jpg' },
        { request_id: 13, image_base64: png.toString('base64'), orientations: 'all' },
        { request_id: 14, relative_path: '../x.png' },
        { relative_path: 'drawing.svg' },
      ],
    });
    assert.equal(r.status, 200);
    const res = r.body.response.results;
    assert.equal(res.length, 6);
    assert.deepEqual(res.map((x: { request_id: number }) => x.request_id), [10, 11, 12, 13, 14, 5]);
    assert.equal(res[0].dimension, 16);
    assert.deepEqual([res[1].status, res[1].error_code], [404, 'IMAGE_NOT_FOUND']);
    assert.deepEqual([res[2].status, res[2].error_code], [422, 'UNDECODABLE_IMAGE']);
    assert.equal(res[3].orientations.length, 8);
    assert.ok(cosine(res[0].fingerprint, res[3].fingerprint) > 0.99999);
    assert.deepEqual([res[4].status, res[4].error_code], [403, 'FORBIDDEN_PATH']);
    assert.deepEqual([res[5].status, res[5].error_code], [415, 'UNSUPPORTED_MEDIA_TYPE']);
  });

  it('when a batch is empty, too long or has an item with two sources, then 400', async () => {
    assert.equal((await call(enc.base, 'POST', '/encode/batch', { items: [] })).status, 400);
    const many = Array.from({ length: 65 }, () => ({ relative_path: 'a.png' }));
    assert.equal((await call(enc.base, 'POST', '/encode/batch', { items: many })).status, 400);
    const two = await call(enc.base, 'POST', '/encode/batch', { items: [{ relative_path: 'a.png', image_base64: 'AAAA' }] });
    assert.equal(two.status, 400);
    assert.match(two.body.error_message, /items\[0\]/);
  });

  it('when the service is up, then readyz, metrics and openapi describe it', async () => {
    const ready = await call(enc.base, 'GET', '/readyz');
    assert.equal(ready.status, 200);
    assert.equal(ready.body.response.checks.model.ok, true);
    const metrics = await (await fetch(`${enc.base}/metrics`)).text();
    assert.match(metrics, /encoder_encode_duration_seconds_count\{route="\/encode",orientations="none"\} \d+/);
    assert.match(metrics, /encoder_inference_batch_size_count \d+/);
    assert.match(metrics, /encoder_queue_depth 0/);
    assert.match(metrics, /encoder_errors_total\{code="IMAGE_NOT_FOUND"\} \d+/);
    const doc = (await (await fetch(`${enc.base}/openapi.json`)).json()) as { paths: Record<string, Record<string, { requestBody?: { content: Record<string, unknown> } }>> };
    assert.ok(doc.paths['/encode']?.post?.requestBody?.content['multipart/form-data']);
    assert.ok(doc.paths['/encode/batch']?.post);
  });
});
