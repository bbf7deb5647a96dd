import { readdir } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { AppError } from '@doppel/service-kit';
import { resolveImagePath, resolveRootPath, type ResolvedImage } from './root-path.resolve.js';

/** What the encoder can decode (sharp); anything else in a folder is not an image to index. */
export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif']);

export const isImageFile = (name: string): boolean => {
  const dot = name.lastIndexOf('.');
  return dot > 0 && IMAGE_EXTENSIONS.has(name.slice(dot).toLowerCase());
};

/** Relative paths are ids shared by all services: always forward slashes. */
export const toId = (rel: string): string => rel.split(sep).join('/');

export interface FileStamp {
  relative_path: string;
  size: number;
  mtime_ms: number;
}

/** What indexing records of a resolved file (whole milliseconds, as stored next to its vector). */
export const fileStamp = (f: ResolvedImage): FileStamp => ({ relative_path: f.id, size: f.size, mtime_ms: Math.floor(f.mtimeMs) });

async function statFile(root: string, rel: string): Promise<FileStamp> {
  return fileStamp(await resolveImagePath(root, rel));
}

/**
 * Image files under a folder (resolved like any client path: 403 out of the root, 404
 * missing), as canonical ids, sorted so runs (and progress) are deterministic. Hidden
 * entries are skipped; symlinks found while walking are not followed.
 */
export async function listImages(root: string, relDir: string, recursive: boolean): Promise<string[]> {
  const dir = await resolveRootPath(root, relDir);
  if (!dir.stats.isDirectory()) throw new AppError('IMAGE_NOT_FOUND', `${relDir}: is not a folder`);
  const out: string[] = [];
  const walk = async (real: string, id: string): Promise<void> => {
    for (const e of await readdir(real, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const childId = id === '.' ? e.name : `${id}/${e.name}`;
      if (e.isDirectory()) {
        if (recursive) await walk(join(real, e.name), childId);
      } else if (e.isFile() && isImageFile(e.name)) {
        out.push(childId);
      }
    }
  };
  await walk(dir.real, dir.id);
  return out.sort();
}

/** Expands a file or folder under the root into stamped image files. */
export async function collectFiles(root: string, rel: string, recursive: boolean): Promise<FileStamp[]> {
  const p = await resolveRootPath(root, rel);
  if (p.stats.isFile()) return [{ relative_path: p.id, size: p.stats.size, mtime_ms: Math.floor(p.stats.mtimeMs) }];
  if (!p.stats.isDirectory()) throw new AppError('IMAGE_NOT_FOUND', `${rel}: is not a regular file or folder`);
  const files = await listImages(root, rel, recursive);
  return Promise.all(files.map((f) => statFile(root, f)));
}

/** Stamps a list of files; a missing or refused one comes back as an error, not a throw. */
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
