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
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import pLimit from 'p-limit';

// bench/ is not a workspace package (yet): borrow the encoder's sharp, the one the services use.
const sharp = createRequire(new URL('../../services/image-encoder/package.json', import.meta.url))('sharp') as typeof import('sharp');

const run = promisify(execFile);
const { values: args } = parseArgs({
  options: {
    out: { type: 'string', default: '/work/distractors' },
    scratch: { type: 'string', default: '/tmp/doppel-distractors' },
    packages: { type: 'string', default: 'megaglest-data,hedgewars-data,widelands-data,neverball-data,extremetuxracer-data,openclipart-png,wesnoth-1.16-data,supertux-data,freedroidrpg-data' },
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
// Game maps and texture atlases can decode to gigabytes: refuse anything above ~64 Mpx
// (8k x 8k) before decoding, and give libvips a deadline per image.
const LIMIT_INPUT_PIXELS = 64_000_000;
const TIMEOUT_SECONDS = 20;

const t0 = performance.now();
const existing = await readdir(out).catch(() => [] as string[]);
if (existing.length > 0 && !args.append) {
  if (!args.force) throw new Error(`${out} is not empty (${existing.length} entries): pass --force to rebuild it`);
  await rm(out, { recursive: true, force: true });
}
await mkdir(out, { recursive: true });
await mkdir(join(scratch, 'debs'), { recursive: true });

await run('apt-get', ['download', ...packages], { cwd: join(scratch, 'debs'), maxBuffer: 64 << 20 });
const debs = (await readdir(join(scratch, 'debs'))).filter((f) => f.endsWith('.deb'));
const sources: Array<{ pkg: string; file: string; root: string }> = [];
for (const pkg of packages) {
  const deb = debs.find((d) => d.startsWith(`${pkg}_`));
  if (!deb) throw new Error(`apt-get download gave no .deb for ${pkg}`);
  const root = join(scratch, 'x', pkg);
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  await run('dpkg', ['-x', join(scratch, 'debs', deb), root]);
  for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (e.isFile() && /\.(png|jpe?g)$/i.test(e.name)) sources.push({ pkg, root, file: join(e.parentPath, e.name) });
  }
}
sources.sort((a, b) => (a.file < b.file ? -1 : 1));
console.log(`${sources.length} PNG/JPEG files in ${packages.length} packages [${((performance.now() - t0) / 1000).toFixed(0)} s]`);

sharp.concurrency(1);
sharp.cache(false);
// Names carry the first 10 hex digits of the pixel hash: enough to key duplicates, and
// what lets --append know the images already there.
const seen = new Set<string>(existing.map((f) => f.split('__')[1] ?? '').filter((h) => h.length === 10));
const counts = { written: 0, small: 0, duplicate: 0, failed: 0 };
const perPackage = new Map<string, number>();

async function convert(src: { pkg: string; file: string; root: string }): Promise<void> {
  const open = () => sharp(src.file, { limitInputPixels: LIMIT_INPUT_PIXELS, failOn: 'error', pages: 1 }).timeout({ seconds: TIMEOUT_SECONDS });
  const meta = await open().metadata();
  if (!meta.width || !meta.height || meta.width < minSide || meta.height < minSide) { counts.small += 1; return; }
  const { data, info } = await open()
    .flatten({ background: '#ffffff' })
    .resize({ width: maxSide, height: maxSide, fit: 'inside', withoutEnlargement: true })
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  const hash = createHash('sha1').update(`${info.width}x${info.height}x${info.channels}`).update(data).digest('hex');
  const key = hash.slice(0, 10);
  if (seen.has(key)) { counts.duplicate += 1; return; }
  seen.add(key);
  const jpeg = await sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } }).jpeg({ quality: 90 }).toBuffer();
  // The name keeps where it came from (readable) and the hash (unique, stable across runs).
  const tail = relative(src.root, src.file).replace(/^usr\/share\/(games\/)?/, '').replace(/\.[^.]+$/, '').replace(/[^A-Za-z0-9._-]+/g, '_').slice(-60);
  await writeFile(join(out, `${src.pkg}__${key}__${tail}.jpg`), jpeg);
  counts.written += 1;
  perPackage.set(src.pkg, (perPackage.get(src.pkg) ?? 0) + 1);
}

await pLimit(concurrency).map(sources, async (src) => {
  try { await convert(src); } catch { counts.failed += 1; }
});

const seconds = (performance.now() - t0) / 1000;
const total = (await readdir(out)).length;
console.log(`${counts.written} distractor images written to ${out} in ${seconds.toFixed(0)} s`
  + ` (skipped: ${counts.small} under ${minSide} px, ${counts.duplicate} exact duplicates, ${counts.failed} undecodable/over limit)`);
console.log(`${total} images in ${out}`);
console.log('per package: ' + [...perPackage].map(([p, n]) => `${p} ${n}`).join(', '));
