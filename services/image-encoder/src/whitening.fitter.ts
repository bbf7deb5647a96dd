import { readdir, rename, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import type { EncoderConfig } from '@doppel/schemas';
import { createLogger, serve } from '@doppel/service-kit';
import { buildService } from './app.js';
import { modelPathFrom } from './model-path.config.js';
import { sha256File } from './model.provisioner.js';
import { fitWhitening, type WhiteningFile } from './pca-whitening.transform.js';

export interface FitFolderOptions {
  /** Fit images, searched recursively; the first `limit` of the sorted list are used. */
  dir: string;
  limit: number;
  /** Eigenvalue exponent: 0.5 is full whitening. */
  alpha: number;
  out: string;
  /** Appended to `fitted_on` (where the images came from). */
  provenance?: string;
}

/**
 * Fits the PCA whitening on the fingerprints of a folder of images as this encoder computes
 * them (its configuration, whitening off, through its own /encode/batch on a loopback port)
 * and writes it, with the checksum of the model it belongs to, atomically to `out`.
 */
export async function fitWhiteningOnFolder(config: Readonly<EncoderConfig>, opts: FitFolderOptions): Promise<{ file: WhiteningFile; images: number; seconds: number }> {
  const dir = resolve(opts.dir);
  const files = (await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((d) => d.isFile() && /\.(jpe?g|png|webp)$/i.test(d.name))
    .map((d) => relative(dir, join(d.parentPath, d.name)))
    .sort()
    .slice(0, opts.limit);
  if (files.length < 2) throw new Error(`fewer than 2 images in ${dir}`);
  const service = await buildService({ ...config, IMAGES_ROOT: dir, WHITENING_PATH: 'none' });
  const srv = await serve(service.app, { port: 0, host: '127.0.0.1', logger: createLogger('fit-whitening', 'warn') });
  let rows: Float32Array | undefined;
  let n = 0;
  const t0 = performance.now();
  try {
    for (let i = 0; i < files.length; i += 32) {
      const items = files.slice(i, i + 32).map((f) => ({ relative_path: f }));
      const r = await fetch(`http://127.0.0.1:${srv.port}/encode/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ items }) });
      if (!r.ok) throw new Error(`encoding the fit images failed: HTTP ${r.status} ${await r.text()}`);
      const body = await r.json() as { response: { results: Array<{ fingerprint?: number[] }> } };
      for (const res of body.response.results) {
        if (!res.fingerprint) continue;
        rows ??= new Float32Array(files.length * res.fingerprint.length);
        rows.set(res.fingerprint, n * res.fingerprint.length);
        n++;
      }
    }
  } finally {
    await srv.close();
    await service.close();
  }
  if (!rows || n < 2) throw new Error(`fewer than 2 of the ${files.length} images under ${dir} encoded`);
  const dimension = service.model.dimension;
  const modelPath = modelPathFrom(config);
  const fitted = fitWhitening(rows.subarray(0, n * dimension), dimension, opts.alpha, 1e-3, `${n} images${opts.provenance ? ` ${opts.provenance}` : ` under ${dir}`}`);
  const file: WhiteningFile = { ...fitted, model: service.model.name, model_sha256: await sha256File(modelPath) };
  const tmp = `${opts.out}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(file));
  await rename(tmp, opts.out);
  return { file, images: n, seconds: (performance.now() - t0) / 1000 };
}
