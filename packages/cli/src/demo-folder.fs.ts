import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A small folder with duplicates for a first run, copied from the dev benchmark: ten
 * originals, each with three of its copies (a different mix per original, spread over
 * two folders the way downloads and edits pile up), and four originals without copies.
 */
const TRANSFORMS = ['jpeg30_scale50', 'crop_center70', 'thumb200', 'hflip', 'border_text', 'rot90ccw', 'gray', 'crop_offset60', 'screenshot', 'watermark', 'rot10', 'meme'];
const WITH_COPIES = 10;
const ALONE = 4;
const COPIES_EACH = 3;

export function buildDemoFolder(devSet: string, dir: string): { created: boolean; files: number; originals: number; copies: number } {
  if (existsSync(dir)) return { created: false, files: 0, originals: 0, copies: 0 };
  const index = join(devSet, 'index');
  const queries = join(devSet, 'queries');
  if (!existsSync(index) || !existsSync(queries)) {
    throw new Error(`demo: ${devSet} is not the dev benchmark (no index/ and queries/); pass --from DIR or scan your own folder with doppel scan DIR`);
  }
  const originals = readdirSync(index).filter((n) => /\.(jpe?g|png|webp)$/i.test(n)).sort();
  const copies = new Set(readdirSync(queries));
  const stem = (n: string) => n.replace(/\.[^.]+$/, '');
  let nOriginals = 0;
  let nCopies = 0;
  mkdirSync(join(dir, 'camera'), { recursive: true });
  mkdirSync(join(dir, 'downloads'), { recursive: true });
  mkdirSync(join(dir, 'edits'), { recursive: true });
  // Every other original (even positions in the sorted list), so the demo is not just the first few.
  const picked = originals.filter((_, i) => i % 2 === 0).slice(0, WITH_COPIES + ALONE);
  picked.forEach((name, i) => {
    copyFileSync(join(index, name), join(dir, 'camera', name));
    nOriginals += 1;
    if (i >= WITH_COPIES) return;
    for (let k = 0; k < COPIES_EACH; k++) {
      const t = TRANSFORMS[(i * COPIES_EACH + k) % TRANSFORMS.length]!;
      const copy = `${stem(name)}__${t}.jpg`;
      if (!copies.has(copy)) continue;
      copyFileSync(join(queries, copy), join(dir, k === 0 ? 'downloads' : 'edits', copy));
      nCopies += 1;
    }
  });
  return { created: true, files: nOriginals + nCopies, originals: nOriginals, copies: nCopies };
}
