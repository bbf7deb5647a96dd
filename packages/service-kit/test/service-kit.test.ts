import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Type } from '@doppel/schemas';
import { call } from '../src/testing.js';
import {
  createServiceApp, jsonBody, jsonRoute, queryRoute, serve, Registry, createLogger, AppError, loadConfig,
  ConfigError, type RunningServer,
} from '../src/index.js';

const EchoRequest = Type.Object(
  { name: Type.String({ minLength: 1 }), times: Type.Integer({ minimum: 1, maximum: 3 }) },
  { $id: 'https://schemas.doppel.dev/test/echo-request.json', additionalProperties: false },
);
const PageQuery = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10 })) }, { additionalProperties: false });

describe('service kit: a tiny app', () => {
  let srv: RunningServer;
  let base: string;
  let ready = false;
  let upstairs = true;
  before(async () => {
    const registry = new Registry();
    const app = createServiceApp({
      service: 'tiny',
      registry,
      logger: createLogger('tiny', 'silent'),
      readiness: { model: () => ({ ok: ready, detail: ready ? undefined : 'loading' }) },
      downstream: { upstairs: () => ({ ok: upstairs }), broken: () => { throw new Error('refused'); } },
      docs: [{ method: 'post', path: '/echo', summary: 'echo', request: EchoRequest, response: EchoRequest }],
      routes: (a) => {
        a.post('/echo', jsonBody('1kb'), jsonRoute(EchoRequest, (b) => ({ text: b.name.repeat(b.times) })));
        a.get('/page', queryRoute(PageQuery, (q) => ({ limit: q.limit ?? 5 })));
        a.get('/items/:id', (req) => { throw new AppError('IMAGE_NOT_FOUND', `no ${req.params.id}`); });
        a.get('/things/:id', queryRoute(Type.Object({}), () => ({ ok: true })));
        a.get('/boom', () => { throw new Error('secret internals'); });
        a.get('/busy', () => { throw new AppError('OVERLOADED', 'queue full', { retryAfter: 2 }); });
      },
    });
    srv = await serve(app, { port: 0, host: '127.0.0.1', logger: createLogger('tiny', 'silent') });
    base = `http://127.0.0.1:${srv.port}`;
  });
  after(() => srv.close());

  const post = (path: string, body: string, type = 'application/json') =>
    call(base, 'POST', path, undefined, { headers: { 'content-type': type }, raw: body });

  it('when /healthz is called, then it answers ok in the envelope', async () => {
    const r = await call(base, 'GET', '/healthz');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { global_status: 1, error_message: '', response: { status: 'ok', service: 'tiny' } });
  });

  it('when a readiness check fails, then /readyz is 503 until it passes', async () => {
    const r1 = await call(base, 'GET', '/readyz');
    assert.equal(r1.status, 503);
    const b1 = r1.body;
    assert.equal(b1.error_code, 'UNAVAILABLE');
    assert.match(b1.error_message, /model \(loading\)/);
    ready = true;
    const r2 = await call(base, 'GET', '/readyz');
    assert.equal(r2.status, 200);
    assert.equal(r2.body.response.ready, true);
  });

  it('when a downstream check fails or throws, then /readyz stays 200 and reports it, and /health/downstream is 503 naming only the failing ones', async () => {
    ready = true;
    upstairs = true;
    const r = await call(base, 'GET', '/readyz');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.response.downstream, { upstairs: { ok: true }, broken: { ok: false, detail: 'refused' } });
    const d = await call(base, 'GET', '/health/downstream');
    assert.equal(d.status, 503);
    assert.equal(d.body.error_code, 'UNAVAILABLE');
    assert.match(d.body.error_message, /broken \(refused\)/);
    assert.doesNotMatch(d.body.error_message, /upstairs/);
    upstairs = false;
    assert.match((await call(base, 'GET', '/health/downstream')).body.error_message, /upstairs/);
    upstairs = true;
  });

  it('when a valid body is posted, then the route answers in the success envelope', async () => {
    const r = await post('/echo', JSON.stringify({ name: 'ab', times: 2 }));
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { global_status: 1, error_message: '', response: { text: 'abab' } });
  });

  it('when a field is invalid, then 400 names the field', async () => {
    const r = await post('/echo', JSON.stringify({ name: 'ab', times: 9 }));
    assert.equal(r.status, 400);
    const b = r.body;
    assert.equal(b.global_status, 0);
    assert.equal(b.error_code, 'INVALID_REQUEST');
    assert.match(b.error_message, /^times: /);
    assert.deepEqual(b.response, {});
  });

  it('when the JSON is malformed, too large or not JSON, then 400/413/415', async () => {
    assert.equal((await post('/echo', '{"name":')).status, 400);
    assert.equal((await post('/echo', JSON.stringify({ name: 'x'.repeat(5000), times: 1 }))).status, 413);
    const r = await post('/echo', 'name=x', 'text/plain');
    assert.equal(r.status, 415);
    assert.equal(r.body.error_code, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('when query parameters are given, then they are coerced and validated', async () => {
    assert.deepEqual((await call(base, 'GET', '/page?limit=7')).body.response, { limit: 7 });
    const bad = await call(base, 'GET', '/page?limit=abc');
    assert.equal(bad.status, 400);
    assert.match(bad.body.error_message, /limit/);
  });

  it('when a handler throws an AppError, then its status and code are used', async () => {
    const r = await call(base, 'GET', '/items/42');
    assert.equal(r.status, 404);
    assert.equal(r.body.error_code, 'IMAGE_NOT_FOUND');
    const busy = await call(base, 'GET', '/busy');
    assert.equal(busy.status, 429);
    assert.equal(busy.headers.get('retry-after'), '2');
  });

  it('when a handler throws an unknown error, then 500 hides its message', async () => {
    const r = await call(base, 'GET', '/boom');
    assert.equal(r.status, 500);
    const b = r.body;
    assert.equal(b.error_code, 'INTERNAL');
    assert.doesNotMatch(b.error_message, /secret/);
  });

  it('when a route does not exist, then 404 in the envelope', async () => {
    const r = await call(base, 'GET', '/nope');
    assert.equal(r.status, 404);
    assert.equal(r.body.error_code, 'NOT_FOUND');
  });

  it('when /metrics is scraped, then durations are labelled by route template', async () => {
    await fetch(`${base}/things/1`);
    await fetch(`${base}/things/2`);
    const text = await (await fetch(`${base}/metrics`)).text();
    assert.match(text, /http_request_duration_seconds_count\{method="GET",route="\/things\/:id",status_code="200"\} 2/);
    assert.doesNotMatch(text, /route="\/things\/1"/);
  });

  it('when /openapi.json is fetched, then it documents the routes', async () => {
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { openapi: string; paths: Record<string, Record<string, { requestBody?: unknown }>> };
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(doc.paths['/echo']?.post?.requestBody);
  });
});

describe('service kit: config', () => {
  const Cfg = Type.Object({
    PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8000 }),
    RATIO: Type.Number({ default: 0.5 }),
    ENABLED: Type.Boolean({ default: false }),
    MODE: Type.Union([Type.Literal('a'), Type.Literal('b')], { default: 'a' }),
  });

  it('when variables are unset, then defaults apply and the result is frozen', () => {
    const c = loadConfig(Cfg, {});
    assert.deepEqual({ ...c }, { PORT: 8000, RATIO: 0.5, ENABLED: false, MODE: 'a' });
    assert.ok(Object.isFrozen(c));
  });

  it('when variables are set, then they are coerced from strings', () => {
    assert.deepEqual({ ...loadConfig(Cfg, { PORT: '9', RATIO: '0.25', ENABLED: 'true', MODE: 'b' }) }, { PORT: 9, RATIO: 0.25, ENABLED: true, MODE: 'b' });
  });

  it('when a variable is bad, then the error names it', () => {
    assert.throws(() => loadConfig(Cfg, { PORT: 'eighty' }), (e: unknown) => e instanceof ConfigError && e.variable === 'PORT');
    assert.throws(() => loadConfig(Cfg, { PORT: '70000' }), /PORT/);
    assert.throws(() => loadConfig(Cfg, { ENABLED: 'maybe' }), /ENABLED/);
    assert.throws(() => loadConfig(Cfg, { MODE: 'c' }), /MODE/);
  });
});
