import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { syntheticImage, transformed } from './helpers/images.fixture.js';
import { buildReport, collectFacts, groupPairs, loadDecisions, stateDirFor } from '@doppel/cli';

/*
 * `doppel apply` and `doppel undo` on a temporary folder, through the real CLI (no
 * services needed: they act on the scan's JSON report or on actions exported from the page).
 */
const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const tmp = realpathSync(mkdtempSync(join(tmpdir(), 'doppel-apply-')));
after(() => rmSync(tmp, { recursive: true, force: true }));
const home = join(tmp, 'home');

function doppel(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, 'packages', 'cli', 'bin', 'doppel.mjs'), ...args], { env: { ...process.env, DOPPEL_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('exit', (code) => resolve({ code, out }));
  });
}

/** Every file under dir with its sha256 and mtime: what "touches nothing" and "byte for byte" compare. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[relative(dir, p)] = `${createHash('sha256').update(readFileSync(p)).digest('hex')} ${Math.floor(statSync(p).mtimeMs)}`;
    }
  };
  walk(dir);
  return out;
}

describe('doppel apply / undo', () => {
  const photos = join(tmp, 'photos');
  const quarantine = join(tmp, 'quarantine');
  const report = join(tmp, 'report.json');

  it('when apply runs without --yes, then it prints the plan and touches nothing', async () => {
    mkdirSync(join(photos, 'sub'), { recursive: true });
    const a = await syntheticImage(21);
    writeFileSync(join(photos, 'a.jpg'), a);
    writeFileSync(join(photos, 'a-small.jpg'), await transformed(a, 'recompress'));
    writeFileSync(join(photos, 'sub', 'a-mirror.jpg'), await transformed(a, 'mirror'));
    const b = await syntheticImage(22);
    writeFileSync(join(photos, 'b.jpg'), b);
    writeFileSync(join(photos, 'sub', 'b-crop.jpg'), await transformed(b, 'crop'));
    const full = [[0, 0], [1, 0], [1, 1], [0, 1]];
    const groups = groupPairs([
      { query: 'a-small.jpg', match: 'a.jpg', score: 0.9, inliers: 60, region: full },
      { query: 'sub/a-mirror.jpg', match: 'a.jpg', score: 0.8, inliers: 50, region: full },
      { query: 'sub/b-crop.jpg', match: 'b.jpg', score: 0.8, inliers: 50, region: [[0.12, 0.12], [0.88, 0.12], [0.88, 0.88], [0.12, 0.88]] },
    ], 'all');
    const { facts } = await collectFacts(photos, ['a.jpg', 'a-small.jpg', 'sub/a-mirror.jpg', 'b.jpg', 'sub/b-crop.jpg']);
    const r = buildReport({ root: photos, folder: photos, generatedAt: new Date().toISOString(), filesScanned: 5, groups, facts });
    assert.deepEqual(r.groups.map((g) => g.keeper).sort(), ['a.jpg', 'b.jpg']);
    writeFileSync(report, JSON.stringify(r));

    const before = snapshot(photos);
    const dry = await doppel(['apply', report, '--move-to', quarantine]);
    assert.equal(dry.code, 0, dry.out);
    assert.match(dry.out, /dry run: would move 3 files/);
    assert.match(dry.out, /move sub\/b-crop\.jpg -> /);
    assert.deepEqual(snapshot(photos), before);
    assert.equal(existsSync(quarantine), false);
    const del = await doppel(['apply', report, '--delete']);
    assert.match(del.out, /dry run: would delete 3 files/);
    assert.deepEqual(snapshot(photos), before);
  });

  it('when apply --yes runs and one file changed since the scan, then exactly the other non-keepers move and the changed one is refused', async () => {
    const before = snapshot(photos);
    appendFileSync(join(photos, 'sub', 'a-mirror.jpg'), Buffer.from([0]));
    const run = await doppel(['apply', report, '--move-to', quarantine, '--yes']);
    assert.equal(run.code, 2, run.out);
    assert.match(run.out, /refused: sub\/a-mirror\.jpg: changed since the scan/);
    assert.deepEqual(Object.keys(snapshot(quarantine)).filter((p) => !p.endsWith('.undo.json')).sort(), ['a-small.jpg', 'sub/b-crop.jpg']);
    assert.deepEqual(Object.keys(snapshot(photos)).sort(), ['a.jpg', 'b.jpg', 'sub/a-mirror.jpg']);
    assert.equal(snapshot(quarantine)['a-small.jpg'], before['a-small.jpg'], 'moved byte for byte, mtime kept');
    const manifest = /undo manifest: (\S+\.undo\.json)/.exec(run.out)?.[1];
    assert.ok(manifest && existsSync(manifest), run.out);

    const undo = await doppel(['undo', manifest]);
    assert.equal(undo.code, 0, undo.out);
    assert.match(undo.out, /restored 2 files/);
    const now = snapshot(photos);
    for (const p of ['a.jpg', 'a-small.jpg', 'b.jpg', 'sub/b-crop.jpg']) assert.equal(now[p], before[p], `${p} restored byte for byte`);
    // A second undo finds nothing to put back and overwrites nothing.
    const again = await doppel(['undo', manifest]);
    assert.equal(again.code, 2);
    assert.match(again.out, /restored 0 files/);
  });

  it('when actions exported from the page mark a group keep-all, then apply moves only the chosen files and remembers the decision', async () => {
    const r = JSON.parse(readFileSync(report, 'utf8')) as { groups: Array<{ id: number; members: string[] }>; images: Record<string, { bytes: number; mtime_ms: number }> };
    const files = Object.fromEntries(Object.entries(r.images).map(([p, f]) => [p, { bytes: f.bytes, mtime_ms: f.mtime_ms }]));
    files['sub/a-mirror.jpg'] = { bytes: statSync(join(photos, 'sub', 'a-mirror.jpg')).size, mtime_ms: Math.floor(statSync(join(photos, 'sub', 'a-mirror.jpg')).mtimeMs) };
    const ga = r.groups.find((g) => g.members.includes('a.jpg'))!;
    const gb = r.groups.find((g) => g.members.includes('b.jpg'))!;
    const actions = {
      kind: 'doppel-actions', version: 1, root: photos, files,
      groups: [
        // The person kept the crop instead of the original.
        { group: gb.id, decision: 'remove', keep: ['sub/b-crop.jpg'], remove: ['b.jpg'] },
        { group: ga.id, decision: 'keep-all', keep: ga.members, remove: [] },
      ],
    };
    const file = join(tmp, 'doppel-actions.json');
    writeFileSync(file, JSON.stringify(actions));
    const run = await doppel(['apply', file, '--move-to', join(tmp, 'q2'), '--yes']);
    assert.equal(run.code, 0, run.out);
    assert.deepEqual(Object.keys(snapshot(join(tmp, 'q2'))).filter((p) => !p.endsWith('.undo.json')), ['b.jpg']);
    const decisions = loadDecisions(stateDirFor(home, photos));
    assert.deepEqual(decisions.map((d) => [d.decision, Object.keys(d.files).sort()]), [['keep-all', [...ga.members].sort()]]);
  });

  it('when the file is not an actions file, or names a path outside the folder, then apply refuses it naming the problem', async () => {
    const bad = join(tmp, 'bad.json');
    writeFileSync(bad, JSON.stringify({ kind: 'doppel-actions', version: 1, root: photos, files: {}, groups: [{ group: 1, decision: 'burn', keep: [], remove: [] }] }));
    const r1 = await doppel(['apply', bad, '--move-to', quarantine]);
    assert.equal(r1.code, 1);
    assert.match(r1.out, /bad\.json: not a doppel scan report or actions file: groups\[0\]\.decision/);
    writeFileSync(bad, JSON.stringify({ kind: 'doppel-actions', version: 1, root: photos, files: { '../x.jpg': { bytes: 1, mtime_ms: 1 } }, groups: [{ group: 1, decision: 'remove', keep: ['a.jpg'], remove: ['../x.jpg'] }] }));
    const r2 = await doppel(['apply', bad, '--move-to', quarantine]);
    assert.match(r2.out, /group 1: "\.\.\/x\.jpg" is not a path inside/);
    writeFileSync(bad, '{not json');
    assert.match((await doppel(['apply', bad, '--move-to', quarantine])).out, /bad\.json: not a JSON file/);
    assert.match((await doppel(['apply', report])).out, /--move-to DIR/);
    assert.match((await doppel(['apply', report, '--move-to', join(photos, 'q')])).out, /dry run/);
    assert.match((await doppel(['apply', report, '--move-to', join(photos, 'q'), '--yes'])).out, /inside the scanned folder/);
  });
});
