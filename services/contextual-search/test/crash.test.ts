import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { call } from '@doppel/service-kit/testing';
import { launchSearch } from './process.fixture.js';
import { removeDir, tempDir } from './search-fixture.js';

const DIM = 8;
const vec = (id: number): number[] => Array.from({ length: DIM }, (_, j) => Math.sin(id * 13 + j * 7) + (j === 0 ? 2 : 0));

const launch = (dir: string) => launchSearch({ LOCATION: dir, DIMENSION: String(DIM), SNAPSHOT_WAL_RECORDS: '40', SNAPSHOT_INTERVAL_MS: '0' });

type State = 'present' | 'deleted' | 'unknown';

describe('contextual-search: crash safety (real process, SIGKILL)', () => {
  it('when the process is killed mid-stream, then every acknowledged upsert and delete survives the restart', { timeout: 300_000 }, async () => {
    const dir = await tempDir();
    const expected = new Map<string, { state: State; id: number }>();
    let nextId = 0;
    try {
      for (let round = 0; round < 2; round++) {
        const p = await launch(dir);
        if (round > 0) await verify(p.base, expected);
        let acked = 0;
        let stop = false;
        const writer = async (w: number) => {
          let last: string | undefined;
          while (!stop) {
            const id = nextId++;
            const path = `w${w}/${id}.jpg`;
            // Every fourth step deletes this writer's previous path instead of adding one.
            const del = id % 4 === 3 && last !== undefined;
            const target = del ? last! : path;
            const before = expected.get(target);
            expected.set(target, { state: 'unknown', id: before?.id ?? id });
            try {
              const r = del
                ? await call(p.base, 'DELETE', '/vectors', { relative_paths: [target] })
                : await call(p.base, 'POST', '/vectors', { items: [{ relative_path: path, vec_features: vec(id), metadata: { id } }] });
              assert.equal(r.status, 200, JSON.stringify(r.body));
              expected.set(target, { state: del ? 'deleted' : 'present', id: before?.id ?? id });
              last = del ? undefined : path;
              if (++acked === 150) {
                // Other writers' requests are in flight at this moment.
                stop = true;
                p.child.kill('SIGKILL');
              }
            } catch (err) {
              if (!stop) throw err;
              return; // in flight when the process died: its outcome is unknown
            }
          }
        };
        await Promise.all([writer(0), writer(1), writer(2), writer(3)]);
        if (p.child.exitCode === null && p.child.signalCode === null) await once(p.child, 'exit');
      }
      const p = await launch(dir);
      try {
        await verify(p.base, expected);
        const known = [...expected.values()];
        assert.ok(known.filter((e) => e.state === 'present').length > 100);
        assert.ok(known.filter((e) => e.state === 'deleted').length > 20);
      } finally {
        p.child.kill('SIGTERM');
        await once(p.child, 'exit');
      }
    } finally {
      await removeDir(dir);
    }
  });
});

async function verify(base: string, expected: Map<string, { state: State; id: number }>): Promise<void> {
  const present = new Map<string, unknown>();
  for (let offset = 0; ; offset += 1000) {
    const r = await call(base, 'GET', `/vectors?offset=${offset}&limit=1000`);
    for (const it of r.body.response.items as Array<{ relative_path: string; metadata?: unknown }>) present.set(it.relative_path, it.metadata);
    if (offset + 1000 >= r.body.response.total) break;
  }
  for (const [path, e] of expected) {
    if (e.state === 'present') {
      assert.deepEqual(present.get(path), { id: e.id }, `acknowledged upsert of ${path} is missing`);
      const top = (await call(base, 'POST', '/search', { nb_neighbors: 1, vec_features: vec(e.id) })).body.response.neighbors[0];
      assert.ok(top.score > 0.999, `${path} searchable`);
    }
    if (e.state === 'deleted') assert.ok(!present.has(path), `acknowledged delete of ${path} came back`);
    // Settle the unknown ones to what the restarted service holds, so the next round checks from there.
    if (e.state === 'unknown') e.state = present.has(path) ? 'present' : 'deleted';
  }
}
