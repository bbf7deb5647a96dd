import { readdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { AppError } from '@doppel/service-kit';
import { isInsideDir, realLocation } from './real-location.resolve.js';

/** What the encoder can decode (sharp); anything else in a folder is not an image to index. */
export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif']);

export const isImageFile = (name: string): boolean => {
  const dot = name.lastIndexOf('.');
  return dot > 0 && IMAGE_EXTENSIONS.has(name.slice(dot).toLowerCase());
};

/** Relative paths are ids shared by all services: always forward slashes. */
export const toId = (rel: string): string => rel.split(sep).join('/');

/** Resolves a relative path under the image root, refusing anything that escapes it. */
export function resolveUnderRoot(root: string, rel: string): string {
  if (isAbsolute(rel) || rel.includes('\0')) throw new AppError('FORBIDDEN_PATH', `${rel}: must be relative to the image root`);
  const abs = resolve(root, rel);
  const back = relative(resolve(root), abs);
  if (back.startsWith('..') || isAbsolute(back)) throw new AppError('FORBIDDEN_PATH', `${rel}: outside the image root`);
  return abs;
}

export interface FileStamp {
  relative_path: string;
  size: number;
  mtime_ms: number;
}

/**
 * resolveUnderRoot, then where the path really lands: a symlink (or a symlinked folder on
 * the way) that leaves the root is FORBIDDEN_PATH whether or not its target exists, so
 * the answer never tells whether an outside file exists.
 */
async function resolveInsideRoot(root: string, rel: string): Promise<string> {
  const abs = resolveUnderRoot(root, rel);
  const [rootReal, located] = await Promise.all([realpath(root).catch(() => resolve(root)), realLocation(abs).catch(() => undefined)]);
  if (located && !isInsideDir(rootReal, located.real)) throw new AppError('FORBIDDEN_PATH', `${rel}: outside the image root (through a symlink)`);
  return abs;
}

async function statFile(root: string, rel: string): Promise<FileStamp> {
  const s = await stat(await resolveInsideRoot(root, rel));
  return { relative_path: toId(rel), size: s.size, mtime_ms: Math.floor(s.mtimeMs) };
}

/** Image files under a folder, sorted so runs (and progress) are deterministic. Hidden entries are skipped. */
export async function listImages(root: string, relDir: string, recursive: boolean): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dirRel: string): Promise<void> => {
    const entries = await readdir(resolveUnderRoot(root, dirRel || '.'), { withFileTypes: true });
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const rel = dirRel ? `${dirRel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (recursive) await walk(rel);
      } else if (e.isFile() && isImageFile(e.name)) {
        out.push(rel);
      }
    }
  };
  await walk(relDir === '.' ? '' : relDir.replace(/\/+$/, ''));
  return out.sort();
}

/** Expands a file or folder under the root into stamped image files. */
export async function collectFiles(root: string, rel: string, recursive: boolean): Promise<FileStamp[]> {
  let s;
  try {
    s = await stat(await resolveInsideRoot(root, rel));
  } catch (e) {
    if (e instanceof AppError) throw e;
    throw new AppError('IMAGE_NOT_FOUND', `${rel}: no such file or folder under the image root`);
  }
  if (s.isFile()) return [{ relative_path: toId(rel), size: s.size, mtime_ms: Math.floor(s.mtimeMs) }];
  const files = await listImages(root, rel, recursive);
  return Promise.all(files.map((f) => statFile(root, f)));
}

/** Stamps a list of files; a missing one comes back as an error, not a throw. */
export async function stampFiles(root: string, rels: string[]): Promise<Array<FileStamp | { relative_path: string; error: AppError }>> {
  return Promise.all(rels.map(async (rel) => {
    try {
      return await statFile(root, rel);
    } catch (e) {
      const error = e instanceof AppError ? e : new AppError('IMAGE_NOT_FOUND', `${rel}: no such file under the image root`);
      return { relative_path: toId(rel), error };
    }
  }));
}

