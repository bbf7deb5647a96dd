import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureTestModel } from '@doppel/image-encoder/testing';
import { SERVICES, startStack, type ServiceName, type Stack } from '@doppel/cli';
import { freePorts } from '@doppel/service-kit/testing';

/*
 * What the images run: `pnpm build`, then `pnpm deploy --prod` of each service (its dist/, its
 * workspace packages and its production dependencies only, as the Dockerfiles do), then
 * `node dist/main.js` in that folder with its env: no tsx, no `source` condition, no dev
 * dependency to lean on.
 */
const repoRoot = fileURLToPath(new URL('..', import.meta.url));

describe('the build output', { timeout: 600_000 }, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'doppel-dist-'));
  let stack: Stack | undefined;
  after(async () => {
    await stack?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('when `pnpm build` and `pnpm deploy --prod` have run, then each service starts from its dist/main.js and /readyz answers 200', async () => {
    const build = spawnSync('pnpm', ['build'], { cwd: repoRoot, encoding: 'utf8', timeout: 540_000 });
    assert.equal(build.status, 0, `pnpm build failed:\n${build.stdout.slice(-3000)}\n${build.stderr.slice(-3000)}`);
    const dirs: Partial<Record<ServiceName, string>> = {};
    for (const svc of SERVICES) {
      const out = join(tmp, 'deploy', svc);
      const deploy = spawnSync('pnpm', ['--config.inject-workspace-packages=true', '--filter', `@doppel/${svc}`, 'deploy', '--prod', '--offline', out],
        { cwd: repoRoot, encoding: 'utf8', timeout: 180_000 });
      assert.equal(deploy.status, 0, `pnpm deploy ${svc} failed:\n${deploy.stdout.slice(-2000)}\n${deploy.stderr.slice(-2000)}`);
      assert.ok(existsSync(join(out, 'dist', 'main.js')), `${svc}: dist/main.js deployed`);
      assert.ok(!existsSync(join(out, 'node_modules', 'typescript')), `${svc}: no dev dependency deployed`);
      dirs[svc] = out;
    }

    const images = join(tmp, 'images');
    mkdirSync(images);
    const [pipeline, encoder, search, matching] = await freePorts(4);
    stack = await startStack({
      repoRoot, imagesRoot: images, stateDir: join(tmp, 'state'), modelPath: ensureTestModel(),
      ports: { pipeline: pipeline!, encoder: encoder!, search: search!, matching: matching! },
      fromDist: true, serviceDirs: dirs, readyTimeoutMs: 120_000,
    });
    for (const svc of SERVICES) {
      assert.ok(stack.children[svc].spawnargs.includes(join(dirs[svc]!, 'dist', 'main.js')), `${svc} runs from its deployed dist`);
      assert.ok(!stack.children[svc].spawnargs.includes('tsx'), `${svc} runs without tsx`);
      const r = await fetch(`${stack.urls[svc]}/readyz`);
      assert.equal(r.status, 200, `${svc} /readyz: ${await r.text()}`);
    }
    const down = await fetch(`${stack.urls.pipeline}/health/downstream`);
    assert.equal(down.status, 200, await down.text());
  });
});
