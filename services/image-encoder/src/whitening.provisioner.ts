import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EncoderConfig } from '@doppel/schemas';
import { collectImages, DISTRACTOR_PACKAGES, downloadPackages, rasterFiles, WHITENING_FIT_PACKAGES } from './debian-images.collector.js';
import { sha256File } from './model.provisioner.js';
import { whiteningPathFor, type WhiteningFile } from './pca-whitening.transform.js';
import { fitWhiteningOnFolder } from './whitening.fitter.js';

export interface WhiteningProvisionOptions {
  /** The encoder configuration the fit is computed with; its MODEL_PATH is the model to fit for. */
  config: Readonly<EncoderConfig>;
  modelPath: string;
  packages?: readonly string[];
  /** Fit again even when a fit for this model is there. */
  refit?: boolean;
  /** Scratch folder (default: a new one under the OS temp dir, removed after). */
  scratch?: string;
  log?: (line: string) => void;
}

export interface WhiteningProvisionResult {
  path: string;
  source: 'existing' | 'fitted';
  images?: number;
  seconds?: number;
}

/**
 * Puts the model's whitening fit beside it (`x.onnx` -> `x.pca.json`, what the encoder's
 * WHITENING_PATH=auto reads): kept when a fit for this model (same sha256) is there, else
 * made from Debian packages of images that are neither distractors nor dev images
 * (WHITENING_FIT_PACKAGES): every PNG/JPEG with both sides >= 100 px, composited on white,
 * at most 800 px, exact duplicates dropped, encoded by this encoder, PCA-whitened at alpha 0.5.
 */
export async function provisionWhitening(opts: WhiteningProvisionOptions): Promise<WhiteningProvisionResult> {
  const log = opts.log ?? (() => {});
  const packages = [...(opts.packages ?? WHITENING_FIT_PACKAGES)];
  const overlap = packages.filter((p) => (DISTRACTOR_PACKAGES as readonly string[]).includes(p));
  if (overlap.length > 0) throw new Error(`whitening fit packages must not be distractor packages: ${overlap.join(', ')}`);
  const out = whiteningPathFor(opts.modelPath);
  const modelSha = await sha256File(opts.modelPath);
  if (!opts.refit && existsSync(out)) {
    try {
      const f = JSON.parse(readFileSync(out, 'utf8')) as WhiteningFile;
      if (f.model_sha256 === modelSha) return { path: out, source: 'existing' };
    } catch { /* unreadable: fitted again below */ }
  }
  const t0 = performance.now();
  const scratch = opts.scratch ?? await mkdtemp(join(tmpdir(), 'doppel-whitening-'));
  try {
    const extracted = await downloadPackages(packages, scratch);
    const images = join(scratch, 'images');
    await mkdir(images, { recursive: true });
    const counts = await collectImages(await rasterFiles(extracted), { minSide: 100, maxSide: 800, concurrency: 2 }, (img) => writeFile(join(images, img.name), img.jpeg));
    log(`whitening fit: ${counts.written} images from ${extracted.map((e) => e.deb).join(', ')} (skipped ${counts.small} under 100 px, ${counts.duplicate} duplicates, ${counts.failed} undecodable) in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    const provenance = `from Debian packages ${extracted.map((e) => `${e.deb} (sha256 ${e.sha256})`).join(', ')}: PNG/JPEG with both sides >= 100 px, on white, <= 800 px, exact duplicates dropped`;
    const r = await fitWhiteningOnFolder({ ...opts.config, MODEL_PATH: opts.modelPath, MODEL_PRECISION: 'fp32' }, { dir: images, limit: Number.MAX_SAFE_INTEGER, alpha: 0.5, out, provenance });
    log(`whitening fit: ${r.images} fingerprints encoded and fitted in ${r.seconds.toFixed(0)} s`);
    return { path: out, source: 'fitted', images: r.images, seconds: (performance.now() - t0) / 1000 };
  } finally {
    if (!opts.scratch) await rm(scratch, { recursive: true, force: true });
  }
}
