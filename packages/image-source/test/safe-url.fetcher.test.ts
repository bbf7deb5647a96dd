import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AppError } from '@doppel/service-kit';
import { createUrlFetcher, isBlockedAddress, isLocalHostname, type UrlFetcher } from '../src/index.js';

/** [status, code] of the AppError a fetch fails with. */
async function failure(p: Promise<unknown>): Promise<[number, string, string]> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AppError, String(e));
    return [e.status, e.code, e.message];
  }
  throw new Error('expected the fetch to fail');
}

describe('image-source: the guarded url fetcher', () => {
  let origin: Server;
  let host: string;
  let port: number;
  let open: UrlFetcher;
  let guarded: UrlFetcher;
  const hanging: Array<() => void> = [];
  const body = Buffer.from('image bytes');

  before(async () => {
    origin = createServer((req, res) => {
      const u = req.url ?? '/';
      if (u === '/img.png') { res.writeHead(200, { 'content-type': 'image/png' }); res.end(body); return; }
      if (u.startsWith('/hop/')) {
        const n = Number(u.slice(5));
        res.writeHead(302, { location: n > 1 ? `/hop/${n - 1}` : '/img.png' });
        res.end();
        return;
      }
      if (u === '/big') { res.writeHead(200); res.end(Buffer.alloc(300_000)); return; }
      if (u === '/big-chunked') {
        res.writeHead(200);
        for (let i = 0; i < 30; i++) res.write(Buffer.alloc(10_000));
        res.end();
        return;
      }
      if (u === '/hang') { hanging.push(() => res.end()); return; }
      if (u === '/ftp') { res.writeHead(302, { location: 'ftp://example.com/a.png' }); res.end(); return; }
      if (u === '/no-location') { res.writeHead(302); res.end(); return; }
      if (u === '/error') { res.writeHead(500); res.end(); return; }
      if (u === '/gone') { res.writeHead(410); res.end(); return; }
      res.writeHead(404);
      res.end();
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    port = (origin.address() as AddressInfo).port;
    host = `127.0.0.1:${port}`;
    open = createUrlFetcher({ timeoutMs: 400, maxBytes: 200_000, maxRedirects: 3, allowPrivate: true });
    guarded = createUrlFetcher({ timeoutMs: 2000, maxBytes: 200_000, maxRedirects: 3, allowPrivate: false });
  });
  after(async () => {
    for (const end of hanging) end();
    await open.close();
    await guarded.close();
    origin.closeAllConnections();
    await new Promise((r) => origin.close(r));
  });

  it('when a url serves bytes, then they come back whole', async () => {
    assert.deepEqual(await open.fetch(`http://${host}/img.png`), body);
  });

  it('when a url redirects up to the limit, then it is followed; one more redirect is a 502', async () => {
    assert.deepEqual(await open.fetch(`http://${host}/hop/3`), body);
    const [status, code, message] = await failure(open.fetch(`http://${host}/hop/4`));
    assert.deepEqual([status, code], [502, 'DOWNSTREAM_FAILURE']);
    assert.match(message, /redirected more than 3 times/);
    assert.deepEqual((await failure(open.fetch(`http://${host}/no-location`))).slice(0, 2), [502, 'DOWNSTREAM_FAILURE']);
  });

  it('when a url is not http(s), redirects to another scheme or is malformed, then 400', async () => {
    for (const u of ['ftp://example.com/a.png', 'file:///etc/passwd', 'not a url', `http://${host}/ftp`]) {
      assert.deepEqual((await failure(open.fetch(u))).slice(0, 2), [400, 'INVALID_REQUEST'], u);
    }
  });

  it('when a url is missing, fails, is too big, hangs or refuses connections, then 404/502/413/504/502', async () => {
    assert.deepEqual((await failure(open.fetch(`http://${host}/nothing.png`))).slice(0, 2), [404, 'IMAGE_NOT_FOUND']);
    assert.deepEqual((await failure(open.fetch(`http://${host}/gone`))).slice(0, 2), [404, 'IMAGE_NOT_FOUND']);
    assert.deepEqual((await failure(open.fetch(`http://${host}/error`))).slice(0, 2), [502, 'DOWNSTREAM_FAILURE']);
    assert.deepEqual((await failure(open.fetch(`http://${host}/big`))).slice(0, 2), [413, 'PAYLOAD_TOO_LARGE']);
    assert.deepEqual((await failure(open.fetch(`http://${host}/big-chunked`))).slice(0, 2), [413, 'PAYLOAD_TOO_LARGE']);
    assert.deepEqual((await failure(open.fetch(`http://${host}/hang`))).slice(0, 2), [504, 'DOWNSTREAM_TIMEOUT']);
    assert.deepEqual((await failure(open.fetch('http://127.0.0.1:1/a.png'))).slice(0, 2), [502, 'DOWNSTREAM_FAILURE']);
  });

  it('when private urls are not allowed, then loopback, private and link-local targets are refused at connect time', async () => {
    for (const u of [`http://${host}/img.png`, `http://localhost:${port}/img.png`, `http://localhost.:${port}/img.png`, `http://[::1]:${port}/img.png`,
      'http://169.254.169.254/latest/meta-data', 'http://10.1.2.3/a.png', 'http://0.0.0.0/a.png', `http://[::ffff:127.0.0.1]:${port}/img.png`]) {
      assert.deepEqual((await failure(guarded.fetch(u))).slice(0, 2), [403, 'FORBIDDEN_PATH'], u);
    }
  });

  it('when addresses and names are classified, then public ones pass and special ones are blocked', () => {
    for (const a of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111']) assert.equal(isBlockedAddress(a), false, a);
    for (const a of ['127.0.0.1', '10.0.0.1', '172.16.5.4', '192.168.1.1', '169.254.169.254', '0.0.0.0', '::1', '::', 'fe80::1', 'fd00::1', '::ffff:10.0.0.1', '100.64.0.1', '2002:7f00:1::', 'not an address']) {
      assert.equal(isBlockedAddress(a), true, a);
    }
    for (const h of ['localhost', 'LOCALHOST.', 'a.localhost', 'localhost.localdomain']) assert.equal(isLocalHostname(h), true, h);
    assert.equal(isLocalHostname('example.com'), false);
  });
});
