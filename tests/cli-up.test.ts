import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureTestModel } from '@doppel/image-encoder/testing';
import { waitReady } from '@doppel/cli';
import { freePorts } from '@doppel/service-kit/testing';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

describe('doppel up', { timeout: 180_000 }, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'doppel-up-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('when a service of `doppel up` dies, then it is restarted; when Ctrl-C reaches it, then all four stop and it exits 0', async () => {
    const ports = await freePorts(4);
    const [pipeline, encoder, search, matching] = ports.map(String);
    // Its own process group, like a terminal job: Ctrl-C is SIGINT to the whole group.
    const child = spawn(process.execPath, [join(repoRoot, 'packages', 'cli', 'bin', 'doppel.mjs'), 'up', '--images', join(tmp, 'images'),
      '--port', pipeline!, '--encoder-port', encoder!, '--search-port', search!, '--matching-port', matching!],
    { env: { ...process.env, DOPPEL_HOME: join(tmp, 'home'), MODEL_PATH: ensureTestModel() }, detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    // Ctrl-C is sent once the CLI says it is ready (its own readiness, not just the pipeline's).
    const said = new Promise<void>((resolve) => child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('Ctrl-C to stop')) resolve();
    }));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitReady(`http://127.0.0.1:${pipeline}`, child, 120_000);
      await Promise.race([said, exited.then(() => { throw new Error('doppel up exited'); })]);
      for (const p of ports) assert.equal((await fetch(`http://127.0.0.1:${p}/healthz`)).status, 200);
      // SIGKILL (as the OOM killer would) one service: up starts it again on its port.
      const pid = Number(/contextual-search\s+\S+ \(pid (\d+)\)/.exec(stderr)?.[1]);
      assert.ok(pid > 0, stderr);
      const restarted = new Promise<void>((resolve) => child.stderr!.on('data', () => { if (/contextual-search restarted/.test(stderr)) resolve(); }));
      process.kill(pid, 'SIGKILL');
      await Promise.race([restarted, exited.then(() => { throw new Error('doppel up exited instead of restarting'); })]);
      assert.equal((await fetch(`http://127.0.0.1:${search}/readyz`)).status, 200);
      assert.equal((await fetch(`http://127.0.0.1:${pipeline}/readyz`)).status, 200);
    } catch (e) {
      process.kill(-child.pid!, 'SIGKILL');
      throw new Error(`${(e as Error).message}\n${stderr}`);
    }
    process.kill(-child.pid!, 'SIGINT');
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /stopped/);
    for (const p of ports) await assert.rejects(fetch(`http://127.0.0.1:${p}/healthz`), `port ${p} is closed`);
  });
});
