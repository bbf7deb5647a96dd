import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Type } from '@doppel/schemas';
import {
  admitted, createAdmission, type Admission, createServiceApp, jsonBody, jsonRoute, serve, Registry, createLogger, type RunningServer,
} from '../src/index.js';

const Work = Type.Object({ ms: Type.Integer({ minimum: 0, maximum: 1000 }) }, { additionalProperties: false });

/** A promise the test settles: work that holds its slot until released, whatever the machine's speed. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => { open = r; });
  return { wait, open };
}

/** Waits (bounded) until cond holds: an event, not a duration, decides the test. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), what);
}

describe('service kit: admission', () => {
  let srv: RunningServer;
  let base: string;
  const registry = new Registry();
  let admission: Admission;
  let held = gate();
  before(async () => {
    admission = createAdmission({ name: 'work', concurrency: 1, maxQueue: 8, maxWaitMs: 60_000, registry });
    const app = createServiceApp({
      service: 'admission', registry, logger: createLogger('admission', 'silent'),
      routes: (a) => {
        a.post('/work', jsonBody(1024), jsonRoute(Work, admitted(admission, async () => { await held.wait; return { done: true }; })));
      },
    });
    srv = await serve(app, { port: 0, host: '127.0.0.1', logger: createLogger('admission', 'silent') });
    base = `http://127.0.0.1:${srv.port}`;
  });
  after(() => srv.close());

  const work = async () => {
    const r = await fetch(`${base}/work`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ms: 0 }) });
    const body = await r.json() as { global_status: number; error_code?: string };
    return { status: r.status, retryAfter: r.headers.get('retry-after'), body };
  };

  it('when a storm passes the limiter, then one runs, the queue fills, the excess gets 429 with Retry-After and health answers meanwhile', async () => {
    held = gate();
    let answered = 0;
    const storm = Array.from({ length: 30 }, () => work().finally(() => { answered++; }));
    // 1 running + 8 waiting are held by the gate; the 21 others are refused at once.
    await until(() => answered === 21 && admission.inFlight === 1 && admission.waiting === 8, `answered ${answered}, in flight ${admission.inFlight}, waiting ${admission.waiting}`);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    held.open();
    const replies = await Promise.all(storm);
    assert.deepEqual(replies.map((r) => r.status).sort(), [...Array(9).fill(200), ...Array(21).fill(429)]);
    for (const r of replies.filter((x) => x.status === 429)) {
      assert.equal(r.body.global_status, 0);
      assert.equal(r.body.error_code, 'OVERLOADED');
      assert.match(r.retryAfter ?? '', /^[1-9]\d*$/);
    }
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /admission_rejected_total\{limiter="work",reason="queue_full"\} 21\b/);
  });

  it('when admitted work is synchronous, then other callbacks of the event loop run between two pieces of it', async () => {
    // What lets /healthz through between two HNSW searches: each run starts on a later loop turn.
    const lim = createAdmission({ name: 'turns', concurrency: 1, maxQueue: 8, maxWaitMs: 60_000 });
    const order: string[] = [];
    const a = lim.run(() => {
      order.push('a');
      setImmediate(() => order.push('other'));
    });
    const b = lim.run(() => { order.push('b'); });
    await Promise.all([a, b]);
    assert.deepEqual(order, ['a', 'other', 'b']);
  });

  it('when the measured time per request makes the expected wait longer than the bound, then 429 at once', async () => {
    const lim = createAdmission({ name: 'expected', concurrency: 1, maxQueue: 8, maxWaitMs: 20 });
    // One request of at least 60 ms teaches the limiter its time per request (a timer never fires early by more than a millisecond).
    await lim.run(() => new Promise((r) => setTimeout(r, 60)));
    assert.ok(lim.serviceMs >= 50, `learned ${lim.serviceMs} ms`);
    const g = gate();
    const first = lim.run(() => g.wait);
    await assert.rejects(lim.run(() => 'late'), (e: { code?: string; status?: number; retryAfter?: number }) => e.code === 'OVERLOADED' && e.status === 429 && (e.retryAfter ?? 0) >= 1);
    assert.equal(lim.waiting, 0);
    g.open();
    await first;
  });

  it('when a queued request outlives the wait bound, then it gets 503 while the slot is still held, not when its turn comes', async () => {
    const slow = createAdmission({ name: 'slow', concurrency: 1, maxQueue: 10, maxWaitMs: 100 });
    const g = gate();
    let firstDone = false;
    const first = slow.run(() => g.wait).then(() => { firstDone = true; });
    await assert.rejects(slow.run(() => 'late'), (e: { code?: string; status?: number; retryAfter?: number }) => e.code === 'UNAVAILABLE' && e.status === 503 && (e.retryAfter ?? 0) >= 1);
    assert.equal(firstDone, false, 'refused before the slot was given up');
    assert.equal(slow.waiting, 0);
    g.open();
    await first;
    assert.equal(await slow.run(() => 'next'), 'next');
  });

  it('when a waiting client goes away, then its place is given up', async () => {
    const lim = createAdmission({ name: 'gone', concurrency: 1, maxQueue: 1, maxWaitMs: 5000 });
    const g = gate();
    const first = lim.run(() => g.wait);
    const ac = new AbortController();
    const queued = lim.run(() => 'never', ac.signal);
    assert.equal(lim.waiting, 1);
    ac.abort();
    await assert.rejects(queued);
    assert.equal(lim.waiting, 0);
    // The freed place is usable at once.
    const again = lim.run(() => 'ok');
    g.open();
    await first;
    assert.equal(await again, 'ok');
  });
});
