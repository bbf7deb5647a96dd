import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import pLimit from 'p-limit';
import sharp from 'sharp';

/**
 * Raster images taken from Debian packages (`apt-get download` + `dpkg -x`, no install):
 * the distractor benchmark (bench/distractors/build.ts) and the whitening fit that
 * `pnpm models` makes (scripts/provision-whitening.ts) both select and decode images this way.
 */
const run = promisify(execFile);

/** The distractor benchmark's packages: game art and clipart indexed beside the dev originals. */
export const DISTRACTOR_PACKAGES = [
  'megaglest-data', 'hedgewars-data', 'widelands-data', 'neverball-data', 'extremetuxracer-data',
  'openclipart-png', 'wesnoth-1.16-data', 'supertux-data', 'freedroidrpg-data',
] as const;

/**
 * The default model's whitening fit images: none of the distractor packages (so a benchmark
 * with them measures a fit that never saw them) and no wallpaper or OpenCV sample package
 * (where the dev originals come from). Space-game sprites, planets and landscape photos,
 * cartoon puzzle art, fantasy game art and Tux Paint's photo and clipart stamps: 2,426 images
 * of at least 100 px at bookworm's versions, 423 MB of packages. Chosen on the calibration half
 * of dev v3 among five candidate packages (image-encoder README).
 */
export const WHITENING_FIT_PACKAGES = ['endless-sky-data', 'fillets-ng-data', 'flare-game', 'tuxpaint-stamps-default'] as const;

export interface DebianImageSource {
  /** The package it came from. */
  pkg: string;
  /** Where the package was extracted. */
  root: string;
  file: string;
}

export interface ExtractedPackage {
  pkg: string;
  /** The .deb's file name: package, version and architecture. */
  deb: string;
  sha256: string;
  root: string;
}

/**
 * Downloads each package's .deb into `scratch/debs` and extracts it under `scratch/x/<pkg>`.
 * Needs the apt lists (`apt-get update`, done by scripts/setup.sh); installs nothing.
 */
export async function downloadPackages(packages: string[], scratch: string): Promise<ExtractedPackage[]> {
  const debsDir = join(scratch, 'debs');
  await mkdir(debsDir, { recursive: true });
  try {
    await run('apt-get', ['download', ...packages], { cwd: debsDir, maxBuffer: 64 << 20 });
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new Error(`apt-get download ${packages.join(' ')} failed (are the apt lists there? \`apt-get update\`): ${(err.stderr ?? err.message).trim().split('\n').slice(-2).join(' ')}`);
  }
  const debs = (await readdir(debsDir)).filter((f) => f.endsWith('.deb'));
  const out: ExtractedPackage[] = [];
  for (const pkg of packages) {
    const deb = debs.filter((d) => d.startsWith(`${pkg}_`)).sort().at(-1);
    if (!deb) throw new Error(`apt-get download gave no .deb for ${pkg}`);
    const root = join(scratch, 'x', pkg);
    await rm(root, { recursive: true, force: true });
    await mkdir(root, { recursive: true });
    await run('dpkg', ['-x', join(debsDir, deb), root]);
    const { stdout } = await run('sha256sum', [join(debsDir, deb)]);
    out.push({ pkg, deb, sha256: stdout.split(' ')[0]!, root });
  }
  return out;
}

/** Every PNG/JPEG of the extracted packages, sorted by path (the order does not depend on the file system). */
export async function rasterFiles(packages: Array<Pick<ExtractedPackage, 'pkg' | 'root'>>): Promise<DebianImageSource[]> {
  const sources: DebianImageSource[] = [];
  for (const { pkg, root } of packages) {
    for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
      if (e.isFile() && /\.(png|jpe?g)$/i.test(e.name)) sources.push({ pkg, root, file: join(e.parentPath, e.name) });
    }
  }
  return sources.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

export interface CollectOptions {
  minSide: number;
  maxSide: number;
  concurrency: number;
  /** Keys (first 10 hex digits of the pixel hash) already taken: their duplicates are dropped. */
  seen?: Set<string>;
}

/** One selected image: its pixels composited on white, downscaled, and re-encoded as JPEG (quality 90). */
export interface CollectedImage {
  source: DebianImageSource;
  /** First 10 hex digits of the sha1 of the decoded pixels: unique and stable across runs. */
  key: string;
  jpeg: Buffer;
  /** A readable file name: `<pkg>__<key>__<tail of the path>.jpg`. */
  name: string;
}

export interface CollectCounts { written: number; small: number; duplicate: number; failed: number }

// Game maps and texture atlases can decode to gigabytes: refuse anything above ~64 Mpx
// (8k x 8k) before decoding, and give libvips a deadline per image.
const LIMIT_INPUT_PIXELS = 64_000_000;
const TIMEOUT_SECONDS = 20;

/**
 * Decodes each source under the guards above, keeps those whose sides are both >= minSide,
 * flattens transparency on white, downscales to <= maxSide and drops exact duplicates
 * (hash of the decoded, downscaled pixels); `onImage` gets each kept image. Undecodable
 * files and those over the limits are counted, never thrown.
 */
export async function collectImages(sources: DebianImageSource[], opts: CollectOptions, onImage: (img: CollectedImage) => Promise<void>): Promise<CollectCounts> {
  sharp.concurrency(1);
  sharp.cache(false);
  const seen = opts.seen ?? new Set<string>();
  const counts: CollectCounts = { written: 0, small: 0, duplicate: 0, failed: 0 };
  const convert = async (src: DebianImageSource): Promise<CollectedImage | undefined> => {
    const open = () => sharp(src.file, { limitInputPixels: LIMIT_INPUT_PIXELS, failOn: 'error', pages: 1 }).timeout({ seconds: TIMEOUT_SECONDS });
    const meta = await open().metadata();
    if (!meta.width || !meta.height || meta.width < opts.minSide || meta.height < opts.minSide) { counts.small += 1; return undefined; }
    const { data, info } = await open()
      .flatten({ background: '#ffffff' })
      .resize({ width: opts.maxSide, height: opts.maxSide, fit: 'inside', withoutEnlargement: true })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    const key = createHash('sha1').update(`${info.width}x${info.height}x${info.channels}`).update(data).digest('hex').slice(0, 10);
    if (seen.has(key)) { counts.duplicate += 1; return undefined; }
    seen.add(key);
    const jpeg = await sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } }).jpeg({ quality: 90 }).toBuffer();
    const tail = relative(src.root, src.file).replace(/^usr\/share\/(games\/)?/, '').replace(/\.[^.]+$/, '').replace(/[^A-Za-z0-9._-]+/g, '_').slice(-60);
    return { source: src, key, jpeg, name: `${src.pkg}__${key}__${tail}.jpg` };
  };
  await pLimit(Math.max(1, opts.concurrency)).map(sources, async (src) => {
    let img: CollectedImage | undefined;
    try { img = await convert(src); } catch { counts.failed += 1; }
    // Outside the try: a failure to keep an image (a full disk) is the caller's, not the file's.
    if (img) { await onImage(img); counts.written += 1; }
  });
  return counts;
}

/** Orders collected image names by their pixel hash: any prefix is a sample across the packages. */
export const byPixelHash = (a: string, b: string): number => {
  const ka = a.split('__')[1] ?? a;
  const kb = b.split('__')[1] ?? b;
  return ka < kb ? -1 : ka > kb ? 1 : a < b ? -1 : a > b ? 1 : 0;
};
