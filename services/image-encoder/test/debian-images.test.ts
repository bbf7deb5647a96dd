import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { byPixelHash, collectImages, DISTRACTOR_PACKAGES, rasterFiles, WHITENING_FIT_PACKAGES, type CollectedImage } from '../src/debian-images.collector.js';
import { drawJpeg, tempDir } from './helpers.js';

describe('image-encoder: images taken from extracted Debian packages (distractors, whitening fit)', () => {
  const root = tempDir('doppel-debimg-');
  after(() => rmSync(root, { recursive: true, force: true }));

  it('when a package holds small, duplicate, transparent, large and corrupt images, then only the usable ones are kept, once each, on white and at most max-side', async () => {
    const dir = join(root, 'usr', 'share', 'games', 'pkg', 'art');
    mkdirSync(dir, { recursive: true });
    // 200 x 150, left half transparent.
    const rgba = Buffer.alloc(200 * 150 * 4);
    for (let i = 0; i < 200 * 150; i++) { const x = i % 200; rgba.set(x < 100 ? [0, 0, 0, 0] : [200, 30, 30, 255], i * 4); }
    const transparent = await sharp(rgba, { raw: { width: 200, height: 150, channels: 4 } }).png().toBuffer();
    writeFileSync(join(dir, 'a.png'), transparent);
    writeFileSync(join(dir, 'b-copy.png'), transparent);
    writeFileSync(join(dir, 'thin.png'), await sharp({ create: { width: 50, height: 300, channels: 3, background: '#336699' } }).png().toBuffer());
    writeFileSync(join(dir, 'big.jpg'), await drawJpeg(1200, 900, 3));
    writeFileSync(join(dir, 'broken.png'), transparent.subarray(0, 60));
    writeFileSync(join(dir, 'notes.txt'), 'not an image');

    const sources = await rasterFiles([{ pkg: 'pkg', root }]);
    assert.deepEqual(sources.map((s) => s.file.replace(`${dir}/`, '')), ['a.png', 'b-copy.png', 'big.jpg', 'broken.png', 'thin.png']);
    const kept: CollectedImage[] = [];
    const counts = await collectImages(sources, { minSide: 100, maxSide: 800, concurrency: 2 }, async (img) => { kept.push(img); });
    assert.deepEqual(counts, { written: 2, small: 1, duplicate: 1, failed: 1 });
    const names = kept.map((k) => k.name).sort(byPixelHash);
    for (const n of names) assert.match(n, /^pkg__[0-9a-f]{10}__pkg_art_(a|b-copy|big)\.jpg$/);
    const big = kept.find((k) => k.name.endsWith('big.jpg'))!;
    const meta = await sharp(big.jpeg).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', 800, 600]);
    const small = kept.find((k) => !k.name.endsWith('big.jpg'))!;
    const { data } = await sharp(small.jpeg).raw().toBuffer({ resolveWithObject: true });
    assert.ok(data[0]! > 245 && data[1]! > 245 && data[2]! > 245, 'transparency composited on white');
  });

  it('when the whitening fit packages are listed, then none of them is a distractor package', () => {
    assert.ok(WHITENING_FIT_PACKAGES.length > 0);
    for (const p of WHITENING_FIT_PACKAGES) assert.ok(!(DISTRACTOR_PACKAGES as readonly string[]).includes(p), p);
  });
});
