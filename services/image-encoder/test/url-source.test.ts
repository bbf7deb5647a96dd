import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { call } from '@doppel/service-kit/testing';
import { isBlockedAddress } from '@doppel/service-kit';
import { cosine, drawPng, startEncoder, type TestEncoder } from './helpers.js';

describe('image-encoder: url sources', () => {
  let origin: Server;
  let host: string;
  let png: Buffer;
  let open: TestEncoder;
  let guarded: TestEncoder;
  const hanging: Array<() => void> = [];

  before(async () => {
    png = await drawPng(80, 60, 3);
    origin = createServer((req, res) => {
      const u = req.url ?? '/';
      if (u === '/img.png') { res.writeHead(200, { 'content-type': 'image/png' }); res.end(png); return; }
      if (u.startsWith('/hop/')) {
        const n = Number(u.slice(5));
        res.writeHead(302, { location: n > 1 ? `/hop/${n - 1}` : '/img.png' });
        res.end();
        return;
      }
      if (u === '/big') { res.writeHead(200, { 'content-type': 'image/png' }); res.end(Buffer.alloc(300_000)); return; }
      if (u === '/big-chunked') {
        res.writeHead(200, { 'content-type': 'image/png' });
        for (let i = 0; i < 30; i++) res.write(Buffer.alloc(10_000));
        res.end();
        return;
      }
      if (u === '/hang') { hanging.push(() => res.end()); return; }
      if (u === '/ftp') { res.writeHead(302, { location: 'ftp://example.com/a.png' }); res.end(); return; }
      if (u === '/text') { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('not an image'); return; }
      if (u === '/error') { res.writeHead(500); res.end(); return; }
      res.writeHead(404);
      res.end();
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(origin.address() as AddressInfo).port}`;
    // Long enough that no real answer of the local origin is cut on a slow machine; /hang waits it out.
    open = await startEncoder({ ALLOW_PRIVATE_URLS: 'true', MAX_IMAGE_BYTES: '200000', URL_TIMEOUT_MS: '3000' });
    guarded = await startEncoder({ ALLOW_PRIVATE_URLS: 'false' });
  });
  after(async () => {
    for (const end of hanging) end();
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

  it('when a url redirects up to 3 times, then it is followed; a 4th redirect is refused', async () => {
    assert.equal((await encodeUrl(open, `http://${host}/hop/3`)).status, 200);
    const r = await encodeUrl(open, `http://${host}/hop/4`);
    assert.equal(r.status, 502);
    assert.match(r.body.error_message, /redirected more than 3 times/);
  });

  it('when a url is not http(s), redirects to another scheme or is malformed, then 400', async () => {
    for (const u of ['ftp://example.com/a.png', 'file:///etc/passwd', 'not a url', `http://${host}/ftp`]) {
      const r = await encodeUrl(open, u);
      assert.equal(r.status, 400, u);
      assert.equal(r.body.error_code, 'INVALID_REQUEST');
    }
  });

  it('when a url is missing, fails, is too big, is not an image or hangs, then 404/502/413/415/504', async () => {
    assert.equal((await encodeUrl(open, `http://${host}/nothing.png`)).status, 404);
    assert.equal((await encodeUrl(open, `http://${host}/error`)).status, 502);
    assert.equal((await encodeUrl(open, `http://${host}/big`)).status, 413);
    assert.equal((await encodeUrl(open, `http://${host}/big-chunked`)).status, 413);
    assert.equal((await encodeUrl(open, `http://${host}/text`)).status, 415);
    const hang = await encodeUrl(open, `http://${host}/hang`);
    assert.equal(hang.status, 504);
    assert.equal(hang.body.error_code, 'DOWNSTREAM_TIMEOUT');
    assert.equal((await encodeUrl(open, 'http://127.0.0.1:1/a.png')).status, 502);
  });

  it('when private urls are not allowed, then loopback, private and link-local targets are refused at connect time', async () => {
    const port = (origin.address() as AddressInfo).port;
    for (const u of [`http://${host}/img.png`, `http://localhost:${port}/img.png`, `http://[::1]:${port}/img.png`,
      'http://169.254.169.254/latest/meta-data', 'http://10.1.2.3/a.png', 'http://0.0.0.0/a.png', `http://[::ffff:127.0.0.1]:${port}/img.png`]) {
      const r = await encodeUrl(guarded, u);
      assert.equal(r.status, 403, u);
      assert.equal(r.body.error_code, 'FORBIDDEN_PATH');
    }
    // A redirect from an allowed place to a private one is checked again on the new connection.
    const viaBatch = await call(guarded.base, 'POST', '/encode/batch', { items: [{ url: `http://${host}/hop/1` }] });
    assert.equal(viaBatch.body.response.results[0].status, 403);
  });

  it('when addresses are classified, then public ones pass and special ones are blocked', () => {
    for (const a of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111']) assert.equal(isBlockedAddress(a), false, a);
    for (const a of ['127.0.0.1', '10.0.0.1', '172.16.5.4', '192.168.1.1', '169.254.169.254', '0.0.0.0', '::1', '::', 'fe80::1', 'fd00::1', '::ffff:10.0.0.1', '100.64.0.1']) {
      assert.equal(isBlockedAddress(a), true, a);
    }
  });
});
