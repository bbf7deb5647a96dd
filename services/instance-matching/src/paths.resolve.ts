/** Resolves client-supplied relative paths under a root, refusing anything that escapes it. */
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '@doppel/service-kit';
import { realLocation } from '@doppel/image-source';

export interface ResolvedFile {
  /** Real path on disk (symlinks resolved). */
  file: string;
  size: number;
  mtimeMs: number;
}

const inside = (root: string, p: string) => p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);

export async function resolveUnder(root: string, relative: string): Promise<ResolvedFile> {
  if (relative.includes('\0')) throw new AppError('INVALID_REQUEST', 'path contains a NUL byte');
  if (path.isAbsolute(relative)) throw new AppError('FORBIDDEN_PATH', `absolute paths are not allowed: ${relative}`);
  const rootReal = await realpath(root).catch(() => {
    throw new AppError('UNAVAILABLE', 'image root is not accessible');
  });
  const lexical = path.resolve(rootReal, relative);
  if (!inside(rootReal, lexical)) throw new AppError('FORBIDDEN_PATH', `path escapes the image root: ${relative}`);
  const located = await realLocation(lexical).catch(() => {
    throw new AppError('IMAGE_NOT_FOUND', `no such image: ${relative}`);
  });
  const real = located.real;
  // A symlink inside the root may point anywhere; what counts is where it lands (for a
  // missing file, where its folder lands, so 403/404 does not reveal outside files).
  if (!inside(rootReal, real)) throw new AppError('FORBIDDEN_PATH', `path escapes the image root: ${relative}`);
  if (!located.exists) throw new AppError('IMAGE_NOT_FOUND', `no such image: ${relative}`);
  const st = await stat(real);
  if (!st.isFile()) throw new AppError('IMAGE_NOT_FOUND', `not a file: ${relative}`);
  return { file: real, size: st.size, mtimeMs: st.mtimeMs };
}
