import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mulberry32 } from '@doppel/service-kit';
import { LONG, launchService, report, send, type Service } from './services.fixture.js';

/*
 * Crash safety of contextual-search: rounds of four concurrent writers (batched upserts
 * and deletes), the process SIGKILLed at a random moment of each round with requests in
 * flight, restarted on the same data; every acknowledged write must be there after every
 * restart. Snapshots are taken often so kills also land during snapshotting.
 */
const ROUNDS = LONG ? 100 : 20;
const DIM = 16;
const vec = (id: number): number[] => Array.from({ length: DIM }, (_, j) => Math.sin(id * 13.7 + j * 7.1) + (j === id % DIM ? 3 : 0));

type State = 'present' | 'deleted' | 'unknown';

async function listAll(base: string): Promise<Map<string, unknown>> {
  const present = new Map<string, unknown>();
  for (let offset = 0; ; offset += 1000) {
    const r = await send(base, 'GET', `/vectors?offset=${offset}&limit=1000`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const page = (r.body as { response: { total: number; items: Array<{ relative_path: string; metadata?: unknown }> } }).response;
    for (const it of page.items) present.set(it.relative_path, it.metadata);
    if (offset + 1000 >= page.total) break;
  }
  return present;
}

/** Counts acknowledged writes the restarted service lost, and settles the unknown ones to what it holds. */
async function lostWrites(base: string, expected: Map<string, { state: State; id: number }>): Promise<string[]> {
  const present = await listAll(base);
  const lost: string[] = [];
  for (const [path, e] of expected) {
    if (e.state === 'present' && JSON.stringify(present.get(path)) !== JSON.stringify({ id: e.id })) lost.push(`upsert of ${path}`);
    if (e.state === 'deleted' && present.has(path)) lost.push(`delete of ${path}`);
    if (e.state === 'unknown') e.state = present.has(path) ? 'present' : 'deleted';
  }
  return lost;
}

describe('reliability: contextual-search under SIGKILL', () => {
  it(`when the process is SIGKILLed in ${ROUNDS} rounds under 4 concurrent writers, then no acknowledged write is lost`, { timeout: (LONG ? 1800 : 420) * 1000 }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'doppel-crash-'));
    const env = { LOCATION: dir, DIMENSION: String(DIM), SNAPSHOT_WAL_RECORDS: '25', SNAPSHOT_INTERVAL_MS: '0', LOG_LEVEL: 'warn' };
    const rand = mulberry32(2026);
    const expected = new Map<string, { state: State; id: number }>();
    let nextId = 0;
    let acked = 0;
    let tried = 0;
    const lost: string[] = [];
    let svc: Service | undefined;
    let rssBefore = 0;
    let rssAfter = 0;
    try {
      for (let round = 0; round < ROUNDS; round++) {
        // Readiness is waited on by polling, so the service logs its port even at warn.
        svc = await launchService('contextual-search', { ...env, LOG_LEVEL: 'info' }, 60_000);
        if (round === 0) rssBefore = svc.rssMb();
        if (round > 0) lost.push(...await lostWrites(svc.base, expected));
        const killAt = acked + 20 + Math.floor(rand() * 100);
        let stop = false;
        const current = svc;
        const writer = async (w: number) => {
          const mine: string[] = [];
          while (!stop) {
            const del = mine.length >= 3 && rand() < 0.3;
            const batch = del
              ? mine.splice(0, 1 + Math.floor(rand() * 2))
              : Array.from({ length: 1 + Math.floor(rand() * 4) }, () => `w${w}/${nextId++}.jpg`);
            const ids = batch.map((p) => expected.get(p)?.id ?? Number(/\/(\d+)\.jpg$/.exec(p)![1]));
            batch.forEach((p, i) => expected.set(p, { state: 'unknown', id: ids[i]! }));
            tried++;
            try {
              const r = del
                ? await send(current.base, 'DELETE', '/vectors', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ relative_paths: batch }) })
                : await send(current.base, 'POST', '/vectors', {
                  headers: { 'content-type': 'application/json' },
                  body: JSON.stringify({ items: batch.map((p, i) => ({ relative_path: p, vec_features: vec(ids[i]!), metadata: { id: ids[i] } })) }),
                });
              if (r.status === 429 || r.status === 503) continue; // refused, not acknowledged: stays unknown
              assert.equal(r.status, 200, JSON.stringify(r.body));
              batch.forEach((p, i) => expected.set(p, { state: del ? 'deleted' : 'present', id: ids[i]! }));
              if (!del) mine.push(...batch);
              if (++acked >= killAt && !stop) {
                // The other writers' requests are in flight at this moment.
                stop = true;
                current.child.kill('SIGKILL');
              }
            } catch (err) {
              if (!stop) throw err;
              return; // in flight when the process died: its outcome is unknown
            }
          }
        };
        await Promise.all([0, 1, 2, 3].map(writer));
        if (current.alive()) await once(current.child, 'exit');
      }
      svc = await launchService('contextual-search', { ...env, LOG_LEVEL: 'info' }, 60_000);
      lost.push(...await lostWrites(svc.base, expected));
      rssAfter = svc.rssMb();
      const states = [...expected.values()];
      t.diagnostic(report({
        check: `crash safety: ${ROUNDS} SIGKILL rounds, 4 writers`, tried, rejected: 0, errors5xx: 0, crashes: 0,
        lostWrites: lost.length, rssBeforeMb: rssBefore, rssAfterMb: rssAfter,
        note: `${acked} acknowledged writes; ${states.filter((s) => s.state === 'present').length} present, ${states.filter((s) => s.state === 'deleted').length} deleted at the end`,
      }));
      assert.deepEqual(lost, [], `lost acknowledged writes:\n${lost.slice(0, 20).join('\n')}`);
      assert.ok(acked >= ROUNDS * 20);
    } finally {
      await svc?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
