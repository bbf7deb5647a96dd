/**
 * Builds the distractor set: unrelated raster art from Debian game-data packages, to index
 * beside the dev originals so candidate recall is measured at a realistic collection size.
 *   node --conditions=source --import tsx bench/distractors/build.ts [--out DIR] [--scratch DIR]
 *        [--packages a,b,c] [--max-side 800] [--min-side 100] [--force | --append]
 * Steps: `apt-get download` the packages into the scratch folder (outside the repo), `dpkg -x`
 * them, take every PNG/JPEG whose sides are both >= min-side, composite transparency on white,
 * downscale to <= max-side, drop exact duplicates (hash of the decoded, downscaled pixels) and
 * write JPEGs to --out (default /work/distractors). The images never go into the repo.
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { collectImages, DISTRACTOR_PACKAGES, downloadPackages, rasterFiles } from '@doppel/image-encoder';

const { values: args } = parseArgs({
  options: {
    out: { type: 'string', default: '/work/distractors' },
    scratch: { type: 'string', default: '/tmp/doppel-distractors' },
    packages: { type: 'string', default: DISTRACTOR_PACKAGES.join(',') },
    'max-side': { type: 'string', default: '800' },
    'min-side': { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '2' },
    force: { type: 'boolean', default: false },
    // Add packages to an existing set (duplicates against it are dropped too).
    append: { type: 'boolean', default: false },
  },
});
const out = resolve(args.out);
const scratch = resolve(args.scratch);
const packages = args.packages.split(',').map((p) => p.trim()).filter(Boolean);
const maxSide = Number(args['max-side']);
const minSide = Number(args['min-side']);
const concurrency = Math.max(1, Number(args.concurrency));
const t0 = performance.now();
const existing = await readdir(out).catch(() => [] as string[]);
if (existing.length > 0 && !args.append) {
  if (!args.force) throw new Error(`${out} is not empty (${existing.length} entries): pass --force to rebuild it`);
  await rm(out, { recursive: true, force: true });
}
await mkdir(out, { recursive: true });

const extracted = await downloadPackages(packages, scratch);
const sources = await rasterFiles(extracted);
console.log(`${sources.length} PNG/JPEG files in ${packages.length} packages [${((performance.now() - t0) / 1000).toFixed(0)} s]`);

// Names carry the first 10 hex digits of the pixel hash: enough to key duplicates, and
// what lets --append know the images already there.
const seen = new Set<string>(existing.map((f) => f.split('__')[1] ?? '').filter((h) => h.length === 10));
const perPackage = new Map<string, number>();
const counts = await collectImages(sources, { minSide, maxSide, concurrency, seen }, async (img) => {
  await writeFile(join(out, img.name), img.jpeg);
  perPackage.set(img.source.pkg, (perPackage.get(img.source.pkg) ?? 0) + 1);
});

const seconds = (performance.now() - t0) / 1000;
const total = (await readdir(out)).length;
console.log(`${counts.written} distractor images written to ${out} in ${seconds.toFixed(0)} s`
  + ` (skipped: ${counts.small} under ${minSide} px, ${counts.duplicate} exact duplicates, ${counts.failed} undecodable/over limit)`);
console.log(`${total} images in ${out}`);
console.log('per package: ' + [...perPackage].map(([p, n]) => `${p} ${n}`).join(', '));
