import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { EncodeRequest } from '@doppel/schemas';
import { AppError, createLogger, createServiceApp, jsonBody, jsonRoute, Registry, serve, type RunningServer } from '@doppel/service-kit';
import { createEncoderClient, createMatchingClient, createSearchClient } from '../src/index.js';

/** A port nothing listens on: bind, read the number, close. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const fingerprint = [0.6, 0.8];

describe('service clients against a stand-in downstream', () => {
  let srv: RunningServer;
  let base: string;
  let flakyCalls = 0;
  let upsertCalls = 0;
  const hanging = new Set<() => void>();

  before(async () => {
    const app = createServiceApp({
      service: 'stand-in',
      registry: new Registry(),
      logger: createLogger('stand-in', 'silent'),
      routes: (a) => {
        a.use(jsonBody('1mb'));
        a.post('/encode', jsonRoute(EncodeRequest, (body, { res }) => {
          if (body.relative_path === 'missing.jpg') throw new AppError('IMAGE_NOT_FOUND', 'missing.jpg: no such file');
          if (body.relative_path === 'slow.jpg') return new Promise<never>(() => hanging.add(() => res.end()));
          return { request_id: 0, fingerprint, dimension: 2, model: 'm' };
        }));
        // Malformed success reply: neighbours missing.
        a.post('/search', (_req, res) => { res.json({ global_status: 1, error_message: '', response: {} }); });
        a.post('/vectors', () => { upsertCalls++; throw new AppError('UNAVAILABLE', 'warming up'); });
        a.post('/match', (_req, res) => {
          flakyCalls++;
          if (flakyCalls < 3) throw new AppError('UNAVAILABLE', 'busy');
          res.json({ global_status: 1, error_message: '', response: { duplicated: [], checked: [], errors: [] } });
        });
        a.post('/compare', () => { throw new Error('bug'); });
      },
    });
    srv = await serve(app, { port: 0, host: '127.0.0.1', logger: createLogger('stand-in', 'silent') });
    base = `http://127.0.0.1:${srv.port}`;
  });
  after(async () => {
    for (const end of hanging) end();
    srv.server.closeAllConnections();
    await srv.close();
  });

  it('when the downstream answers a valid envelope, then the client returns its response body', async () => {
    const enc = createEncoderClient({ baseUrl: base });
    const r = await enc.encode({ relative_path: 'a.jpg' });
    assert.deepEqual(r.fingerprint, fingerprint);
  });

  it('when the downstream answers a 4xx envelope, then its code and status pass through', async () => {
    const enc = createEncoderClient({ baseUrl: base });
    await assert.rejects(enc.encode({ relative_path: 'missing.jpg' }), (e: unknown) =>
      e instanceof AppError && e.code === 'IMAGE_NOT_FOUND' && e.status === 404 && /missing\.jpg/.test(e.message));
  });

  it('when the downstream reply does not match its schema, then 502 DOWNSTREAM_FAILURE', async () => {
    const search = createSearchClient({ baseUrl: base });
    await assert.rejects(search.search({ nb_neighbors: 1, vec_features: [1] }), (e: unknown) =>
      e instanceof AppError && e.code === 'DOWNSTREAM_FAILURE' && e.status === 502 && /contextual-search/.test(e.message));
  });

  it('when the downstream fails with a 500, then 502 DOWNSTREAM_FAILURE names the service', async () => {
    const m = createMatchingClient({ baseUrl: base, retries: 0 });
    await assert.rejects(m.compare({ candidate: 'a', target: 'b' }), (e: unknown) =>
      e instanceof AppError && e.code === 'DOWNSTREAM_FAILURE' && /instance-matching POST \/compare/.test(e.message));
  });

  it('when an idempotent call meets transient 503s, then it is retried until it succeeds', async () => {
    const m = createMatchingClient({ baseUrl: base, retries: 2, retryDelayMs: 1 });
    const r = await m.match({ candidate: 'a.jpg', neighbors: ['b.jpg'] });
    assert.deepEqual(r.duplicated, []);
    assert.equal(flakyCalls, 3);
  });

  it('when retries are exhausted on a 503, then 503 UNAVAILABLE', async () => {
    const s = createSearchClient({ baseUrl: base, retries: 1, retryDelayMs: 1 });
    await assert.rejects(s.upsert({ items: [{ relative_path: 'a', vec_features: [1] }] }), (e: unknown) =>
      e instanceof AppError && e.code === 'UNAVAILABLE' && e.status === 503);
    assert.equal(upsertCalls, 2);
  });

  it('when the downstream never answers, then 504 DOWNSTREAM_TIMEOUT once the client timeout passes', async () => {
    // slow.jpg is never answered: only the client's own timeout can end the call.
    const enc = createEncoderClient({ baseUrl: base, timeoutMs: 200, retries: 0 });
    await assert.rejects(enc.encode({ relative_path: 'slow.jpg' }), (e: unknown) =>
      e instanceof AppError && e.code === 'DOWNSTREAM_TIMEOUT' && e.status === 504);
  });

  it('when nothing listens, then 503 UNAVAILABLE naming the service', async () => {
    const enc = createEncoderClient({ baseUrl: `http://127.0.0.1:${await closedPort()}`, retries: 2, retryDelayMs: 5 });
    await assert.rejects(enc.encode({ relative_path: 'a.jpg' }), (e: unknown) =>
      e instanceof AppError && e.code === 'UNAVAILABLE' && /image-encoder is unreachable/.test(e.message));
  });

  it('when connections are cut, then an idempotent call is tried 1 + retries times (502 naming the cause) and /readyz only once', async () => {
    // Counted, not timed: every connection is reset the moment it opens.
    let connections = 0;
    const cutter = createServer((sock) => { connections++; sock.resetAndDestroy(); });
    await new Promise<void>((r) => cutter.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(cutter.address() as { port: number }).port}`;
    try {
      const enc = createEncoderClient({ baseUrl: url, retries: 2, retryDelayMs: 5 });
      await assert.rejects(enc.encode({ relative_path: 'a.jpg' }), (e: unknown) => e instanceof AppError && e.code === 'DOWNSTREAM_FAILURE' && /ECONNRESET/.test(e.message));
      assert.equal(connections, 3);
      connections = 0;
      await assert.rejects(createEncoderClient({ baseUrl: url, retries: 2, retryDelayMs: 5 }).ready(), (e: unknown) => e instanceof AppError);
      assert.equal(connections, 1);
    } finally {
      await new Promise<void>((r) => cutter.close(() => r()));
    }
  });
});
