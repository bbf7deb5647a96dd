import { existsSync, readFileSync } from 'node:fs';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';

/**
 * PCA whitening of fingerprints (issue #12): y = P (x - mean), then L2-normalised, with
 * P = diag(lambda^-alpha) U^T from the covariance of a fit set of fingerprints. Centring
 * removes the direction every CNN fingerprint shares (the reason flat, generic pictures sit
 * close to everything), and dividing by the spread of each principal direction stops the
 * few high-variance directions (colour, overall brightness) from drowning the rest.
 * Fitted without labels on images that are not queries or their originals.
 */
export interface WhiteningFile {
  format: 'doppel-pca-whitening/1';
  dimension: number;
  alpha: number;
  /** How many fingerprints, from where. */
  fitted_on: string;
  mean: number[];
  /** Row-major dimension x dimension. */
  projection: number[];
  /** The model whose fingerprints it was fitted on: its file name and the sha256 of its bytes. */
  model?: string;
  model_sha256?: string;
}

export interface Whitening {
  readonly dimension: number;
  /** The whitened unit vector of a fingerprint. */
  apply(v: ArrayLike<number>): number[];
}

/**
 * Fits on n row vectors of `dimension` (back to back). alpha 0.5 is full whitening; each
 * eigenvalue is floored at `floor` x the largest, so near-empty directions are not blown up.
 */
export function fitWhitening(rows: Float32Array, dimension: number, alpha = 0.5, floor = 1e-3, fittedOn = ''): WhiteningFile {
  const n = rows.length / dimension;
  if (!Number.isInteger(n) || n < 2) throw new Error(`whitening needs at least 2 vectors of ${dimension} values`);
  const mean = new Float64Array(dimension);
  for (let i = 0; i < n; i++) for (let d = 0; d < dimension; d++) mean[d]! += rows[i * dimension + d]! / n;
  // Upper triangle in a flat array: Matrix.get/set per product would be ~50x slower.
  const acc = new Float64Array(dimension * dimension);
  const x = new Float64Array(dimension);
  for (let i = 0; i < n; i++) {
    for (let d = 0; d < dimension; d++) x[d] = rows[i * dimension + d]! - mean[d]!;
    for (let a = 0; a < dimension; a++) {
      const va = x[a]!;
      for (let b = a; b < dimension; b++) acc[a * dimension + b]! += va * x[b]!;
    }
  }
  const cov = new Matrix(dimension, dimension);
  for (let a = 0; a < dimension; a++) {
    for (let b = a; b < dimension; b++) {
      cov.set(a, b, acc[a * dimension + b]! / (n - 1));
      cov.set(b, a, acc[a * dimension + b]! / (n - 1));
    }
  }
  const evd = new EigenvalueDecomposition(cov, { assumeSymmetric: true });
  const lambda = evd.realEigenvalues;
  const u = evd.eigenvectorMatrix;
  const least = Math.max(...lambda) * floor;
  const projection = new Array<number>(dimension * dimension);
  for (let r = 0; r < dimension; r++) {
    const w = Math.max(lambda[r]!, least) ** -alpha;
    for (let d = 0; d < dimension; d++) projection[r * dimension + d] = w * u.get(d, r);
  }
  return { format: 'doppel-pca-whitening/1', dimension, alpha, fitted_on: fittedOn, mean: Array.from(mean), projection };
}

export function whiteningFrom(file: WhiteningFile): Whitening {
  const { dimension } = file;
  const mean = Float64Array.from(file.mean);
  const p = Float64Array.from(file.projection);
  const x = new Float64Array(dimension);
  return {
    dimension,
    apply(v) {
      for (let d = 0; d < dimension; d++) x[d] = v[d]! - mean[d]!;
      const y = new Array<number>(dimension);
      let ss = 0;
      for (let r = 0; r < dimension; r++) {
        let s = 0;
        const row = r * dimension;
        for (let d = 0; d < dimension; d++) s += p[row + d]! * x[d]!;
        y[r] = s;
        ss += s * s;
      }
      const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
      for (let r = 0; r < dimension; r++) y[r]! *= inv;
      return y;
    },
  };
}

/** Where `pnpm models` puts a model's fit: beside it, `x.onnx` -> `x.pca.json` (and `pnpm quantize` the int8 model's, `x.int8.pca.json`). */
export function whiteningPathFor(modelPath: string): string {
  return modelPath.replace(/(\.onnx)?$/i, '.pca.json');
}

/** The command that writes the fit at `path`: the int8 model's comes from `pnpm quantize`. */
const refitCommand = (path: string) => (/\.int8\.pca\.json$/i.test(path) ? '`pnpm quantize`' : '`pnpm models`');

/**
 * Reads and checks a file written by `pnpm models`, `pnpm quantize` or `fit-whitening`; errors name the file.
 * A file that records its model's checksum must belong to this model (`modelSha256`);
 * with `requireChecksum`, one that records none is refused too.
 */
export function loadWhitening(path: string, dimension: number, modelSha256?: string, requireChecksum = false): Whitening {
  const refit = refitCommand(path);
  let f: WhiteningFile;
  try {
    f = JSON.parse(readFileSync(path, 'utf8')) as WhiteningFile;
  } catch (e) {
    throw new Error(`WHITENING_PATH=${path}: ${(e as Error).message}`);
  }
  const ok = f.format === 'doppel-pca-whitening/1' && f.dimension === dimension
    && Array.isArray(f.mean) && f.mean.length === dimension && f.mean.every(Number.isFinite)
    && Array.isArray(f.projection) && f.projection.length === dimension * dimension && f.projection.every(Number.isFinite);
  if (!ok) throw new Error(`WHITENING_PATH=${path}: not a doppel-pca-whitening/1 file for ${dimension}-d fingerprints (file says ${String(f.dimension)}-d); fit one for this model`);
  if (requireChecksum && f.model_sha256 === undefined) {
    throw new Error(`WHITENING_PATH=${path}: records no model checksum, so it cannot be told to belong to this model. Run ${refit} from the repository root to refit it, or set WHITENING_PATH=none.`);
  }
  if (modelSha256 !== undefined && f.model_sha256 !== undefined && f.model_sha256 !== modelSha256) {
    throw new Error(`WHITENING_PATH=${path}: fitted for another model (${f.model ?? '?'}, sha256 ${f.model_sha256.slice(0, 12)}…), `
      + `not this one (sha256 ${modelSha256.slice(0, 12)}…). Run ${refit} from the repository root to refit it for this model, or set WHITENING_PATH=none (and re-index).`);
  }
  return whiteningFrom(f);
}

export type WhiteningChoice =
  | { whitening: Whitening; path: string }
  | { whitening?: undefined; path: string; missing: true }
  | { whitening?: undefined; off: true };

/**
 * What WHITENING_PATH selects. `auto` (the default): the fit beside the model when it is
 * there; it must then be this model's (a fit whose checksum names another model stops the
 * start, since it means the model file was replaced after the fit), and without it the
 * fingerprints are plain (the caller logs why). `none` or empty: plain. A path: that file,
 * which must exist and fit the model.
 */
export function chooseWhitening(setting: string, modelPath: string, dimension: number, modelSha256: () => string): WhiteningChoice {
  if (setting === 'none' || setting === '') return { off: true };
  if (setting !== 'auto') return { whitening: loadWhitening(setting, dimension, modelSha256()), path: setting };
  const path = whiteningPathFor(modelPath);
  if (!existsSync(path)) return { path, missing: true };
  return { whitening: loadWhitening(path, dimension, modelSha256(), true), path };
}
