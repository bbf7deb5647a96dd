import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, copyFile, readdir, readFile, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listAll, remove, removeDir, search, start, stats, tempDir, upsert } from './search-fixture.js';

const v = (i: number): number[] => [1, i, i * i, 1 / (i + 1)];
const items = (from: number, to: number, meta = true) =>
  Array.from({ length: to - from }, (_, k) => ({ relative_path: `img/${from + k}.jpg`, vec_features: v(from + k), ...(meta ? { metadata: { n: from + k } } : {}) }));

const idx = (dir: string) => join(dir, '.index');
const files = async (dir: string, re: RegExp) => (await readdir(idx(dir))).filter((n) => re.test(n)).sort();

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  try {
    await fn(dir);
  } finally {
    await removeDir(dir);
  }
}

describe('contextual-search: persistence', () => {
  it('when the process stops without a snapshot, then the WAL replay restores upserts, replacements, deletes and metadata', () =>
    withDir(async (dir) => {
      const a = await start(dir);
      await upsert(a.base, items(0, 10));
      await upsert(a.base, [{ relative_path: 'img/3.jpg', vec_features: [9, 9, 9, 9], metadata: { replaced: true } }]);
      await remove(a.base, ['img/5.jpg', 'img/6.jpg']);
      const expected = await listAll(a.base);
      await a.abandon();
      assert.deepEqual(await files(dir, /^snap-/), []);

      const b = await start(dir);
      try {
        assert.deepEqual(await listAll(b.base), expected);
        const s = await stats(b.base);
        assert.equal(s.count, 8);
        assert.equal(s.last_persisted, null);
        assert.equal(s.wal_records, 3);
        const top = (await search(b.base, [9, 9, 9, 9], 1)).body.response.neighbors[0];
        assert.deepEqual(top.metadata, { replaced: true });
      } finally {
        await b.close();
      }
    }));

  it('when the service is closed, then it snapshots and restarts from the snapshot plus newer WAL records', () =>
    withDir(async (dir) => {
      const a = await start(dir);
      await upsert(a.base, items(0, 20));
      await a.close();
      assert.equal((await files(dir, /^snap-.*\.meta$/)).length, 1);

      const b = await start(dir);
      const s = await stats(b.base);
      assert.equal(s.count, 20);
      assert.equal(s.wal_records, 0);
      assert.equal(typeof s.last_persisted, 'string');
      await remove(b.base, ['img/0.jpg']);
      await upsert(b.base, items(20, 25));
      const expected = await listAll(b.base);
      await b.abandon();

      const c = await start(dir);
      try {
        assert.deepEqual(await listAll(c.base), expected);
        assert.equal((await stats(c.base)).wal_records, 2);
      } finally {
        await c.close();
      }
    }));

  it('when SNAPSHOT_WAL_RECORDS is reached, then snapshots are taken, old ones pruned and the WAL rotated', () =>
    withDir(async (dir) => {
      const a = await start(dir, { SNAPSHOT_WAL_RECORDS: '3', SNAPSHOT_KEEP: '2' });
      for (let i = 0; i < 12; i++) await upsert(a.base, items(i * 2, i * 2 + 2));
      assert.ok((await stats(a.base)).wal_records < 12, 'the threshold started snapshots');
      await a.hnsw.snapshot();
      const expected = await listAll(a.base);
      await a.abandon();
      assert.equal((await files(dir, /^snap-.*\.meta$/)).length, 2);
      assert.ok((await files(dir, /^wal-/)).length <= 3, (await files(dir, /^wal-/)).join());
      const b = await start(dir);
      try {
        assert.deepEqual(await listAll(b.base), expected);
      } finally {
        await b.close();
      }
    }));

  it('when the last WAL record is torn, then it is dropped, the rest is kept and new writes follow it', () =>
    withDir(async (dir) => {
      const a = await start(dir);
      await upsert(a.base, items(0, 5));
      await upsert(a.base, items(5, 6));
      const expected = await listAll(a.base);
      await a.abandon();
      const [wal] = await files(dir, /^wal-/);
      const file = join(idx(dir), wal!);
      const good = (await stat(file)).size;
      // A crash in the middle of a write: a header announcing 500 bytes, then 10 of them.
      const torn = Buffer.alloc(22);
      torn.writeUInt32LE(0x4c415744, 0);
      torn.writeUInt32LE(500, 4);
      await appendFile(file, torn);

      const b = await start(dir);
      assert.deepEqual(await listAll(b.base), expected);
      assert.equal((await stat(file)).size, good, 'the torn tail is cut off');
      await upsert(b.base, items(6, 7));
      await b.abandon();
      const c = await start(dir);
      try {
        assert.equal((await stats(c.base)).count, 7);
      } finally {
        await c.close();
      }
    }));

  it('when a WAL record in the middle is corrupt, then the start is refused naming the file', () =>
    withDir(async (dir) => {
      const a = await start(dir);
      await upsert(a.base, items(0, 1));
      await upsert(a.base, items(1, 2));
      await a.abandon();
      const [wal] = await files(dir, /^wal-/);
      const file = join(idx(dir), wal!);
      const buf = await readFile(file);
      buf[20] = buf[20]! ^ 0xff; // inside the first record's payload
      await writeFile(file, buf);
      await assert.rejects(start(dir), (e: Error) => e.message.includes(wal!) && /corrupt/.test(e.message));
    }));

  it('when the newest snapshot is corrupt, then the older one plus the WAL restore everything', () =>
    withDir(async (dir) => {
      const a = await start(dir, { SNAPSHOT_KEEP: '2' });
      await upsert(a.base, items(0, 5));
      await a.hnsw.snapshot();
      await upsert(a.base, items(5, 10));
      await remove(a.base, ['img/1.jpg']);
      await a.hnsw.snapshot();
      await upsert(a.base, items(10, 12));
      const expected = await listAll(a.base);
      await a.abandon();
      const hnsw = await files(dir, /^snap-.*\.hnsw$/);
      assert.equal(hnsw.length, 2);
      const newest = join(idx(dir), hnsw[1]!);
      const buf = await readFile(newest);
      buf[buf.length >> 1] = buf[buf.length >> 1]! ^ 0x55;
      await writeFile(newest, buf);

      const b = await start(dir);
      try {
        assert.deepEqual(await listAll(b.base), expected);
        assert.deepEqual(await files(dir, /\.corrupt$/), [`${hnsw[1]!.replace('.hnsw', '.meta')}.corrupt`, `${hnsw[1]}.corrupt`].sort());
      } finally {
        await b.close();
      }
      const c = await start(dir);
      try {
        assert.deepEqual(await listAll(c.base), expected);
      } finally {
        await c.close();
      }
    }));

  it('when the only snapshot is truncated, then the start is refused naming the file', () =>
    withDir(async (dir) => {
      const a = await start(dir, { SNAPSHOT_KEEP: '1' });
      await upsert(a.base, items(0, 5));
      await a.close();
      const [hnsw] = await files(dir, /^snap-.*\.hnsw$/);
      const file = join(idx(dir), hnsw!);
      await truncate(file, (await stat(file)).size - 100);
      await assert.rejects(start(dir), (e: Error) => e.message.includes(hnsw!) && /no usable snapshot/.test(e.message));
    }));

  it('when the configured dimension differs from the snapshot, then the start is refused naming both', () =>
    withDir(async (dir) => {
      const a = await start(dir);
      await upsert(a.base, items(0, 2));
      await a.close();
      await assert.rejects(start(dir, { DIMENSION: '8' }), /DIMENSION=4.*DIMENSION=8/);
    }));

  it('when a snapshot is being written, then searches are still answered', () =>
    withDir(async (dir) => {
      const a = await start(dir, { DIMENSION: '64' });
      try {
        const big = Array.from({ length: 2000 }, (_, i) => ({ relative_path: `p${i}`, vec_features: Array.from({ length: 64 }, (_, j) => Math.sin(i * 7 + j)) }));
        for (let i = 0; i < big.length; i += 500) await upsert(a.base, big.slice(i, i + 500));
        const snap = a.hnsw.snapshot();
        const r = await search(a.base, big[3]!.vec_features, 5);
        assert.equal(r.status, 200);
        assert.equal(r.body.response.neighbors[0].relative_path, 'p3');
        await snap;
      } finally {
        await a.close();
      }
    }));
});

