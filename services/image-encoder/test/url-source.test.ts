import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { call } from '@doppel/service-kit/testing';
import { cosine, drawPng, startEncoder, type TestEncoder } from './helpers.js';

/*
 * The encoder's url source: image-source's fetcher (its rules are tested there), wired
 * with the encoder's config, and the downloaded bytes decoded like any other source.
 */
describe('image-encoder: url sources', () => {
  let origin: Server;
  let host: string;
  let png: Buffer;
  let open: TestEncoder;
  let guarded: TestEncoder;

  before(async () => {
    png = await drawPng(80, 60, 3);
    origin = createServer((req, res) => {
      if (req.url === '/img.png') { res.writeHead(200, { 'content-type': 'image/png' }); res.end(png); return; }
      if (req.url === '/hop') { res.writeHead(302, { location: '/img.png' }); res.end(); return; }
      if (req.url === '/text') { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('not an image'); return; }
      if (req.url === '/big') { res.writeHead(200); res.end(Buffer.alloc(300_000)); return; }
      res.writeHead(404);
      res.end();
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(origin.address() as AddressInfo).port}`;
    open = await startEncoder({ ALLOW_PRIVATE_URLS: 'true', MAX_IMAGE_BYTES: '200000' });
    guarded = await startEncoder({ ALLOW_PRIVATE_URLS: 'false' });
  });
  after(async () => {
    await open.close();
    await guarded.close();
    origin.closeAllConnections();
    await new Promise((r) => origin.close(r));
  });

  const encodeUrl = (e: TestEncoder, url: string) => call(e.base, 'POST', '/encode', { url });

  it('when a url serves an image, then it is fingerprinted like the same bytes in base64', async () => {
    const r = await encodeUrl(open, `http://${host}/img.png`);
    assert.equal(r.status, 200);
    const b = await call(open.base, 'POST', '/encode', { image_base64: png.toString('base64') });
    assert.ok(cosine(r.body.response.fingerprint, b.body.response.fingerprint) > 0.99999);
  });

  it('when a url is missing, over MAX_IMAGE_BYTES or not an image, then 404/413/415', async () => {
    assert.equal((await encodeUrl(open, `http://${host}/nothing.png`)).status, 404);
    assert.equal((await encodeUrl(open, `http://${host}/big`)).status, 413);
    assert.equal((await encodeUrl(open, `http://${host}/text`)).status, 415);
  });

  it('when ALLOW_PRIVATE_URLS is false, then a loopback url is 403, also after a redirect in a batch', async () => {
    const r = await encodeUrl(guarded, `http://${host}/img.png`);
    assert.deepEqual([r.status, r.body.error_code], [403, 'FORBIDDEN_PATH']);
    const viaBatch = await call(guarded.base, 'POST', '/encode/batch', { items: [{ url: `http://${host}/hop` }] });
    assert.equal(viaBatch.body.response.results[0].status, 403);
  });
});
