import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { ensureTestModel } from '@doppel/image-encoder/testing';
import { isBlockedAddress } from '@doppel/image-source';
import { syntheticImage } from '../helpers/images.fixture.js';
import { hostileImages } from './hostile-images.fixture.js';
import { malformedRequest, type Endpoint } from './malformed.arbitraries.js';
import { LONG, envelopeProblem, launchStack, report, send, type Stack } from './services.fixture.js';

/*
 * Property-based fuzzing of every endpoint of the four real services: thousands of
 * malformed requests each; none may crash a process, get a 5xx or an answer outside the
 * envelope.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? (LONG ? 20_000 : 2000));
const SEED = Number(process.env.FUZZ_SEED ?? 14);

const json = (body: unknown) => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('reliability: hostile input to the four services', { timeout: (LONG ? 7200 : 900) * 1000 }, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'doppel-fuzz-'));
  const root = join(tmp, 'images');
  const outside = join(tmp, 'outside');
  let listener: Server;
  let connections = 0;
  let stack: Stack & { dimension: number };
  const rssBefore = new Map<string, number>();

  before(async () => {
    mkdirSync(join(root, 'sub'), { recursive: true });
    mkdirSync(outside, { recursive: true });
    for (let i = 0; i < 3; i++) writeFileSync(join(root, i ? 'sub' : '', `img-${i}.jpg`), await syntheticImage(500 + i, 160, 120));
    // Outside the root, reachable only through symlinks planted inside it.
    writeFileSync(join(outside, 'secret.jpg'), await syntheticImage(900, 160, 120));
    symlinkSync(outside, join(root, 'link-out'));
    symlinkSync(join(outside, 'secret.jpg'), join(root, 'link-file.jpg'));
    // The SSRF target: any connection reaching it is a failure.
    listener = createServer((_req, res) => res.end('x'));
    listener.on('connection', () => { connections++; });
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
    stack = await launchStack({
      imagesRoot: root, stateDir: join(tmp, 'state'), modelPath: ensureTestModel(),
      env: { pipeline: { DOWNSTREAM_TIMEOUT_MS: '20000' } },
    });
    for (const s of stack.all) rssBefore.set(s.name, s.rssMb());
    // Something to search, match and list.
    const r = await send(stack.pipeline.base, 'POST', '/index', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ relative_path: '.' }) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });
  after(async () => {
    listener?.close();
    await stack?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  const endpoints = (): Endpoint[] => {
    const v = Array.from({ length: stack.dimension }, (_, i) => Math.sin(i));
    return [
      { service: 'image-encoder', method: 'POST', path: '/encode', template: { relative_path: 'img-0.jpg', orientations: 'none' } },
      { service: 'image-encoder', method: 'POST', path: '/encode/batch', template: { items: [{ relative_path: 'img-0.jpg' }] } },
      { service: 'contextual-search', method: 'POST', path: '/search', template: { nb_neighbors: 3, vec_features: v, min_score: 0.1 } },
      { service: 'contextual-search', method: 'POST', path: '/vectors', template: { items: [{ relative_path: 'fuzz/x.jpg', vec_features: v, metadata: { a: 1 } }] } },
      { service: 'contextual-search', method: 'DELETE', path: '/vectors', template: { relative_paths: ['fuzz/x.jpg'] } },
      { service: 'contextual-search', method: 'GET', path: '/vectors', template: { offset: 0, limit: 10, include_vectors: true } },
      { service: 'instance-matching', method: 'POST', path: '/match', template: { candidate: 'img-0.jpg', neighbors: ['sub/img-1.jpg'], threshold: 0.5 } },
      { service: 'instance-matching', method: 'POST', path: '/compare', template: { candidate: 'img-0.jpg', target: 'sub/img-1.jpg' } },
      { service: 'pipeline', method: 'POST', path: '/duplicates', template: { relative_path: 'img-0.jpg' } },
      { service: 'pipeline', method: 'POST', path: '/index', template: { relative_path: 'sub', recursive: true } },
    ];
  };

  const baseOf = (svc: Endpoint['service']) => stack.all.find((s) => s.name === svc)!.base;
  const perService = new Map<string, { tried: number; rejected: number; endpoints: number }>();

  it(`when ${RUNS} malformed requests hit each endpoint, then every answer is a 4xx (or 2xx) envelope and no process exits`, async (t) => {
    for (const ep of endpoints()) {
      const base = baseOf(ep.service);
      let tried = 0;
      let rejected = 0;
      await fc.assert(
        fc.asyncProperty(malformedRequest(ep), async (req) => {
          tried++;
          const r = await send(base, req.method, req.path, { headers: req.headers, ...(req.body === undefined ? {} : { body: req.body }) });
          if (r.status >= 400) rejected++;
          assert.ok(r.status < 500, `${ep.service} ${req.method} ${req.path} (${req.how}) -> ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
          const problem = envelopeProblem(r);
          assert.equal(problem, undefined, `${ep.service} ${req.method} ${req.path} (${req.how}): ${problem}`);
        }),
        { numRuns: RUNS, seed: SEED, endOnFailure: true },
      );
      const acc = perService.get(ep.service) ?? { tried: 0, rejected: 0, endpoints: 0 };
      perService.set(ep.service, { tried: acc.tried + tried, rejected: acc.rejected + rejected, endpoints: acc.endpoints + 1 });
      for (const s of stack.all) assert.ok(s.alive(), `${s.name} died during ${ep.method} ${ep.path}:\n${s.tail()}`);
      t.diagnostic(`${ep.service} ${ep.method} ${ep.path}: ${tried} malformed requests, ${rejected} rejected with 4xx, 0 5xx`);
    }
    for (const s of stack.all) assert.equal((await send(s.base, 'GET', '/healthz')).status, 200, s.name);
    for (const s of stack.all) {
      const acc = perService.get(s.name)!;
      t.diagnostic(report({
        check: `fuzz: ${s.name} (${acc.endpoints} endpoints)`, tried: acc.tried, rejected: acc.rejected, errors5xx: 0, crashes: s.alive() ? 0 : 1,
        lostWrites: '', rssBeforeMb: rssBefore.get(s.name) ?? 0, rssAfterMb: s.rssMb(),
        note: `fast-check, ${RUNS} runs per endpoint, seed ${SEED}`,
      }));
    }
  });
  it('when bombs and hostile formats are sent as images, then each is a 4xx within 2 s and RSS stays bounded', async (t) => {
    const png = (await send(stack.encoder.base, 'POST', '/encode', json({ relative_path: 'img-0.jpg' }))).status;
    assert.equal(png, 200);
    const target = readFileSync(join(root, 'img-0.jpg')).toString('base64');
    const routes = [
      { svc: stack.encoder, path: '/encode', body: (b64: string) => ({ image_base64: b64 }) },
      { svc: stack.matcher, path: '/compare', body: (b64: string) => ({ candidate_base64: b64, target_base64: target }) },
      { svc: stack.pipeline, path: '/duplicates', body: (b64: string) => ({ image_base64: b64 }) },
    ];
    const before = new Map(stack.all.map((s) => [s.name, s.rssMb()]));
    let tried = 0;
    let slowest = 0;
    const failures: string[] = [];
    for (const [name, bytes] of hostileImages()) {
      const b64 = bytes.toString('base64');
      for (const route of routes) {
        // Four at once, as the probe did.
        const replies = await Promise.all(Array.from({ length: 4 }, () => send(route.svc.base, 'POST', route.path, json(route.body(b64)))));
        for (const r of replies) {
          tried++;
          slowest = Math.max(slowest, r.ms);
          if (r.status < 400 || r.status >= 500 || r.ms > 2000 || envelopeProblem(r)) {
            failures.push(`${name} -> ${route.svc.name} ${route.path}: ${r.status} in ${r.ms.toFixed(0)} ms ${JSON.stringify(r.body).slice(0, 160)}`);
          }
        }
      }
    }
    for (const s of stack.all) assert.ok(s.alive(), `${s.name} died:\n${s.tail()}`);
    const grown = stack.all.map((s) => [s.name, before.get(s.name)!, s.rssMb()] as const);
    const sum = (i: 1 | 2) => grown.reduce((n, g) => n + g[i], 0);
    t.diagnostic(report({
      check: 'image bombs and hostile formats (encoder, matcher, pipeline; 4 at once)', tried, rejected: tried - failures.length, errors5xx: 0, crashes: 0, lostWrites: '',
      rssBeforeMb: sum(1), rssAfterMb: sum(2), note: `RSS summed over the 4 services (${grown.map(([n, b, a]) => `${n} ${b}->${a}`).join(', ')}); slowest answer ${slowest.toFixed(0)} ms`,
    }));
    assert.deepEqual(failures, []);
    for (const [name, b, a] of grown) assert.ok(a - b < 400, `${name}: RSS ${b} -> ${a} MB`);
  });

  it('when SVG is sent to instance-matching, then 415', async () => {
    const target = readFileSync(join(root, 'img-0.jpg')).toString('base64');
    for (const [name, bytes] of hostileImages().filter(([n]) => n.startsWith('svg'))) {
      const r = await send(stack.matcher.base, 'POST', '/compare', json({ candidate_base64: bytes.toString('base64'), target_base64: target }));
      assert.equal(r.status, 415, `${name}: ${r.status} ${JSON.stringify(r.body).slice(0, 160)}`);
    }
  });

  it('when url sources name loopback, private or odd address forms, then each is a 4xx and no connection reaches the listener', async () => {
    const port = (listener.address() as { port: number }).port;
    const forms = [
      `http://127.0.0.1:${port}/x.png`, `http://localhost:${port}/x.png`, `http://localhost.:${port}/x.png`, `http://LOCALHOST:${port}/`,
      `http://sub.localhost:${port}/`, `http://[::1]:${port}/`, `http://[::ffff:127.0.0.1]:${port}/`, `http://[::ffff:7f00:1]:${port}/`,
      `http://[0:0:0:0:0:ffff:7f00:0001]:${port}/`, `http://[::127.0.0.1]:${port}/`, `http://0x7f000001:${port}/`, `http://2130706433:${port}/`,
      `http://017700000001:${port}/`, `http://127.1:${port}/`, `http://0:${port}/`, `http://0.0.0.0:${port}/`, `http://127.0.0.1.:${port}/`,
      `http://user:pw@127.0.0.1:${port}/`, `http://127.000.000.001:${port}/`, `http://[::]:${port}/`, `http://[fe80::1]:${port}/`,
      'http://169.254.169.254/latest/meta-data/', 'http://10.0.0.1/', 'http://192.168.1.1/', 'http://172.16.0.1/', 'http://100.64.0.1/',
      'file:///etc/passwd', `ftp://127.0.0.1:${port}/`, `gopher://127.0.0.1:${port}/`, 'data:image/png;base64,AAAA', 'javascript:alert(1)',
      `http://example.com@127.0.0.1:${port}/`, 'http://[::ffff:a9fe:a9fe]/', 'http://[64:ff9b::7f00:1]/',
    ];
    const failures: string[] = [];
    for (const url of forms) {
      for (const [svc, path] of [[stack.encoder, '/encode'], [stack.pipeline, '/duplicates']] as const) {
        const r = await send(svc.base, 'POST', path, json({ url }));
        if (r.status < 400 || r.status >= 500 || envelopeProblem(r)) failures.push(`${url} via ${svc.name}: ${r.status} ${JSON.stringify(r.body).slice(0, 160)}`);
      }
    }
    assert.deepEqual(failures, []);
    assert.equal(connections, 0, 'a url request reached the loopback listener');
  });

  it('when paths escape the root (.., absolute, NUL, symlinks), then 4xx everywhere and an outside file is never read', async () => {
    const payloads = ['../outside/secret.jpg', '/etc/passwd', 'sub/../../outside/secret.jpg', 'link-out/secret.jpg', 'link-file.jpg', 'img-0.jpg\u0000.png',
      '..', 'sub/../..', `${root}/img-0.jpg`, 'link-out', 'link-out/', './link-out/secret.jpg', '....//....//etc/passwd'];
    const failures: string[] = [];
    const ask = async (svc: Stack['encoder'], path: string, body: unknown, what: string) => {
      const r = await send(svc.base, 'POST', path, json(body));
      if (r.status < 400 || r.status >= 500 || envelopeProblem(r)) failures.push(`${what}: ${r.status} ${JSON.stringify(r.body).slice(0, 160)}`);
      return r;
    };
    for (const p of payloads) {
      await ask(stack.encoder, '/encode', { relative_path: p }, `encode ${p}`);
      await ask(stack.matcher, '/compare', { candidate: p, target: 'img-0.jpg' }, `compare candidate ${p}`);
      await ask(stack.matcher, '/compare', { candidate: 'img-0.jpg', target: p }, `compare target ${p}`);
      await ask(stack.pipeline, '/duplicates', { relative_path: p }, `duplicates ${p}`);
      const m = await send(stack.matcher.base, 'POST', '/match', json({ candidate: 'img-0.jpg', neighbors: [p] }));
      if (m.status === 200 && (m.body as { response: { duplicated: unknown[] } }).response.duplicated.length > 0) failures.push(`match neighbor ${p}: matched an outside file`);
      const idx = await send(stack.pipeline.base, 'POST', '/index', json({ relative_path: p }));
      const text = JSON.stringify(idx.body);
      if (idx.status === 200 && /secret/.test(text)) failures.push(`index ${p}: names an outside file: ${text.slice(0, 200)}`);
      if (idx.status === 200 && (idx.body as { response: { indexed: number } }).response.indexed > 0) failures.push(`index ${p}: indexed something`);
    }
    assert.deepEqual(failures, []);
  });

  it('when an outside file exists or not behind a symlinked folder, then the answer is the same (no existence leak)', async () => {
    const pairs: Array<[Stack['encoder'], string, (p: string) => unknown]> = [
      [stack.encoder, '/encode', (p) => ({ relative_path: p })],
      [stack.matcher, '/compare', (p) => ({ candidate: p, target: 'img-0.jpg' })],
      [stack.pipeline, '/duplicates', (p) => ({ relative_path: p })],
      [stack.pipeline, '/index', (p) => ({ relative_path: p })],
    ];
    for (const [svc, path, body] of pairs) {
      const there = await send(svc.base, 'POST', path, json(body('link-out/secret.jpg')));
      const missing = await send(svc.base, 'POST', path, json(body('link-out/missing.jpg')));
      assert.equal(there.status, missing.status, `${svc.name} ${path}: ${there.status} for an existing outside file, ${missing.status} for a missing one`);
      assert.equal(there.status, 403, `${svc.name} ${path}: ${JSON.stringify(there.body)}`);
    }
  });
  it('when IPv6 forms embed or alias a private address (checked on the address filter: they cannot all be sent on loopback), then each is blocked', () => {
    const blocked = [
      '::', '::1', '::127.0.0.1', '::7f00:1', '::a00:1', '::c0a8:101', // ::/96 IPv4-compatible
      '::ffff:127.0.0.1', '::ffff:7f00:1', '0:0:0:0:0:ffff:7f00:1', '::ffff:a9fe:a9fe', '::ffff:10.1.2.3', // ::ffff:0:0/96 mapped
      '::ffff:0:7f00:1', '::ffff:0:a00:1', // ::ffff:0:0:0/96 translated
      '2002:7f00:1::', '2002:7f00:0001:0:0:0:0:1', '2002:a00:1::1', '2002:c0a8:101::', '2002:a9fe:a9fe::', // 6to4 of private
      '64:ff9b::7f00:1', '64:ff9b::127.0.0.1', '64:ff9b::a9fe:a9fe', '64:ff9b:1::a00:1', // NAT64
      'fe80::1', 'fe80::1%lo', 'fc00::1', 'fd12:3456::1', 'fec0::1', 'ff02::1', '2001::1', '2001:db8::1', '100::1',
    ];
    const allowed = ['2606:4700:4700::1111', '2001:4860:4860::8888', '::ffff:8.8.8.8', '2002:808:808::1', '8.8.8.8'];
    assert.deepEqual(blocked.filter((a) => !isBlockedAddress(a)), [], 'not blocked');
    assert.deepEqual(allowed.filter((a) => isBlockedAddress(a)), [], 'public addresses blocked');
  });
});
