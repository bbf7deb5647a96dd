import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createSearchClient } from '@doppel/clients';
import { freePorts } from '@doppel/service-kit/testing';
import { exportCollection, importCollection } from '../src/collection-transfer.logic.js';
import { waitReady } from '../src/stack.launcher.js';

const root = process.env.DOPPEL_REPO_ROOT ?? fileURLToPath(new URL('../../..', import.meta.url));
const children: ChildProcess[] = [];
const run = (script: string, args: string[], env: Record<string, string> = {}) => {
  const c = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', script, ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(c);
  return c;
};
after(async () => {
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const exited = once(c, 'exit');
    c.kill('SIGTERM');
    await exited;
  }
});

/** A contextual-search process on a free port. */
async function searchService(env: Record<string, string>) {
  const [port] = await freePorts(1);
  const child = run('services/contextual-search/src/main.ts', [], { SERVER_PORT: String(port), SERVER_HOST: '127.0.0.1', LOG_LEVEL: 'warn', DIMENSION: '4', ...env });
  const url = `http://127.0.0.1:${port}`;
  await waitReady(url, child, 90_000);
  return createSearchClient({ baseUrl: url, timeoutMs: 30_000 });
}

describe('doppel export / import', () => {
  it('when a collection is exported from hnswlib and imported into pgvector, then paths, vectors and metadata arrive and bad lines are reported', { timeout: 300_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'doppel-transfer-'));
    try {
      const pglite = run('services/contextual-search/scripts/pglite-server.ts', ['--port', '0']);
      const [line] = (await once(createInterface({ input: pglite.stdout! }), 'line')) as [string];
      const { url } = JSON.parse(line) as { url: string };
      const from = await searchService({ LOCATION: join(dir, 'a') });
      const to = await searchService({ SEARCH_BACKEND: 'pgvector', DATABASE_URL: url });
      const items = Array.from({ length: 2345 }, (_, i) => ({
        relative_path: `img/${i}.jpg`,
        vec_features: [1, Math.sin(i), Math.cos(i), i / 1000],
        ...(i % 3 === 0 ? { metadata: { i, tag: `t${i % 7}` } } : {}),
      }));
      for (let i = 0; i < items.length; i += 1000) await from.upsert({ items: items.slice(i, i + 1000) });

      const file = join(dir, 'collection.jsonl');
      assert.deepEqual(await exportCollection(from, file), { exported: items.length });
      await appendFile(file, '{"relative_path": "broken"\n{"relative_path":"x.jpg","vec_features":"nope"}\n');
      const r = await importCollection(to, file);
      assert.equal(r.imported, items.length);
      assert.equal(r.inserted, items.length);
      assert.deepEqual(r.bad.map((b) => b.split(': ')[0]!.split(':').at(-1)), [String(items.length + 1), String(items.length + 2)]);

      const a = await from.list({ limit: 1000, offset: 1000, include_vectors: true });
      const b = await to.list({ limit: 1000, offset: 1000, include_vectors: true });
      assert.equal(b.total, items.length);
      const strip = (l: typeof a.items) => l.map(({ vec_features: _v, ...rest }) => rest);
      assert.deepEqual(strip(b.items), strip(a.items), 'same order, paths and metadata');
      // Cosine vectors arrive unit-normalised and are normalised again on the way in: float32 rounding only.
      a.items.forEach((it, i) => it.vec_features!.forEach((x, j) => assert.ok(Math.abs(x - b.items[i]!.vec_features![j]!) < 1e-6, `${it.relative_path}[${j}]`)));
      const q = { nb_neighbors: 5, vec_features: items[42]!.vec_features };
      assert.deepEqual((await to.search(q)).neighbors.map((n) => n.relative_path), (await from.search(q)).neighbors.map((n) => n.relative_path));

      // Import is an upsert: importing again replaces, adds nothing.
      await writeFile(file, `${JSON.stringify(items[0])}\n`);
      assert.deepEqual(await importCollection(to, file), { lines: 1, imported: 1, inserted: 0, replaced: 1, bad: [] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