describe('contextual-search: JSONL seed', () => {
  const line = (p: string, vec: unknown, extra: Record<string, unknown> = {}) => JSON.stringify({ relative_path: p, vec_features: vec, ...extra });

  it('when JSONL files hold good and bad lines, then good lines load in batches and bad ones are reported by file:line', () =>
    withDir(async (dir) => {
      await writeFile(
        join(dir, 'a.jsonl'),
        [
          line('a/1.jpg', [1, 0, 0, 0], { metadata: { src: 'a' } }),
          '{"relative_path": "a/2.jpg", "vec_features": [0, 1',
          line('a/3.jpg', [1, 2, 3]),
          '',
          line('a/4.jpg', [0, 0, 1, 0]),
          '{"relative_path":"a/5.jpg","vec_features":[1e999,0,0,0]}',
          line('', [1, 1, 1, 1]),
          line('a/6.jpg', [1, 1, 1, 1], { extra: true }),
          line('a/7.jpg', [0, 0, 0, 1]),
        ].join('\n'),
      );
      await writeFile(join(dir, 'b.jsonl'), `${line('b/1.jpg', [1, 1, 0, 0])}\n${line('a/1.jpg', [0, 0, 0, 1])}\n`);
      await writeFile(join(dir, 'ignored.txt'), 'not jsonl');
      const a = await start(dir, { BATCH_SIZE: '2' });
      try {
        const all = await listAll(a.base);
        assert.deepEqual(all.map((i) => i.relative_path), ['a/1.jpg', 'a/4.jpg', 'a/7.jpg', 'b/1.jpg']);
        assert.deepEqual(all[0]!.metadata, { src: 'a' });
        assert.deepEqual(all[0]!.vec_features, [1, 0, 0, 0], 'the first line for a path wins');
        const bad = a.hnsw.seedReport.bad;
        assert.deepEqual(bad.map((b) => b.split(': ')[0]), ['a.jsonl:2', 'a.jsonl:3', 'a.jsonl:6', 'a.jsonl:7', 'a.jsonl:8']);
        assert.match(bad[1]!, /exactly 4 elements/);
      } finally {
        await a.close();
      }
    }));

  it('when the service restarts, then its persisted changes win over the JSONL seed and unchanged files are skipped', () =>
    withDir(async (dir) => {
      const file = join(dir, 'seed.jsonl');
      await writeFile(file, [line('s/1.jpg', [1, 0, 0, 0]), line('s/2.jpg', [0, 1, 0, 0]), line('s/3.jpg', [0, 0, 1, 0])].join('\n'));
      const a = await start(dir);
      await a.hnsw.snapshot();
      await remove(a.base, ['s/1.jpg']);
      await upsert(a.base, [{ relative_path: 's/2.jpg', vec_features: [5, 5, 5, 5] }]);
      await a.abandon();

      const b = await start(dir);
      assert.equal(b.hnsw.seedReport.files, 0, 'the unchanged file is not read again');
      const all = await listAll(b.base);
      assert.deepEqual(all.map((i) => i.relative_path).sort(), ['s/2.jpg', 's/3.jpg']);
      assert.deepEqual(all.find((i) => i.relative_path === 's/2.jpg')!.vec_features!.map((x) => Math.round(x * 1000) / 1000), [0.5, 0.5, 0.5, 0.5]);
      await b.close();

      // The file changes: new paths are added, deleted and changed ones still follow the persisted state.
      await appendFile(file, `\n${line('s/4.jpg', [1, 1, 0, 0])}\n${line('s/1.jpg', [1, 0, 0, 0])}\n`);
      await utimes(file, new Date(), new Date(Date.now() + 5000));
      const c = await start(dir);
      try {
        assert.equal(c.hnsw.seedReport.added, 1);
        assert.deepEqual((await listAll(c.base)).map((i) => i.relative_path).sort(), ['s/2.jpg', 's/3.jpg', 's/4.jpg']);
      } finally {
        await c.close();
      }
    }));
});

