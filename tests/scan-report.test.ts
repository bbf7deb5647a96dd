import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { ensureTestModel } from '@doppel/image-encoder/testing';
import { freePorts } from '@doppel/service-kit/testing';
import { syntheticImage, transformed } from './helpers/images.fixture.js';

/*
 * `doppel scan` on a fresh folder with nothing running: the CLI must start the stack
 * itself, write the JSON and the HTML report, and stop everything. The report is then
 * opened in headless Chromium to check that the groups are actually rendered.
 */
const repoRoot = fileURLToPath(new URL('..', import.meta.url));

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, 'packages', 'cli', 'bin', 'doppel.mjs'), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

describe('doppel scan', { timeout: 240_000 }, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'doppel-scan-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('when a folder with two duplicate groups is scanned, then the HTML report renders both groups in Chromium', async () => {
    const dir = join(tmp, 'photos');
    mkdirSync(join(dir, 'more'), { recursive: true });
    const a = await syntheticImage(7);
    const b = await syntheticImage(8);
    writeFileSync(join(dir, 'a.jpg'), a);
    writeFileSync(join(dir, 'more', 'a-crop.jpg'), await transformed(a, 'crop'));
    writeFileSync(join(dir, 'a-mirror.jpg'), await transformed(a, 'mirror'));
    writeFileSync(join(dir, 'b.jpg'), b);
    writeFileSync(join(dir, 'b-small.jpg'), await transformed(b, 'recompress'));
    writeFileSync(join(dir, 'c.jpg'), await syntheticImage(9));
    writeFileSync(join(dir, 'd.jpg'), await syntheticImage(10));

    const [pipeline, encoder, search, matching] = (await freePorts(4)).map(String);
    const report = join(tmp, 'out', 'report.html');
    const r = await run(
      ['scan', dir, '--out', report, '--port', pipeline!, '--encoder-port', encoder!, '--search-port', search!, '--matching-port', matching!],
      { DOPPEL_HOME: join(tmp, 'home'), MODEL_PATH: ensureTestModel() },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /2 duplicate groups/);

    const json = JSON.parse(readFileSync(join(tmp, 'out', 'report.json'), 'utf8')) as { groups: Array<{ members: string[] }> };
    const groups = json.groups.map((g) => [...g.members].sort());
    assert.deepEqual(groups.sort((x, y) => x[0]!.localeCompare(y[0]!)), [['a-mirror.jpg', 'a.jpg', 'more/a-crop.jpg'], ['b-small.jpg', 'b.jpg']]);

    // The stack it started is gone: nothing answers on the pipeline port any more.
    await assert.rejects(fetch(`http://127.0.0.1:${pipeline}/healthz`));

    // A fresh profile per run (playwright takes it as the persistent context's user-data-dir).
    const browser = await chromium.launchPersistentContext(join(tmp, 'chromium-profile'), {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage();
      const external: string[] = [];
      page.on('request', (req) => { if (!req.url().startsWith('data:') && !req.url().startsWith('file:')) external.push(req.url()); });
      await page.goto(pathToFileURL(report).href);
      assert.equal(await page.locator('section.group').count(), 2);
      assert.equal(await page.locator('#group-count').textContent(), '2');
      const sizes = await page.locator('section.group').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-size'))));
      assert.deepEqual(sizes, [3, 2]);
      const loaded = await page.locator('section.group img').evaluateAll((imgs) => imgs.map((i) => (i as unknown as { naturalWidth: number }).naturalWidth > 0));
      assert.deepEqual(loaded, [true, true, true, true, true]);
      const captions = await page.locator('section.group figure:not(.anchor) figcaption').allTextContents();
      assert.ok(captions.every((c) => /score [01]\.\d{3} · \d+ inliers|linked through/.test(c)), captions.join(' | '));
      assert.ok(await page.locator('section.group polygon').count() >= 1, `a matched region is drawn: ${JSON.stringify(json.groups)}`);
      assert.deepEqual(external, [], 'the report is self-contained');
    } finally {
      await browser.close();
    }
  });

  it('when a scanned file is deleted, then the next scan removes it from the index and its group shrinks away', async () => {
    const dir = join(tmp, 'photos');
    unlinkSync(join(dir, 'b-small.jpg'));
    const [pipeline, encoder, search, matching] = (await freePorts(4)).map(String);
    const r = await run(
      ['scan', dir, '--out', join(tmp, 'out2', 'report.html'), '--port', pipeline!, '--encoder-port', encoder!, '--search-port', search!, '--matching-port', matching!],
      { DOPPEL_HOME: join(tmp, 'home'), MODEL_PATH: ensureTestModel() },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /0 indexed, 6 already indexed, 1 removed \(no longer in the folder\)/);
    assert.match(r.stderr, /1 duplicate group/);
    const json = JSON.parse(readFileSync(join(tmp, 'out2', 'report.json'), 'utf8')) as { groups: Array<{ members: string[] }> };
    assert.deepEqual(json.groups.map((g) => [...g.members].sort()), [['a-mirror.jpg', 'a.jpg', 'more/a-crop.jpg']]);
  });
});
