import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Validator } from '@seriousme/openapi-schema-validator';
import { startStack, type Stack } from '@doppel/cli';
import { createPipelineClient } from '@doppel/clients';
import { ensureTestModel } from '@doppel/image-encoder/testing';
import { call, freePorts } from '@doppel/service-kit/testing';
import { syntheticImage, transformed } from './helpers/images.fixture.js';

/*
 * The pipeline's public API and its four drop-in prefixes against the four real services
 * (processes started from source, a generated model, generated images). A loopback
 * server plays "the web" for url sources: this stack alone allows private URLs.
 */
const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL('..', import.meta.url));

const form = (fields: Record<string, string | Buffer>): FormData => {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v === 'string') f.append(k, v);
    else f.append(k, new Blob([new Uint8Array(v)], { type: 'image/jpeg' }), `${k}.jpg`);
  }
  return f;
};

/** A raw reply: the drop-in routes do not answer the Doppel envelope. */
async function raw(base: string, method: string, path: string, init: { body?: string | FormData | URLSearchParams; headers?: Record<string, string> } = {}) {
  const r = await fetch(base + path, { method, ...init });
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return { status: r.status, text, json: json as any, type: r.headers.get('content-type') ?? '' };
}
const postJson = (base: string, path: string, body: unknown) =>
  raw(base, 'POST', path, { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

describe('the public API and the drop-in routes, on the four real services', { timeout: 420_000 }, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'doppel-api-'));
  const root = join(tmp, 'images');
  const examples = join(tmp, 'examples');
  let stack: Stack;
  let base: string;
  let web: Server;
  let webUrl: string;
  const img = {} as Record<'cat' | 'dog' | 'unrelated' | 'catCrop' | 'catCopy' | 'catMirror' | 'dogRot', Buffer>;

  before(async () => {
    mkdirSync(join(root, 'photos'), { recursive: true });
    mkdirSync(examples, { recursive: true });
    img.cat = await syntheticImage(201);
    img.dog = await syntheticImage(202);
    img.unrelated = await syntheticImage(203);
    img.catCrop = await transformed(img.cat, 'crop');
    img.catCopy = await transformed(img.cat, 'recompress');
    img.catMirror = await transformed(img.cat, 'mirror');
    img.dogRot = await transformed(img.dog, 'rot90');
    writeFileSync(join(root, 'photos', 'cat.jpg'), img.cat);
    writeFileSync(join(root, 'photos', 'dog.jpg'), img.dog);
    writeFileSync(join(examples, 'cat.jpg'), img.catCopy);
    writeFileSync(join(examples, 'cat-crop.jpg'), img.catCrop);
    const served: Record<string, Buffer> = { '/cat.jpg': img.cat, '/cat-mirror.jpg': img.catMirror, '/dog-rot.jpg': img.dogRot };
    web = createServer((req, res) => {
      const body = served[req.url ?? ''];
      if (!body) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'image/jpeg' }).end(body);
    });
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', () => resolve()));
    webUrl = `http://127.0.0.1:${(web.address() as { port: number }).port}`;
    const [pipeline, encoder, search, matching] = await freePorts(4);
    stack = await startStack({
      repoRoot, imagesRoot: root, stateDir: join(tmp, 'state'), modelPath: ensureTestModel(),
      ports: { pipeline: pipeline!, encoder: encoder!, search: search!, matching: matching! },
      env: { pipeline: { ALLOW_PRIVATE_URLS: 'true' } },
      readyTimeoutMs: 180_000,
    });
    base = stack.urls.pipeline;
    const indexed = await call(base, 'POST', '/index', { relative_path: 'photos' });
    assert.equal(indexed.body.response.indexed, 2, JSON.stringify(indexed.body));
  });

  after(async () => {
    await stack?.stop();
    await new Promise<void>((resolve) => (web ? web.close(() => resolve()) : resolve()));
    rmSync(tmp, { recursive: true, force: true });
  });

  const blobOnDisk = (rel: string) => existsSync(join(root, rel));

  describe('the pipeline API', () => {
    it('when /ping is called, then it answers the success envelope', async () => {
      const r = await call(base, 'GET', '/ping');
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, { global_status: 1, error_message: '', response: { status: 'ok', service: 'pipeline' } });
    });

    it('when an image is uploaded with an id and metadata, then its record, blob and listing show them', async () => {
      const r = await call(base, 'POST', '/images', undefined, { raw: form({ image: img.catCopy, id: 'shop/cat 1', metadata: JSON.stringify({ sku: 'A1', tags: ['x'] }) }) });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.response.id, 'shop/cat 1');
      assert.equal(r.body.response.replaced, false);
      assert.equal(r.body.response.location.kind, 'blob');
      assert.ok(blobOnDisk(r.body.response.location.relative_path));
      const got = await call(base, 'GET', `/images/${encodeURIComponent('shop/cat 1')}`);
      assert.equal(got.status, 200, JSON.stringify(got.body));
      assert.deepEqual(got.body.response.metadata, { sku: 'A1', tags: ['x'] });
      assert.equal(got.body.response.dimension, stack.dimension);
      const list = await call(base, 'GET', '/images?offset=0&limit=100');
      const item = list.body.response.items.find((i: { id: string }) => i.id === 'shop/cat 1');
      assert.deepEqual(item, { id: 'shop/cat 1', metadata: { sku: 'A1', tags: ['x'] } });
      assert.ok(list.body.response.items.some((i: { id: string }) => i.id === 'photos/cat.jpg'));
    });

    it('when an id is replaced by other bytes, then the old blob is removed and the new one kept', async () => {
      const first = await call(base, 'POST', '/images', { image_base64: img.unrelated.toString('base64'), id: 'swap', metadata: { v: 1 } });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const oldBlob = first.body.response.location.relative_path as string;
      const second = await call(base, 'POST', '/images', { image_base64: img.dogRot.toString('base64'), id: 'swap', metadata: { v: 2 } });
      assert.equal(second.status, 200, JSON.stringify(second.body));
      assert.equal(second.body.response.replaced, true);
      assert.equal(blobOnDisk(oldBlob), false, 'the replaced blob is gone');
      assert.ok(blobOnDisk(second.body.response.location.relative_path));
      assert.deepEqual((await call(base, 'GET', '/images/swap')).body.response.metadata, { v: 2 });
    });

    it('when two ids share the same bytes, then the blob survives the first delete and goes with the last', async () => {
      const a = await call(base, 'POST', '/images', { url: `${webUrl}/dog-rot.jpg`, id: 'twin-a' });
      const b = await call(base, 'POST', '/images', { image_base64: img.dogRot.toString('base64'), id: 'twin-b' });
      assert.equal(a.status, 200, JSON.stringify(a.body));
      assert.equal(a.body.response.location.relative_path, b.body.response.location.relative_path);
      const path = a.body.response.location.relative_path as string;
      const delA = await call(base, 'DELETE', '/images/twin-a');
      assert.deepEqual(delA.body.response, { id: 'twin-a', deleted: true, blob_removed: false });
      assert.ok(blobOnDisk(path));
      // "swap" holds these bytes too: only the last of the three removes the blob.
      await call(base, 'DELETE', '/images/swap');
      const delB = await call(base, 'DELETE', '/images/twin-b');
      assert.deepEqual(delB.body.response, { id: 'twin-b', deleted: true, blob_removed: true });
      assert.equal(blobOnDisk(path), false);
      const gone = await call(base, 'GET', '/images/twin-b');
      assert.equal(gone.status, 404);
      assert.equal(gone.body.error_code, 'IMAGE_NOT_FOUND');
    });

    it('when a crop is uploaded to /search, then the original and the kept copy are found with their metadata', async () => {
      const r = await call(base, 'POST', '/search', undefined, { raw: form({ image: img.catCrop }) });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const ids = r.body.response.results.map((h: { id: string }) => h.id).sort();
      assert.deepEqual(ids, ['photos/cat.jpg', 'shop/cat 1']);
      const kept = r.body.response.results.find((h: { id: string }) => h.id === 'shop/cat 1');
      assert.deepEqual(kept.metadata, { sku: 'A1', tags: ['x'] });
      assert.ok(kept.inliers > 0 && kept.score >= 0.5 && kept.score <= 1);
      assert.equal(r.body.response.candidates, undefined);
    });

    it('when a mirrored copy is searched by url with candidates, then it is found, and without orientations it is verified from fewer candidates', async () => {
      const r = await call(base, 'POST', '/search', { url: `${webUrl}/cat-mirror.jpg`, include_candidates: true });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok(r.body.response.results.some((h: { id: string }) => h.id === 'photos/cat.jpg'));
      assert.ok(r.body.response.candidates.length > 0);
      const dup = await call(base, 'POST', '/duplicates', { url: `${webUrl}/cat-mirror.jpg` });
      assert.ok(dup.body.response.duplicated.some((d: { relative_path: string }) => d.relative_path === 'photos/cat.jpg'), 'the /duplicates alias answers the same search');
    });

    it('when two images are compared, then a copy is duplicated and an unrelated image is not', async () => {
      const same = await call(base, 'POST', '/compare', { image1: { image_base64: img.catCrop.toString('base64') }, image2: { relative_path: 'photos/cat.jpg' } });
      assert.equal(same.status, 200, JSON.stringify(same.body));
      assert.equal(same.body.response.duplicated, true);
      assert.ok(same.body.response.inliers > 0);
      const other = await call(base, 'POST', '/compare', undefined, { raw: form({ image1: img.unrelated, image2: img.cat }) });
      assert.equal(other.status, 200, JSON.stringify(other.body));
      assert.equal(other.body.response.duplicated, false);
    });

    it('when a multipart compare gives image1 both as a JSON value field and as a file, then 400, not 500', async () => {
      const f = form({ image2: img.cat });
      f.append('image1', '5');
      f.append('image1', new Blob([new Uint8Array(img.unrelated)], { type: 'image/jpeg' }), 'image1.jpg');
      const r = await call(base, 'POST', '/compare', undefined, { raw: f });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error_code, 'INVALID_REQUEST');
    });

    it('when an image id in the path is a broken percent-escape, then 400 in the envelope', async () => {
      for (const method of ['GET', 'DELETE']) {
        const r = await raw(base, method, '/images/%zz');
        assert.equal(r.status, 400, r.text);
        assert.equal(r.json.error_code, 'INVALID_REQUEST');
      }
    });

    it('when a fingerprint is asked, then /search/vector finds that image first and /stats agrees on the dimension', async () => {
      const fp = await call(base, 'POST', '/fingerprint', { relative_path: 'photos/dog.jpg' });
      assert.equal(fp.status, 200, JSON.stringify(fp.body));
      const stats = await call(base, 'GET', '/stats');
      assert.equal(stats.body.response.dimension, fp.body.response.dimension);
      assert.equal(stats.body.response.model, fp.body.response.model);
      assert.ok(stats.body.response.count >= 3);
      const near = await call(base, 'POST', '/search/vector', { vec_features: fp.body.response.fingerprint, nb_neighbors: 3 });
      assert.equal(near.body.response.results[0].id, 'photos/dog.jpg');
      assert.ok(near.body.response.results[0].score > 0.99);
    });

    it('when the folder is re-indexed with prune, then ids added through the API stay', async () => {
      const r = await call(base, 'POST', '/index', { relative_path: '.', prune: true });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.response.removed, 0);
      assert.equal((await call(base, 'GET', `/images/${encodeURIComponent('shop/cat 1')}`)).status, 200);
    });

    for (const [what, body, status, code] of [
      ['metadata over 64 KB', { relative_path: 'photos/cat.jpg', id: 'big', metadata: { x: 'y'.repeat(70_000) } }, 413, 'PAYLOAD_TOO_LARGE'],
      ['an id over 1,024 characters', { relative_path: 'photos/cat.jpg', id: 'i'.repeat(1025) }, 400, 'INVALID_REQUEST'],
      ['invalid base64', { image_base64: 'not*base64!', id: 'b' }, 400, 'INVALID_REQUEST'],
      ['bytes without an id', { image_base64: 'iVBORw0KGgo=' }, 400, 'INVALID_REQUEST'],
      ['two sources', { relative_path: 'photos/cat.jpg', url: 'http://x/y' }, 400, 'INVALID_REQUEST'],
      ['a path out of the root', { relative_path: '../etc/passwd' }, 403, 'FORBIDDEN_PATH'],
      ['a missing file', { relative_path: 'photos/none.jpg' }, 404, 'IMAGE_NOT_FOUND'],
    ] as const) {
      it(`when POST /images gets ${what}, then it answers ${status} ${code} and stores nothing`, async () => {
        const before = (await call(base, 'GET', '/stats')).body.response.count;
        const r = await call(base, 'POST', '/images', body);
        assert.equal(r.status, status, JSON.stringify(r.body));
        assert.equal(r.body.global_status, 0);
        assert.equal(r.body.error_code, code);
        assert.equal((await call(base, 'GET', '/stats')).body.response.count, before);
      });
    }

    it('when the typed client drives the API, then its answers validate and round-trip', async () => {
      const client = createPipelineClient({ baseUrl: base, timeoutMs: 60_000 });
      assert.deepEqual(await client.ping(), { status: 'ok', service: 'pipeline' });
      const added = await client.addImage({ url: `${webUrl}/cat.jpg`, id: 'client/a b?c', metadata: { n: 1 } });
      assert.equal(added.location.kind, 'blob');
      assert.deepEqual((await client.image('client/a b?c')).metadata, { n: 1 });
      assert.ok((await client.images({ limit: 1000 })).items.some((i) => i.id === 'client/a b?c'));
      const hits = await client.search({ image_base64: img.catCrop.toString('base64') });
      assert.ok(hits.results.some((h) => h.id === 'client/a b?c'));
      const cmp = await client.compare({ image1: { relative_path: 'photos/cat.jpg' }, image2: { url: `${webUrl}/cat.jpg` } });
      assert.equal(cmp.duplicated, true);
      assert.equal((await client.stats()).dimension, stack.dimension);
      assert.equal((await client.deleteImage('client/a b?c')).deleted, true);
    });

    it('when an unknown id is deleted, then it is a 404 envelope', async () => {
      const r = await call(base, 'DELETE', '/images/never-added');
      assert.equal(r.status, 404);
      assert.equal(r.body.error_code, 'IMAGE_NOT_FOUND');
    });
  });

  describe('/compat/match', () => {
    const M = '/compat/match';
    it('when its example requests are replayed, then each answers its envelope with 0-100 scores', async () => {
      const add = await raw(base, 'POST', `${M}/add`, { body: form({ filepath: 'm/cat.jpg', image: img.catCopy, metadata: '{"source": "upload"}' }) });
      assert.equal(add.status, 200, add.text);
      assert.deepEqual(add.json, { status: 'ok', error: [], method: 'add', result: [] });
      const byUrl = await raw(base, 'POST', `${M}/add`, { body: new URLSearchParams({ filepath: 'm/mirror.jpg', url: `${webUrl}/cat-mirror.jpg` }) });
      assert.deepEqual(byUrl.json, { status: 'ok', error: [], method: 'add', result: [] });
      const search = await raw(base, 'POST', `${M}/search`, { body: form({ image: img.catCrop }) });
      assert.equal(search.json.status, 'ok');
      assert.equal(search.json.method, 'search');
      const hit = search.json.result.find((h: { filepath: string }) => h.filepath === 'm/cat.jpg');
      assert.deepEqual(hit.metadata, { source: 'upload' });
      assert.ok(hit.score > 50 && hit.score <= 100, `score ${hit.score} on the 0-100 scale`);
      for (const h of search.json.result) assert.deepEqual(Object.keys(h).sort(), ['filepath', 'metadata', 'score']);
      // all_orientations defaults to true: the mirror is found; turned off, the mirror query may miss it.
      const mirrored = await raw(base, 'POST', `${M}/search`, { body: new URLSearchParams({ url: `${webUrl}/cat-mirror.jpg` }) });
      assert.ok(mirrored.json.result.some((h: { filepath: string }) => h.filepath === 'photos/cat.jpg'));
      const cmp = await raw(base, 'POST', `${M}/compare`, { body: form({ image1: img.catCrop, image2: img.cat }) });
      assert.equal(cmp.json.method, 'compare');
      assert.ok(cmp.json.result[0].score > 50 && cmp.json.result[0].score <= 100);
      const count = await raw(base, 'GET', `${M}/count`);
      assert.equal(count.json.result[0], (await call(base, 'GET', '/stats')).body.response.count);
      const list = await raw(base, 'GET', `${M}/list?offset=0&limit=2`);
      assert.equal(list.json.result.length, 2);
      assert.ok(list.json.result.every((p: unknown) => typeof p === 'string'));
      const del = await raw(base, 'DELETE', `${M}/delete`, { body: new URLSearchParams({ filepath: 'm/mirror.jpg' }) });
      assert.deepEqual(del.json, { status: 'ok', error: [], method: 'delete', result: [] });
      assert.deepEqual((await raw(base, 'GET', `${M}/ping`)).json, { status: 'ok', error: [], method: 'ping', result: [] });
    });

    for (const [what, method, path, body, status] of [
      ['an add without filepath', 'POST', '/add', () => new URLSearchParams({ url: 'http://x/y.jpg' }), 400],
      ['an add without an image', 'POST', '/add', () => new URLSearchParams({ filepath: 'x' }), 400],
      ['metadata that is not JSON', 'POST', '/add', () => form({ filepath: 'x', image: img.cat, metadata: '{oops' }), 400],
      ['an upload that is not an image', 'POST', '/search', () => form({ image: Buffer.from('not an image at all') }), 415],
      ['a JSON body', 'POST', '/search', () => JSON.stringify({ url: 'http://x' }), 415],
      ['an unknown route', 'GET', '/nope', () => undefined, 404],
    ] as const) {
      it(`when it gets ${what}, then it answers status fail with a ${status}`, async () => {
        const b = body();
        const r = await raw(base, method, `${M}${path}`, {
          ...(b !== undefined ? { body: b } : {}),
          ...(typeof b === 'string' ? { headers: { 'content-type': 'application/json' } } : {}),
        });
        assert.equal(r.status, status, r.text);
        assert.equal(r.json.status, 'fail');
        assert.deepEqual(r.json.result, []);
        assert.equal(r.json.error.length, 1);
        assert.equal(typeof r.json.method, 'string');
      });
    }
  });

  describe('/compat/image-matching', () => {
    const P = '/compat/image-matching/';
    it('when its example requests are replayed, then features are array strings and matches carry paths and scores', async () => {
      const f = await postJson(base, P, { type: 'get_feature_filename', image: 'photos/cat.jpg' });
      assert.equal(f.status, 200, f.text);
      assert.equal(typeof f.json.result.feature, 'string');
      const vec = JSON.parse(f.json.result.feature) as number[];
      assert.equal(vec.length, stack.dimension);
      assert.match(f.json.result.feature, /^\[-?[0-9.e-]+, /);
      const b64 = await postJson(base, P, { type: 'get_feature_base64', image: img.cat.toString('base64') });
      assert.deepEqual(JSON.parse(b64.json.result.feature), vec);
      const link = await postJson(base, '/compat/image-matching/image_service/v1.0', { type: 'get_feature_link', image: `${webUrl}/cat.jpg` });
      assert.deepEqual(JSON.parse(link.json.result.feature), vec);
      for (const [type, image] of [['match_filename', 'photos/cat.jpg'], ['match_base64', img.catCrop.toString('base64')], ['match_link', `${webUrl}/cat-mirror.jpg`]] as const) {
        const m = await postJson(base, P, { type, image, accuracy: 0.5 });
        assert.equal(m.status, 200, m.text);
        assert.ok(Array.isArray(m.json.result.match), type);
        assert.ok(m.json.result.match.some((h: { filename: string }) => h.filename === 'photos/cat.jpg' || h.filename === 'm/cat.jpg'), `${type}: ${m.text}`);
        for (const h of m.json.result.match) assert.ok(h.score >= 0.5 && h.score <= 1);
      }
      // The feature string as the original's clients send it: the whole get_feature answer.
      const byFeature = await postJson(base, P, { type: 'match_feature', image: `${JSON.stringify(f.json)}\n`, accuracy: '0.9' });
      assert.equal(byFeature.status, 200, byFeature.text);
      assert.equal(byFeature.json.result.match[0].filename, 'photos/cat.jpg');
      const strict = await postJson(base, P, { type: 'match_filename', image: 'photos/cat.jpg', accuracy: 1 });
      assert.deepEqual(strict.json.result.match, [], 'nothing is verified at accuracy 1');
    });

    for (const [what, body, status] of [
      ['an unknown type', { type: 'match_everything', image: 'x' }, 400],
      ['a broken feature string', { type: 'match_feature', image: '[1, 2,' }, 400],
      ['a missing file', { type: 'match_filename', image: 'photos/none.jpg' }, 404],
      ['an accuracy out of range', { type: 'match_filename', image: 'photos/cat.jpg', accuracy: 7 }, 400],
    ] as const) {
      it(`when it gets ${what}, then it answers {result: {}, error} with a ${status}`, async () => {
        const r = await postJson(base, P, body);
        assert.equal(r.status, status, r.text);
        assert.deepEqual(r.json.result, {});
        assert.equal(typeof r.json.error, 'string');
      });
    }
  });

  describe('/compat/image-search', () => {
    const S = '/compat/image-search';
    it('when a folder is added by absolute path and searched, then results are absolute paths by increasing distance', async () => {
      mkdirSync(join(root, 'more'), { recursive: true });
      writeFileSync(join(root, 'more', 'cat-mirror.jpg'), img.catMirror);
      writeFileSync(join(root, 'more', 'dog-rot.jpg'), img.dogRot);
      const add = await raw(base, 'GET', `${S}/add?image=${encodeURIComponent(join(root, 'more'))}`);
      assert.equal(add.status, 200, add.text);
      assert.deepEqual(add.json, { message: 'Extracted features from images', added: 2, skipped: 0 });
      const again = await raw(base, 'GET', `${S}/add?image=more`);
      assert.deepEqual(again.json, { message: 'Extracted features from images', added: 0, skipped: 2 });
      const s = await raw(base, 'GET', `${S}/search?image=photos/cat.jpg&limit=3&compare=basic&compare=sift`);
      assert.equal(s.status, 200, s.text);
      assert.equal(s.json.results.length, 3);
      assert.deepEqual(s.json.results[0], { image: join(root, 'photos', 'cat.jpg'), distance: s.json.results[0].distance });
      assert.ok(s.json.results[0].distance < 0.01);
      const d = s.json.results.map((r: { distance: number }) => r.distance);
      assert.deepEqual(d, [...d].sort((x: number, y: number) => x - y));
      const stats = await raw(base, 'GET', `${S}/stats`);
      assert.equal(stats.json.images, (await call(base, 'GET', '/stats')).body.response.count);
    });

    for (const [what, path, status] of [
      ['no image parameter', '/search', 400],
      ['a path outside the root', `/search?image=${encodeURIComponent('/etc/passwd')}`, 403],
      ['a missing folder', '/add?image=nowhere', 404],
      ['a limit that is not a number', '/search?image=photos/cat.jpg&limit=ten', 400],
    ] as const) {
      it(`when it gets ${what}, then it answers {error} with a ${status}`, async () => {
        const r = await raw(base, 'GET', `${S}${path}`);
        assert.equal(r.status, status, r.text);
        assert.deepEqual(Object.keys(r.json), ['error']);
      });
    }
  });

  describe('/compat/imagenet-feature', () => {
    const I = '/compat/imagenet-feature';
    it('when its example requests are replayed, then items are created then updated and features are float arrays', async () => {
      const first = await postJson(base, `${I}/saveImagenetFeature`, { item_id: '4816029088', img_url: `${webUrl}/cat-mirror.jpg` });
      assert.equal(first.status, 200, first.text);
      assert.equal(first.text, 'created');
      const all = await postJson(base, `${I}/saveAllImageInfo`, { item_id: '4816029088', item_name: 'Cat poster', category_id: '50000805', img_url: `${webUrl}/cat.jpg` });
      assert.equal(all.text, 'updated');
      const rec = await call(base, 'GET', '/images/4816029088');
      assert.equal(rec.body.response.metadata.item_name, 'Cat poster');
      assert.equal(rec.body.response.metadata.category_id, '50000805');
      const kept = await postJson(base, `${I}/saveImagenetFeature`, { item_id: 4816029088, img_url: `${webUrl}/cat.jpg` });
      assert.equal(kept.text, 'updated');
      assert.equal((await call(base, 'GET', '/images/4816029088')).body.response.metadata.item_name, 'Cat poster', 'saveImagenetFeature keeps what the item carries');
      const f = await raw(base, 'GET', `${I}/getImagenetFeature?img_url=${encodeURIComponent(`${webUrl}/cat.jpg`)}`);
      assert.equal(f.json.imagenet_feature.length, stack.dimension);
      assert.ok(f.json.imagenet_feature.every((x: unknown) => typeof x === 'number'));
    });

    for (const [what, method, path, body, status] of [
      ['no img_url', 'POST', '/saveImagenetFeature', { item_id: '1' }, 400],
      ['an unreachable url', 'POST', '/saveAllImageInfo', { item_id: '1', item_name: 'n', category_id: 'c', img_url: 'http://127.0.0.1:1/x.jpg' }, 502],
      ['a url nothing answers', 'GET', `/getImagenetFeature?img_url=${encodeURIComponent('http://127.0.0.1:1/x.jpg')}`, undefined, 502],
    ] as const) {
      it(`when it gets ${what}, then it answers the error envelope with a ${status >= 500 ? 'gateway status' : status}`, async () => {
        const r = method === 'POST' ? await postJson(base, `${I}${path}`, body) : await raw(base, 'GET', `${I}${path}`);
        if (status < 500) assert.equal(r.status, status, r.text);
        else assert.ok(r.status >= 400, r.text);
        assert.equal(r.json.global_status, 0);
        assert.equal(typeof r.json.error_code, 'string');
      });
    }
  });

  it('when /openapi.json is read, then it validates as OpenAPI 3.1 and lists every new route', async () => {
    const doc = await raw(base, 'GET', '/openapi.json');
    const res = await new Validator().validate(doc.json);
    assert.equal(res.valid, true, JSON.stringify(res.errors)?.slice(0, 2000));
    const paths = Object.keys(doc.json.paths);
    for (const p of [
      '/ping', '/images', '/images/{id}', '/stats', '/search', '/search/vector', '/compare', '/fingerprint', '/duplicates',
      '/compat/match/add', '/compat/match/delete', '/compat/match/search', '/compat/match/compare', '/compat/match/count', '/compat/match/list', '/compat/match/ping',
      '/compat/image-matching', '/compat/image-search/add', '/compat/image-search/search', '/compat/image-search/stats',
      '/compat/imagenet-feature/saveImagenetFeature', '/compat/imagenet-feature/saveAllImageInfo', '/compat/imagenet-feature/getImagenetFeature',
    ]) assert.ok(paths.includes(p), `${p} missing from /openapi.json`);
    assert.deepEqual(Object.keys(doc.json.paths['/images/{id}']).sort(), ['delete', 'get']);
  });

  it('when the README curl examples are run, then every one answers 2xx (and the Doppel ones the success envelope)', async () => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const part = readme.split('<!-- api-examples:start -->')[1]!.split('<!-- api-examples:end -->')[0]!;
    const commands = [...part.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1]!.split('\n').filter((l) => l.startsWith('curl ')));
    assert.ok(commands.length >= 30, `${commands.length} examples`);
    for (const c of commands) {
      const cmd = `${c.replaceAll('http://localhost:8000', base).replaceAll('https://example.com', webUrl)} -sS -w '\\n%{http_code}'`;
      // Asynchronously: the loopback "web" server lives in this process and must answer meanwhile.
      const { stdout: out } = await run('bash', ['-c', cmd], { cwd: examples, encoding: 'utf8' });
      const lines = out.trimEnd().split('\n');
      const status = Number(lines.pop());
      const body = lines.join('\n');
      assert.ok(status >= 200 && status < 300, `${c}\n-> ${status} ${body.slice(0, 300)}`);
      if (!c.includes('/compat/')) assert.equal(JSON.parse(body).global_status, 1, c);
    }
  });
});
