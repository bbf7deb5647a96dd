import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { estimateJpegQuality } from '../src/jpeg-quality.logic.js';
import { inverseRegion, overlap, type Quad } from '../src/region.geometry.js';
import { chooseKeeper, containment, framedKey, parseKeepRule } from '../src/keeper.logic.js';
import { framedLinks, marginIsDecoration } from '../src/margin.measure.js';
import { imageFacts, type ImageFacts } from '../src/image-facts.fs.js';
import { loadDecisions, rememberDecisions, standingDecision } from '../src/scan-decisions.store.js';
import { buildReport, summaryLines } from '../src/scan-report.model.js';
import { groupPairs, type ScanPair } from '../src/scan-groups.logic.js';

const tmp = mkdtempSync(join(tmpdir(), 'doppel-keeper-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const noise = (w: number, h: number) => sharp({ create: { width: w, height: h, channels: 3, background: { r: 128, g: 128, b: 128 }, noise: { type: 'gaussian', mean: 128, sigma: 40 } } });
const facts = (p: string, o: Partial<ImageFacts>): ImageFacts => ({ relative_path: p, width: 1000, height: 800, format: 'jpeg', bytes: 100_000, mtime_ms: 1_700_000_000_000, jpeg_quality: 90, ...o });
// A 70% centre crop of `match`: its corners inside the match.
const CROP: Quad = [[0.15, 0.15], [0.85, 0.15], [0.85, 0.85], [0.15, 0.85]];
const FULL: Quad = [[0.01, 0], [1, 0.01], [0.99, 1], [0, 0.99]];

describe('JPEG quality from quantisation tables', () => {
  for (const q of [30, 50, 75, 92]) {
    it(`when sharp writes quality ${q}, then the estimate is ${q}`, async () => {
      const buf = await noise(64, 48).jpeg({ quality: q }).toBuffer();
      assert.equal(estimateJpegQuality(buf), q);
    });
  }
  it('when the bytes are a PNG or truncated, then there is no estimate', async () => {
    assert.equal(estimateJpegQuality(await noise(8, 8).png().toBuffer()), undefined);
    assert.equal(estimateJpegQuality(Buffer.from([0xff, 0xd8, 0xff])), undefined);
  });
});

describe('matched-region geometry', () => {
  it('when the query is a centre crop, then it lies wholly inside and covers 49% of the match', () => {
    const o = overlap(CROP);
    assert.ok(Math.abs(o.matchCovered - 0.49) < 1e-9);
    assert.equal(o.queryInside, 1);
  });
  it('when the region is read backwards, then the match corners land outside the crop by the crop margin', () => {
    const inv = inverseRegion(CROP)!;
    // 0 in the match is at (0 - 0.15) / 0.7 in the crop.
    assert.ok(Math.abs(inv[0]![0] + 0.15 / 0.7) < 1e-3 && Math.abs(inv[2]![1] - 0.85 / 0.7) < 1e-3, JSON.stringify(inv));
    assert.deepEqual(inverseRegion([[0, 0], [0, 0], [0, 0], [0, 0]]), undefined);
  });
});

describe('keeper choice', () => {
  const group = (pairs: ScanPair[]) => groupPairs(pairs, 'all')[0]!;
  it('when one member is a crop of the other, then the original is kept even with fewer pixels and bytes', () => {
    const g = group([{ query: 'crop.jpg', match: 'orig.jpg', score: 0.9, inliers: 80, region: CROP }]);
    const f = new Map([['crop.jpg', facts('crop.jpg', { width: 2000, height: 1600, bytes: 900_000 })], ['orig.jpg', facts('orig.jpg', {})]]);
    assert.deepEqual([...containment(g).holds.get('orig.jpg')!], ['crop.jpg']);
    const k = chooseKeeper(g, f);
    assert.equal(k.keeper, 'orig.jpg');
    assert.match(k.reason, /contains the other copy \(a crop of it\)/);
  });
  it('when a crop was verified only against a re-encoded full-frame copy, then the original still holds it and quality decides', () => {
    const g = group([
      { query: 'meme.jpg', match: 'orig.jpg', score: 0.9, inliers: 200, region: FULL },
      { query: 'crop.jpg', match: 'meme.jpg', score: 0.9, inliers: 80, region: CROP },
    ]);
    const f = new Map([['orig.jpg', facts('orig.jpg', { jpeg_quality: 90 })], ['meme.jpg', facts('meme.jpg', { jpeg_quality: 85 })], ['crop.jpg', facts('crop.jpg', {})]]);
    assert.deepEqual([...containment(g).holds.get('orig.jpg')!].sort(), ['crop.jpg', 'meme.jpg']);
    const k = chooseKeeper(g, f);
    assert.equal(k.keeper, 'orig.jpg');
    assert.match(k.reason, /^its picture contains crop\.jpg \(a crop of it\); least compressed \(JPEG quality ~90\)$/);
  });
  it('when the crop is the query of the other direction, then containment is read from the region backwards', () => {
    const g = group([{ query: 'orig.jpg', match: 'crop.jpg', score: 0.9, inliers: 80, region: inverseRegion(CROP)! }]);
    assert.equal(chooseKeeper(g, new Map([['crop.jpg', facts('crop.jpg', { width: 4000 })], ['orig.jpg', facts('orig.jpg', {})]])).keeper, 'orig.jpg');
  });
  it('when full-frame copies differ in size, then the one with most pixels is kept, then the least compressed', () => {
    const g = group([{ query: 'a.jpg', match: 'b.jpg', score: 0.9, inliers: 80, region: FULL }, { query: 'c.png', match: 'b.jpg', score: 0.9, inliers: 80, region: FULL }]);
    const f = new Map([
      ['a.jpg', facts('a.jpg', { width: 500, height: 400, bytes: 900_000 })],
      ['b.jpg', facts('b.jpg', { jpeg_quality: 60, bytes: 50_000 })],
      ['c.png', facts('c.png', { format: 'png', jpeg_quality: undefined, bytes: 80_000 })],
    ]);
    const k = chooseKeeper(g, f);
    assert.equal(k.keeper, 'c.png');
    assert.match(k.reason, /least compressed \(lossless png\)/);
    // The rule is configurable: the largest file first.
    assert.equal(chooseKeeper(g, f, parseKeepRule('bytes', undefined)).keeper, 'a.jpg');
    // A re-encode at high quality beats a low-quality original of the same size; ties go to the oldest.
    f.set('b.jpg', facts('b.jpg', { jpeg_quality: 95, mtime_ms: 1_600_000_000_000 }));
    f.set('c.png', facts('c.png', { jpeg_quality: 95, mtime_ms: 1_700_000_000_000 }));
    const old = chooseKeeper(g, f, parseKeepRule('pixels,quality,oldest', undefined));
    assert.equal(old.keeper, 'b.jpg');
    assert.match(old.reason, /oldest \(modified 2020-09-13\)/);
  });
  it('when a keep rule names an unknown criterion, then it is refused by name', () => {
    assert.throws(() => parseKeepRule('pixels,biggest', undefined), /unknown criterion "biggest"/);
  });
  it('when an image is read from disk, then its facts carry pixels, format, bytes and the JPEG quality', async () => {
    writeFileSync(join(tmp, 'x.jpg'), await noise(120, 90).jpeg({ quality: 81 }).toBuffer());
    const f = await imageFacts(tmp, 'x.jpg');
    assert.deepEqual({ w: f.width, h: f.height, format: f.format, q: f.jpeg_quality }, { w: 120, h: 90, format: 'jpeg', q: 81 });
    assert.ok(f.bytes > 0 && f.mtime_ms > 0);
  });
});

describe('captions and frames are not more picture', () => {
  const W = 400;
  const H = 300;
  const BAR = 60;
  // A picture of many colours: noise under a few coloured shapes.
  const picture = async () => noise(W, H).composite([{ input: Buffer.from(`<svg width="${W}" height="${H}"><circle cx="120" cy="140" r="70" fill="#c03020"/><rect x="230" y="60" width="120" height="170" fill="#2050b0"/></svg>`) }]).jpeg({ quality: 90 }).toBuffer();
  // The dev set's border_text: white bars above and below with black text on them.
  const captioned = async (img: Buffer) => sharp(img).extend({ top: BAR, bottom: BAR, background: '#ffffff' })
    .composite([{ input: Buffer.from(`<svg width="${W}" height="${H + 2 * BAR}"><text x="20" y="42" font-size="30" font-family="sans-serif" fill="#000">WHEN YOU SEE IT</text><text x="60" y="${H + 2 * BAR - 18}" font-size="30" font-family="sans-serif" fill="#000">so true</text></svg>`) }])
    .jpeg({ quality: 85 }).toBuffer();
  // An app window: a grey title bar with a few icons and a thin dark frame of another colour.
  const framed = async (img: Buffer) => sharp(img).extend({ top: 50, bottom: 12, left: 12, right: 12, background: '#d8d8d8' })
    .composite([{ input: Buffer.from('<svg width="424" height="362"><circle cx="24" cy="25" r="8" fill="#e04040"/><circle cx="48" cy="25" r="8" fill="#e0c040"/><rect x="300" y="15" width="100" height="20" fill="#ffffff"/></svg>') }])
    .png().toBuffer();
  const t = BAR / (H + 2 * BAR);
  const ORIGINAL_IN_CAPTIONED: Quad = [[0, t], [1, t], [1, 1 - t], [0, 1 - t]];
  const ORIGINAL_IN_FRAMED: Quad = [[12 / 424, 50 / 362], [412 / 424, 50 / 362], [412 / 424, 350 / 362], [12 / 424, 350 / 362]];

  it('when a copy only adds caption bars or an app frame, then its margin is decoration; a crop\'s original margin is not', async () => {
    const img = await picture();
    writeFileSync(join(tmp, 'pic.jpg'), img);
    writeFileSync(join(tmp, 'pic-caption.jpg'), await captioned(img));
    writeFileSync(join(tmp, 'pic-frame.png'), await framed(img));
    assert.equal(await marginIsDecoration(join(tmp, 'pic-caption.jpg'), ORIGINAL_IN_CAPTIONED), true);
    assert.equal(await marginIsDecoration(join(tmp, 'pic-frame.png'), ORIGINAL_IN_FRAMED), true);
    // The original around a 70% centre crop is more of the picture.
    assert.equal(await marginIsDecoration(join(tmp, 'pic.jpg'), CROP), false);
    // A product shot on flat white: the white around a 70% crop is flat too, but it runs on
    // into the crop's own edge, so it is more of the background, not a bar.
    const product = await sharp({ create: { width: W, height: H, channels: 3, background: '#ffffff' } })
      .composite([{ input: await noise(140, 110).png().toBuffer(), left: 130, top: 95 }]).jpeg({ quality: 90 }).toBuffer();
    writeFileSync(join(tmp, 'product.jpg'), product);
    assert.equal(await marginIsDecoration(join(tmp, 'product.jpg'), CROP), false);
    // A region covering the whole picture leaves nothing to judge.
    assert.equal(await marginIsDecoration(join(tmp, 'pic.jpg'), [[0, 0], [1, 0], [1, 1], [0, 1]]), undefined);
  });

  it('when a group holds an original, its captioned copy and a crop, then the original is kept and the reason names the bars', async () => {
    const img = await picture();
    writeFileSync(join(tmp, 'g-orig.jpg'), img);
    writeFileSync(join(tmp, 'g-caption.jpg'), await captioned(img));
    writeFileSync(join(tmp, 'g-crop.jpg'), await sharp(img).extract({ left: 60, top: 45, width: 280, height: 210 }).jpeg().toBuffer());
    const g = groupPairs([
      // The original found inside the captioned copy, and the crop inside the original.
      { query: 'g-orig.jpg', match: 'g-caption.jpg', score: 0.9, inliers: 90, region: ORIGINAL_IN_CAPTIONED },
      { query: 'g-crop.jpg', match: 'g-orig.jpg', score: 0.9, inliers: 60, region: CROP },
    ], 'all')[0]!;
    const f = new Map([
      ['g-orig.jpg', facts('g-orig.jpg', { width: W, height: H })],
      // More pixels and a higher quality: the captioned copy would win on every other criterion.
      ['g-caption.jpg', facts('g-caption.jpg', { width: W, height: H + 2 * BAR, jpeg_quality: 95 })],
      ['g-crop.jpg', facts('g-crop.jpg', { width: 280, height: 210 })],
    ]);
    // Without the margin evidence the captioned copy "contains" the original.
    assert.equal(chooseKeeper(g, f).keeper, 'g-caption.jpg');
    const links = await framedLinks(tmp, [g]);
    assert.deepEqual([...links], [framedKey('g-caption.jpg', 'g-orig.jpg')]);
    const k = chooseKeeper(g, f, undefined, links);
    assert.equal(k.keeper, 'g-orig.jpg');
    assert.match(k.reason, /contains g-crop\.jpg \(a crop of it\); g-caption\.jpg is this picture plus plain bars or a frame/);
    assert.deepEqual([...containment(g, links).holds.get('g-orig.jpg')!].sort(), ['g-caption.jpg', 'g-crop.jpg']);
  });
});

describe('decisions and the report summary', () => {
  const pairs: ScanPair[] = [{ query: 'a.jpg', match: 'b.jpg', score: 0.8, inliers: 30, region: FULL }, { query: 'c.jpg', match: 'd.jpg', score: 0.7, inliers: 20, region: CROP }];
  const f = new Map(['a.jpg', 'b.jpg', 'c.jpg', 'd.jpg'].map((p, i) => [p, facts(p, { bytes: 1000 * (i + 1) })]));
  it('when a group was marked not duplicates, then the next report hides it until one of its files changes', () => {
    const state = join(tmp, 'state');
    const groups = groupPairs(pairs);
    const first = buildReport({ root: '/r', folder: '/r', generatedAt: 't', filesScanned: 4, groups, facts: f });
    assert.equal(first.summary.groups, 2);
    assert.equal(first.summary.reclaimable_bytes, first.groups.reduce((n, g) => n + g.reclaimable_bytes, 0));
    const ab = first.groups.find((g) => g.members.includes('a.jpg'))!;
    rememberDecisions(state, [{ decision: 'not-duplicates', decided_at: 'now', files: Object.fromEntries(ab.members.map((m) => [m, { bytes: f.get(m)!.bytes, mtime_ms: f.get(m)!.mtime_ms }])) }]);
    const second = buildReport({ root: '/r', folder: '/r', generatedAt: 't', filesScanned: 4, groups, facts: f, decisions: loadDecisions(state) });
    assert.deepEqual(second.groups.map((g) => [...g.members].sort()), [['c.jpg', 'd.jpg']]);
    assert.equal(second.summary.dismissed_groups, 1);
    assert.match(summaryLines(second).join('\n'), /1 duplicate group \(2 images\) among 4: 1 redundant file, .* reclaimable\n1 group hidden by earlier decisions/);
    const changed = new Map(f).set('b.jpg', facts('b.jpg', { bytes: 5 }));
    assert.equal(standingDecision(['a.jpg', 'b.jpg'], (m) => changed.get(m), loadDecisions(state)), undefined);
    assert.equal(buildReport({ root: '/r', folder: '/r', generatedAt: 't', filesScanned: 4, groups, facts: changed, decisions: loadDecisions(state) }).groups.length, 2);
  });
});
