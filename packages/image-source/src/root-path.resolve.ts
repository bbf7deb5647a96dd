import type { Stats } from 'node:fs';
import { open, realpath, stat } from 'node:fs/promises';
import { posix, resolve, sep } from 'node:path';
import { AppError } from '@doppel/service-kit';
import { isInsideDir, realLocation } from './real-location.resolve.js';

export interface ResolvedImage {
  /** Real path on disk (symlinks resolved, inside the real root). */
  file: string;
  /** Canonical id: posix separators, no `.` or empty segments (`./x` and `x` are one id). */
  id: string;
  size: number;
  mtimeMs: number;
}

/**
 * The id a relative path stands for. Every way out of the root (NUL, absolute, drive
 * letter, `..` that climbs above it) is one error: 403 FORBIDDEN_PATH, as the README states.
 */
export function canonicalId(rel: string): string {
  if (rel.includes('\0')) throw new AppError('FORBIDDEN_PATH', 'path must not contain NUL');
  const slashed = rel.replace(/\\/g, '/');
  if (slashed.startsWith('/') || /^[A-Za-z]:/.test(slashed)) throw new AppError('FORBIDDEN_PATH', `${rel}: must be relative to the image root`);
  const norm = posix.normalize(slashed).replace(/\/+$/, '');
  if (norm === '..' || norm.startsWith('../')) throw new AppError('FORBIDDEN_PATH', `${rel}: outside the image root`);
  return norm === '' ? '.' : norm;
}

export interface ResolvedPath {
  /** Real path on disk (symlinks resolved, inside the real root). */
  real: string;
  id: string;
  stats: Stats;
}

/**
 * Resolves `rel` (a file or a folder) under `root`, both through realpath, so a symlink
 * that lands outside is refused whether or not its target exists.
 */
export async function resolveRootPath(root: string, rel: string): Promise<ResolvedPath> {
  const id = canonicalId(rel);
  const rootReal = await realpath(root).catch(() => {
    throw new AppError('UNAVAILABLE', 'image root is not accessible');
  });
  let located: { real: string; exists: boolean };
  try {
    located = await realLocation(resolve(rootReal, id.split('/').join(sep)));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new AppError('FORBIDDEN_PATH', `${rel}: is a symlink loop`);
    throw new AppError('IMAGE_NOT_FOUND', `${rel} cannot be read (${code ?? 'error'})`);
  }
  const real = located.real;
  // Outside first, missing second: 403 vs 404 must not tell whether a file outside exists.
  if (!isInsideDir(rootReal, real)) throw new AppError('FORBIDDEN_PATH', `${rel}: points outside the image root`);
  if (!located.exists) throw new AppError('IMAGE_NOT_FOUND', `${rel}: no such file or folder under the image root`);
  const stats = await stat(real).catch((e: NodeJS.ErrnoException) => {
    throw new AppError('IMAGE_NOT_FOUND', `${rel} cannot be read (${e.code ?? 'error'})`);
  });
  return { real, id, stats };
}

/**
 * resolveRootPath, and the path must be a regular file: a FIFO or device would block or
 * never end, so it is answered 404 and never opened.
 */
export async function resolveImagePath(root: string, rel: string): Promise<ResolvedImage> {
  const { real, id, stats } = await resolveRootPath(root, rel);
  if (!stats.isFile()) throw new AppError('IMAGE_NOT_FOUND', `image ${rel} is not a regular file`);
  return { file: real, id, size: stats.size, mtimeMs: stats.mtimeMs };
}

export interface ReadLimits {
  maxBytes: number;
  /** A read that takes longer (a stalled network mount) fails instead of holding the request. */
  deadlineMs?: number;
}

/** resolveImagePath, then reads the file within the byte limit and the deadline. */
export async function readImageFile(root: string, rel: string, limits: ReadLimits): Promise<Buffer> {
  const f = await resolveImagePath(root, rel);
  if (f.size > limits.maxBytes) throw new AppError('PAYLOAD_TOO_LARGE', `image ${rel} has ${f.size} bytes, more than the ${limits.maxBytes} allowed`);
  const fh = await open(f.file, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new AppError('IMAGE_NOT_FOUND', `image ${rel} cannot be opened (${e.code ?? 'error'})`);
  });
  try {
    // Checked again on the open descriptor: the path may have been swapped since the stat.
    if (!(await fh.stat()).isFile()) throw new AppError('IMAGE_NOT_FOUND', `image ${rel} is not a regular file`);
    const signal = AbortSignal.timeout(limits.deadlineMs ?? 30_000);
    const buf = await fh.readFile({ signal }).catch((e: Error) => {
      if (e.name === 'AbortError' || e.name === 'TimeoutError') throw new AppError('UNAVAILABLE', `image ${rel}: read did not finish in time`);
      throw new AppError('IMAGE_NOT_FOUND', `image ${rel} cannot be read`);
    });
    if (buf.length > limits.maxBytes) throw new AppError('PAYLOAD_TOO_LARGE', `image ${rel} is larger than the ${limits.maxBytes} bytes allowed`);
    return buf;
  } finally {
    await fh.close();
  }
}
