import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { provisionModel, ProvisionError } from '../src/model.provisioner.js';
import { REPO_ROOT, ensureTestModel } from '../src/testing.js';
import { tempDir } from './helpers.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const tsx = ['--conditions=source', '--import', 'tsx'];

describe('image-encoder: model provisioning', () => {
  const model = readFileSync(ensureTestModel());

  it('when the mirror holds the file with the right sha256, then it is installed, and kept on the next run', async () => {
    const mirror = tempDir();
    writeFileSync(join(mirror, 'm.onnx'), model);
    const dest = join(tempDir(), 'models', 'resnet18.onnx');
    const r = await provisionModel({ dest, mirrorDir: mirror, fileName: 'm.onnx', sha256: sha(model) });
    assert.equal(r.source, 'mirror');
    assert.deepEqual(readFileSync(dest), model);
    assert.equal((await provisionModel({ dest, mirrorDir: mirror, fileName: 'm.onnx', sha256: sha(model) })).source, 'existing');
  });

  it('when the checksum does not match, then nothing is installed', async () => {
    const mirror = tempDir();
    writeFileSync(join(mirror, 'm.onnx'), model);
    const dest = join(tempDir(), 'resnet18.onnx');
    await assert.rejects(provisionModel({ dest, mirrorDir: mirror, fileName: 'm.onnx', sha256: 'ab'.repeat(32) }), (e: unknown) => e instanceof ProvisionError && /sha256/.test(e.message));
    assert.equal(existsSync(dest), false);
    await assert.rejects(provisionModel({ dest, mirrorDir: tempDir(), fileName: 'm.onnx', sha256: sha(model) }), /no model file/);
  });

  it('when a URL is given, then the download is verified before it is installed', async () => {
    const srv = createServer((req, res) => { res.writeHead(req.url === '/m.onnx' ? 200 : 404); res.end(req.url === '/m.onnx' ? model : undefined); });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/m.onnx`;
      const dest = join(tempDir(), 'resnet18.onnx');
      await assert.rejects(provisionModel({ dest, url, sha256: 'ef'.repeat(32) }), /sha256/);
      assert.equal(existsSync(dest), false);
      assert.equal((await provisionModel({ dest, url, sha256: sha(model) })).source, 'url');
      assert.deepEqual(readFileSync(dest), model);
      await assert.rejects(provisionModel({ dest: join(tempDir(), 'x.onnx'), url: url.replace('m.onnx', 'none'), sha256: sha(model) }), /HTTP 404/);
    } finally {
      srv.closeAllConnections();
      await new Promise((r) => srv.close(r));
    }
  });

  it('when `pnpm models` runs with a mirror and a wrong or right sha256, then it fails or installs', () => {
    const mirror = tempDir();
    writeFileSync(join(mirror, 'm.onnx'), model);
    const dest = join(tempDir(), 'resnet18.onnx');
    const script = join(REPO_ROOT, 'services/image-encoder/scripts/provision-model.ts');
    const bad = spawnSync(process.execPath, [...tsx, script, '--mirror', mirror, '--file', 'm.onnx', '--sha256', 'cd'.repeat(32), '--dest', dest], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /sha256/);
    // The whitening fit (Debian packages, minutes) is left out here; the encoder tests cover its file.
    const good = spawnSync(process.execPath, [...tsx, script, '--mirror', mirror, '--file', 'm.onnx', '--sha256', sha(model), '--dest', dest, '--skip-whitening'], { encoding: 'utf8' });
    assert.equal(good.status, 0, good.stderr);
    assert.deepEqual(readFileSync(dest), model);
    assert.match(good.stdout, /whitening fit skipped/);
  });

  it('when the service starts without a model, then it exits naming `pnpm models`', () => {
    const r = spawnSync(process.execPath, [...tsx, join(REPO_ROOT, 'services/image-encoder/src/main.ts')], {
      encoding: 'utf8', env: { ...process.env, MODEL_PATH: '', MODELS_DIR: tempDir(), SERVER_PORT: '0' }, timeout: 60_000,
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /pnpm models/);
  });

  it('when a config variable is bad, then the service exits naming it', () => {
    const r = spawnSync(process.execPath, [...tsx, join(REPO_ROOT, 'services/image-encoder/src/main.ts')], {
      encoding: 'utf8', env: { ...process.env, RESIZE_MODE: 'stretch' }, timeout: 60_000,
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /RESIZE_MODE/);
  });
});
