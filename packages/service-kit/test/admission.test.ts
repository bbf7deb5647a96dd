import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Type } from '@doppel/schemas';
import {
  admitted, createAdmission, type Admission, createServiceApp, jsonBody, jsonRoute, serve, Registry, createLogger, type RunningServer,
} from '../src/index.js';

/** Synchronous CPU work, like an HNSW search on the main thread. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* spin */ }
}

const Work = Type.Object({ ms: Type.Integer({ minimum: 0, maximum: 1000 }) }, { additionalProperties: false });
const WORK_MS = 40;
const WAIT_MS = 600;

describe('service kit: admission', () => {
  let srv: RunningServer;
  let base: string;
  const registry = new Registry();
  let admission: Admission;
  before(async () => {
    admission = createAdmission({ name: 'work', concurrency: 1, maxQueue: 8, maxWaitMs: WAIT_MS, registry });
    const app = createServiceApp({
      service: 'admission', registry, logger: createLogger('admission', 'silent'),
      routes: (a) => {
        a.post('/work', jsonBody(1024), jsonRoute(Work, admitted(admission, (b) => { busy(b.ms); return { done: true }; })));
        a.post('/raw', jsonBody(1024), jsonRoute(Work, (b) => { busy(b.ms); return { done: true }; }));
      },
    });
    srv = await serve(app, { port: 0, host: '127.0.0.1', logger: createLogger('admission', 'silent') });
    base = `http://127.0.0.1:${srv.port}`;
  });
  after(() => srv.close());

  let finished = 0;
  const work = async (path: string) => {
    const t0 = performance.now();
    const r = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ms: WORK_MS }) });
    const body = await r.json() as { global_status: number; error_code?: string };
    if (r.status === 200) finished++;
    return { status: r.status, retryAfter: r.headers.get('retry-after'), body, ms: performance.now() - t0 };
  };
  /**
   * /healthz sent while a storm of `n` requests to `path` is in flight. Counted, not timed
   * (the machine's load would decide a timing): how many pieces of work finished before
   * health was answered.
   */
  async function storm(path: string, n: number) {
    finished = 0;
    const all = Array.from({ length: n }, () => work(path));
    // Let the storm's requests reach the server first.
    await new Promise((r) => setTimeout(r, 20));
    const before = finished;
    const h = await fetch(`${base}/healthz`);
    assert.equal(h.status, 200);
    const workAhead = finished - before;
    return { replies: await Promise.all(all), workAhead };
  }

  it('when sync work is not admitted, then /healthz waits behind all of it (the failure mode)', async () => {
    const { workAhead } = await storm('/raw', 30);
    assert.ok(workAhead >= 20, `${workAhead} requests finished before health was answered`);
  });

  it('when a storm passes the limiter, then health answers between requests and the excess gets 429/503 with Retry-After', async () => {
    // Warm-up: the limiter learns the time per request.
    for (let i = 0; i < 3; i++) assert.equal((await work('/work')).status, 200);
    const { replies, workAhead } = await storm('/work', 30);
    assert.ok(workAhead <= 3, `${workAhead} requests finished before health was answered`);
    const statuses = new Set(replies.map((r) => r.status));
    assert.ok([...statuses].every((s) => s === 200 || s === 429 || s === 503), [...statuses].join(','));
    assert.ok(replies.some((r) => r.status === 429), 'some refused');
    for (const r of replies.filter((x) => x.status !== 200)) {
      assert.equal(r.body.global_status, 0);
      assert.match(r.retryAfter ?? '', /^\d+$/);
    }
    // Accepted requests waited at most the bound plus a few requests' measured work.
    const bound = WAIT_MS + 4 * admission.serviceMs + 200;
    for (const r of replies.filter((x) => x.status === 200)) assert.ok(r.ms < bound, `accepted request took ${r.ms.toFixed(0)} ms (bound ${bound.toFixed(0)})`);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /admission_rejected_total\{limiter="work",reason="(expected_wait|queue_full)"\} [1-9]/);
  });

  it('when a queued request outlives the wait bound, then it gets 503 at the bound, not when its turn comes', async () => {
    const slow = createAdmission({ name: 'slow', concurrency: 1, maxQueue: 10, maxWaitMs: 100 });
    const first = slow.run(() => new Promise((r) => setTimeout(r, 400)));
    const t0 = performance.now();
    await assert.rejects(slow.run(() => 'late'), (e: { code?: string; status?: number; retryAfter?: number }) => e.code === 'UNAVAILABLE' && e.status === 503 && (e.retryAfter ?? 0) >= 1);
    const waited = performance.now() - t0;
    assert.ok(waited < 350, `rejected after ${waited.toFixed(0)} ms`);
    assert.equal(slow.waiting, 0);
    await first;
    assert.equal(await slow.run(() => 'next'), 'next');
  });

  it('when a waiting client goes away, then its place is given up', async () => {
    const lim = createAdmission({ name: 'gone', concurrency: 1, maxQueue: 1, maxWaitMs: 5000 });
    const first = lim.run(() => new Promise((r) => setTimeout(r, 200)));
    const ac = new AbortController();
    const queued = lim.run(() => 'never', ac.signal);
    assert.equal(lim.waiting, 1);
    ac.abort();
    await assert.rejects(queued);
    assert.equal(lim.waiting, 0);
    // The freed place is usable at once.
    const again = lim.run(() => 'ok');
    await first;
    assert.equal(await again, 'ok');
  });
});
