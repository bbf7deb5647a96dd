import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ensureTestModel } from '@doppel/image-encoder/testing';
import type { ActionsFile } from '@doppel/schemas';
import { freePorts } from '@doppel/service-kit/testing';
import { syntheticImage, transformed } from './helpers/images.fixture.js';
import { openChromium } from './helpers/chromium.fixture.js';
import type { ScanReport } from '../packages/cli/src/scan-report.model.js';

/*
 * `doppel scan` on a fresh folder with nothing running: the CLI must start the stack
 * itself, write the JSON and the HTML report, and stop everything. The report is then
 * opened in headless Chromium to check that the groups are actually rendered.
 */
const repoRoot = fileURLToPath(new URL('..', import.meta.url));
// The README's screenshots are taken by this test; they are rewritten only when asked
// (DOPPEL_UPDATE_SCREENSHOTS=1), so a test run leaves the checkout as it found it.
const updateScreenshots = process.env.DOPPEL_UPDATE_SCREENSHOTS === '1';
const screenshotDir = updateScreenshots ? join(repoRoot, 'docs') : mkdtempSync(join(tmpdir(), 'doppel-screens-'));
after(() => { if (!updateScreenshots) rmSync(screenshotDir, { recursive: true, force: true }); });

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

    // The terminal summary names groups, redundant files and bytes; each group has a keeper.
    assert.match(r.stderr, /2 duplicate groups \(5 images\) among 7: 3 redundant files, [\d.]+ kB reclaimable/);
    const full = JSON.parse(readFileSync(join(tmp, 'out', 'report.json'), 'utf8')) as ScanReport;
    const groupA = full.groups.find((g) => g.members.includes('a.jpg'))!;
    // The crop lies inside its original: the original is the suggested keeper, for that reason.
    assert.equal(groupA.keeper, 'a.jpg', JSON.stringify(groupA));
    assert.match(groupA.keeper_reason, /contains/);
    assert.equal(full.summary.reclaimable_bytes, full.groups.reduce((n, g) => n + g.reclaimable_bytes, 0));
    assert.deepEqual(Object.keys(full.images).sort(), ['a-mirror.jpg', 'a.jpg', 'b-small.jpg', 'b.jpg', 'more/a-crop.jpg']);
    assert.equal(full.images['b-small.jpg']!.jpeg_quality, 35);

    const browser = await openChromium(join(tmp, 'chromium-profile'));
    try {
      const page = await browser.newPage();
      await page.setViewportSize({ width: 1280, height: 900 });
      const external: string[] = [];
      page.on('request', (req) => { if (!req.url().startsWith('data:') && !req.url().startsWith('file:') && !req.url().startsWith('blob:')) external.push(req.url()); });
      await page.goto(pathToFileURL(report).href);
      await page.locator('body[data-ready="1"]').waitFor();
      assert.equal(await page.locator('section.group').count(), 2);
      assert.equal(await page.locator('#group-count').textContent(), '2');
      // A string: tests compile without the DOM library.
      await page.waitForFunction('Array.from(document.images).every((i) => i.complete)');
      const loaded = await page.locator('section.group img').evaluateAll((imgs) => imgs.map((i) => (i as unknown as { naturalWidth: number }).naturalWidth > 0));
      assert.deepEqual(loaded, [true, true, true, true, true]);
      const captions = await page.locator('section.group figure:not(.keeper) figcaption').allTextContents();
      assert.ok(captions.every((c) => /score [01]\.\d{3} · \d+ inliers|linked through/.test(c)), captions.join(' | '));
      assert.ok(await page.locator('section.group polygon').count() >= 1, `a matched region is drawn: ${JSON.stringify(json.groups)}`);
      const shownGroups = async () => page.locator('section.group').evaluateAll((els) => els.map((e) => [...e.querySelectorAll('.path')].map((x) => x.textContent).sort().join(',')));

      // Sort: by group size, then lowest score first (the order the JSON says).
      await page.selectOption('#sort', 'size');
      assert.deepEqual(await page.locator('section.group').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-size')))), [3, 2]);
      await page.selectOption('#sort', 'score');
      const byScore = [...full.groups].sort((x, y) => x.min_score - y.min_score).map((g) => String(g.id));
      assert.deepEqual(await page.locator('section.group').evaluateAll((els) => els.map((e) => e.getAttribute('data-group'))), byScore);
      // Filter: a folder, a file name, a method.
      await page.selectOption('#folder', 'more');
      assert.deepEqual(await shownGroups(), ['a-mirror.jpg,a.jpg,more/a-crop.jpg']);
      await page.selectOption('#folder', '');
      await page.fill('#search', 'B-SMALL');
      assert.deepEqual(await shownGroups(), ['b-small.jpg,b.jpg']);
      assert.equal(await page.locator('#shown').textContent(), '1');
      await page.fill('#search', '');
      await page.selectOption('#method', 'dense');
      assert.equal(await page.locator('section.group').count(), full.groups.filter((g) => g.methods.includes('dense')).length);
      await page.selectOption('#method', '');
      await page.selectOption('#sort', 'size');
      await page.screenshot({ path: join(screenshotDir, 'report-screenshot.png') });

      // The group view: the keeper and a copy side by side, the shared region drawn on both.
      await page.locator(`section[data-group="${groupA.id}"] button[data-compare="more/a-crop.jpg"]`).click();
      assert.equal(await page.locator('#viewer').isVisible(), true);
      assert.match((await page.locator('#viewer-info').textContent())!, /score [01]\.\d{3} · \d+ inliers · (sift|dense)/);
      assert.equal(await page.locator('#pane-a polygon').count(), 1);
      assert.equal(await page.locator('#pane-b polygon').count(), 1);
      await page.waitForFunction("Array.from(document.querySelectorAll('#viewer img')).every((i) => i.complete && i.naturalWidth > 0)");
      await page.screenshot({ path: join(screenshotDir, 'report-group-view.png') });
      await page.keyboard.press('Escape');
      assert.equal(await page.locator('#viewer').isVisible(), false);

      // Choose: the crop becomes the keeper, the mirror stays too; the export says so.
      const exportJson = async () => {
        const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#export-json')]);
        return JSON.parse(readFileSync((await dl.path())!, 'utf8')) as ActionsFile;
      };
      const before = await exportJson();
      assert.deepEqual(before.groups.find((g) => g.group === groupA.id)!.keep, ['a.jpg']);
      const sec = page.locator(`section[data-group="${groupA.id}"]`);
      await sec.locator('input[type=radio][value="more/a-crop.jpg"]').check();
      await sec.locator('figure[data-path="a-mirror.jpg"] input.mark').uncheck();
      const after = await exportJson();
      const ga = after.groups.find((g) => g.group === groupA.id)!;
      assert.deepEqual({ keep: [...ga.keep].sort(), remove: ga.remove }, { keep: ['a-mirror.jpg', 'more/a-crop.jpg'], remove: ['a.jpg'] });
      assert.equal(after.root, full.root);
      assert.equal(after.files['a.jpg']!.bytes, full.images['a.jpg']!.bytes);
      const gb = full.groups.find((g) => g.members.includes('b.jpg'))!;
      await page.locator(`section[data-group="${gb.id}"] button[data-act="not-duplicates"]`).click();
      const [csvDl] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
      const rows = readFileSync((await csvDl.path())!, 'utf8').trim().split('\n').map((l) => l.split(','));
      assert.deepEqual(rows[0], ['group', 'decision', 'action', 'relative_path', 'bytes', 'mtime_ms']);
      assert.deepEqual(rows.slice(1).map((r) => `${r[1]} ${r[2]} ${r[3]}`).sort(), [
        'not-duplicates keep b-small.jpg', 'not-duplicates keep b.jpg', 'remove keep a-mirror.jpg', 'remove keep more/a-crop.jpg', 'remove move a.jpg',
      ]);
      assert.equal(await page.locator('#sel-files').textContent(), '1');
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
