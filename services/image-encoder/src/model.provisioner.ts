import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** The default fingerprint model (see ../shared/models/README.md). */
export const DEFAULT_MODEL = {
  fileName: 'resnet18-imagenet-layer3.onnx',
  sha256: '8d7361b00dbfed1e1d9d834b454407f76711554cb5043fd3f3e8800cec3346ce',
  /** Name it is installed under: what MODELS_NAME defaults to. */
  installName: 'resnet18.onnx',
} as const;

export interface ProvisionOptions {
  /** Where the model goes, e.g. <repo>/models/resnet18.onnx. */
  dest: string;
  sha256: string;
  /** Local mirror directory holding `fileName`. */
  mirrorDir?: string;
  fileName?: string;
  /** Download source (connected machines); takes precedence over the mirror. */
  url?: string;
  timeoutMs?: number;
}

export interface ProvisionResult {
  path: string;
  source: 'existing' | 'mirror' | 'url';
  sha256: string;
}

export class ProvisionError extends Error {}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

/** Streams `input` to a temporary file next to `dest`, checks the hash, then renames. */
async function install(input: Readable, dest: string, expected: string, what: string): Promise<string> {
  await mkdir(dirname(dest), { recursive: true });
  const tmp = `${dest}.${process.pid}.download`;
  const h = createHash('sha256');
  const hashing = new Transform({ transform(chunk: Buffer, _enc, cb) { h.update(chunk); cb(null, chunk); } });
  try {
    await pipeline(input, hashing, createWriteStream(tmp));
    const got = h.digest('hex');
    if (got !== expected) throw new ProvisionError(`${what} has sha256 ${got}, expected ${expected}; not installed`);
    await rename(tmp, dest);
    return got;
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Puts a verified copy of the model at `dest`: kept when already there with the right
 * hash, else downloaded from `url` or copied from `mirrorDir`. Never installs a file
 * whose sha256 differs from the expected one.
 */
export async function provisionModel(opts: ProvisionOptions): Promise<ProvisionResult> {
  const expected = opts.sha256.toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(expected)) throw new ProvisionError(`expected sha256 must be 64 hex digits, got ${JSON.stringify(opts.sha256)}`);
  const existing = await stat(opts.dest).catch(() => undefined);
  if (existing?.isFile() && (await sha256File(opts.dest)) === expected) return { path: opts.dest, source: 'existing', sha256: expected };
  if (opts.url) {
    const res = await fetch(opts.url, { signal: AbortSignal.timeout(opts.timeoutMs ?? 600_000), redirect: 'follow' });
    if (!res.ok || !res.body) throw new ProvisionError(`download of ${opts.url} failed: HTTP ${res.status}`);
    const got = await install(Readable.fromWeb(res.body), opts.dest, expected, opts.url);
    return { path: opts.dest, source: 'url', sha256: got };
  }
  if (!opts.mirrorDir) throw new ProvisionError('no source: give a mirror directory or a URL');
  const src = join(opts.mirrorDir, opts.fileName ?? DEFAULT_MODEL.fileName);
  const st = await stat(src).catch(() => undefined);
  if (!st?.isFile()) throw new ProvisionError(`no model file at ${src}`);
  const got = await install(createReadStream(src), opts.dest, expected, src);
  return { path: opts.dest, source: 'mirror', sha256: got };
}