describe('contextual-search: corruption is named, never silently dropped', () => {
  /** Two acknowledged requests (an upsert, then a delete), left in the WAL as by a crash. */
  async function twoRecords(dir: string): Promise<{ file: string; wal: string; firstEnd: number }> {
    const a = await start(dir);
    await upsert(a.base, items(0, 3));
    const [wal] = await files(dir, /^wal-.*\.log$/);
    const file = join(idx(dir), wal!);
    const firstEnd = (await stat(file)).size;
    await remove(a.base, ['img/1.jpg']);
    await a.abandon();
    return { file, wal: wal!, firstEnd };
  }

  it('when a byte of the last, complete WAL record is flipped, then the start is refused naming the file and offset', () =>
    withDir(async (dir) => {
      const { file, wal, firstEnd } = await twoRecords(dir);
      const buf = await readFile(file);
      buf[buf.length - 3] = buf[buf.length - 3]! ^ 0x01; // inside the delete's JSON, still no NUL byte
      await writeFile(file, buf);
      await assert.rejects(start(dir), (e: Error) => e.message.includes(wal) && e.message.includes(`byte ${firstEnd}`) && /checksum/.test(e.message) && /WAL_RECOVERY=truncate/.test(e.message));
    }));

  it('when WAL_RECOVERY=truncate is set after such a refusal, then the service starts without that record and keeps a copy', () =>
    withDir(async (dir) => {
      const { file, firstEnd } = await twoRecords(dir);
      const buf = await readFile(file);
      buf[buf.length - 3] = buf[buf.length - 3]! ^ 0x01;
      await writeFile(file, buf);
      const b = await start(dir, { WAL_RECOVERY: 'truncate' });
      try {
        assert.equal((await stats(b.base)).count, 3, 'the delete in the corrupt record is the accepted loss');
        assert.equal((await stat(file)).size, firstEnd);
        assert.deepEqual(await readFile(`${file}.corrupt`), buf);
      } finally {
        await b.close();
      }
    }));

  it('when the last record reads back partly as zero bytes (blocks never written before the crash), then it is a torn write and is dropped', () =>
    withDir(async (dir) => {
      const { file, firstEnd } = await twoRecords(dir);
      const buf = await readFile(file);
      buf.fill(0, buf.length - 8); // the payload's end never reached the disk
      await writeFile(file, buf);
      const b = await start(dir);
      try {
        assert.equal((await stats(b.base)).count, 3);
        assert.equal((await stat(file)).size, firstEnd);
      } finally {
        await b.close();
      }
    }));

  it('when the newest WAL segment is deleted, then the start is refused naming the missing segment', () =>
    withDir(async (dir) => {
      const a = await start(dir);
      await upsert(a.base, items(0, 2));
      await a.hnsw.snapshot();
      await upsert(a.base, items(2, 4));
      await a.abandon();
      const wals = await files(dir, /^wal-.*\.log$/);
      const newest = wals.at(-1)!;
      await rm(join(idx(dir), newest));
      await assert.rejects(start(dir), (e: Error) => e.message.includes(newest) && /missing/.test(e.message));
    }));

  it('when the only WAL segment of a collection without a snapshot is deleted, then the start is refused', () =>
    withDir(async (dir) => {
      const a = await start(dir);
      await upsert(a.base, items(0, 2));
      await a.abandon();
      const [wal] = await files(dir, /^wal-.*\.log$/);
      await rm(join(idx(dir), wal!));
      await assert.rejects(start(dir), (e: Error) => e.message.includes(wal!) && /missing/.test(e.message));
    }));

  it('when a snapshot index file has no committed .meta (a crash between the renames), then it is removed at start', () =>
    withDir(async (dir) => {
      const a = await start(dir);
      await upsert(a.base, items(0, 2));
      await a.close();
      const [hnsw] = await files(dir, /^snap-.*\.hnsw$/);
      const orphan = 'snap-0000000099.hnsw';
      await copyFile(join(idx(dir), hnsw!), join(idx(dir), orphan));
      const b = await start(dir);
      try {
        assert.deepEqual(await files(dir, /^snap-.*\.hnsw$/), [hnsw]);
        assert.equal((await stats(b.base)).count, 2);
      } finally {
        await b.close();
      }
    }));
});
