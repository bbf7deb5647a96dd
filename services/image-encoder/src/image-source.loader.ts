import { open, realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import type { EncodeRequest } from '@doppel/schemas';
import { AppError } from '@doppel/service-kit';
import { realLocation } from '@doppel/image-source';
import type { UrlFetcher } from '@doppel/service-kit';

export interface ImageSourceOptions {
  /** Real path of IMAGES_ROOT (symlinks resolved once at start). */
  imagesRoot: string;
  maxImageBytes: number;
  urls: UrlFetcher;
}

/** Exactly one of these is set (the schema guarantees it for JSON; multipart gives `upload`). */
export type ImageSource = Pick<EncodeRequest, 'relative_path' | 'image_base64' | 'url'> & { upload?: Buffer };

const inside = (root: string, p: string) => {
  const rel = relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
};

/**
 * Reads a file under the images root. `..`, absolute paths and NUL are refused as
 * invalid; a path whose real location (after symlinks) leaves the root is forbidden.
 */
export async function readUnderRoot(relPath: string, opts: ImageSourceOptions): Promise<Buffer> {
  if (relPath.includes('\0')) throw new AppError('INVALID_REQUEST', 'relative_path: must not contain NUL');
  if (isAbsolute(relPath) || relPath.startsWith('/') || relPath.startsWith('\\') || /^[A-Za-z]:/.test(relPath)) {
    throw new AppError('INVALID_REQUEST', 'relative_path: must be relative to the images root');
  }
  if (relPath.split(/[\\/]/).includes('..')) throw new AppError('INVALID_REQUEST', 'relative_path: must not contain ".." segments');
  const lexical = resolve(opts.imagesRoot, relPath);
  let located: { real: string; exists: boolean };
  try {
    located = await realLocation(lexical);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new AppError('FORBIDDEN_PATH', `image ${relPath} is a symlink loop`);
    throw new AppError('IMAGE_NOT_FOUND', `image ${relPath} cannot be read (${code ?? 'error'})`);
  }
  const real = located.real;
  // Outside first, missing second: a missing file behind a link out is as forbidden as an existing one.
  if (!inside(opts.imagesRoot, real) && real !== opts.imagesRoot) {
    throw new AppError('FORBIDDEN_PATH', `image ${relPath} points outside the images root`);
  }
  if (!located.exists) throw new AppError('IMAGE_NOT_FOUND', `image ${relPath} not found`);
  const fh = await open(real, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new AppError('IMAGE_NOT_FOUND', `image ${relPath} cannot be opened (${e.code ?? 'error'})`);
  });
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new AppError('IMAGE_NOT_FOUND', `image ${relPath} is not a file`);
    if (st.size > opts.maxImageBytes) throw new AppError('PAYLOAD_TOO_LARGE', `image ${relPath} has ${st.size} bytes, more than the ${opts.maxImageBytes} allowed`);
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

const BASE64 = /^[A-Za-z0-9+/\r\n]*={0,2}\s*$/;

export function decodeBase64(data: string, maxBytes: number): Buffer {
  // Size first: a huge string is refused before any decoding work.
  if (Math.floor((data.length * 3) / 4) > maxBytes + 3) throw new AppError('PAYLOAD_TOO_LARGE', `image_base64 decodes to more than the ${maxBytes} bytes allowed`);
  const body = data.startsWith('data:') ? data.slice(data.indexOf(',') + 1) : data;
  if (!BASE64.test(body)) throw new AppError('INVALID_REQUEST', 'image_base64: is not valid base64');
  const buf = Buffer.from(body, 'base64');
  if (buf.length === 0) throw new AppError('INVALID_REQUEST', 'image_base64: is empty');
  if (buf.length > maxBytes) throw new AppError('PAYLOAD_TOO_LARGE', `image_base64 decodes to more than the ${maxBytes} bytes allowed`);
  return buf;
}

export async function loadImage(src: ImageSource, opts: ImageSourceOptions): Promise<Buffer> {
  if (src.upload) {
    if (src.upload.length > opts.maxImageBytes) throw new AppError('PAYLOAD_TOO_LARGE', 'uploaded image is too large');
    return src.upload;
  }
  if (src.relative_path !== undefined) return readUnderRoot(src.relative_path, opts);
  if (src.image_base64 !== undefined) return decodeBase64(src.image_base64, opts.maxImageBytes);
  if (src.url !== undefined) return opts.urls.fetch(src.url);
  throw new AppError('INVALID_REQUEST', 'exactly one of relative_path, image_base64, url is required');
}

/** Resolves the images root once so later containment checks compare real paths. */
export async function resolveImagesRoot(root: string): Promise<string> {
  try {
    return await realpath(root);
  } catch {
    return resolve(root);
  }
}
