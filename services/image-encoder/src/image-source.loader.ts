import { realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import { decodeBase64, readImageFile, type UrlFetcher } from '@doppel/image-source';
import type { EncodeRequest } from '@doppel/schemas';
import { AppError } from '@doppel/service-kit';

export interface ImageSourceOptions {
  /** Real path of IMAGES_ROOT (symlinks resolved once at start). */
  imagesRoot: string;
  maxImageBytes: number;
  urls: UrlFetcher;
}

/** Exactly one of these is set (the schema guarantees it for JSON; multipart gives `upload`). */
export type ImageSource = Pick<EncodeRequest, 'relative_path' | 'image_base64' | 'url'> & { upload?: Buffer };

export async function loadImage(src: ImageSource, opts: ImageSourceOptions): Promise<Buffer> {
  if (src.upload) {
    if (src.upload.length > opts.maxImageBytes) throw new AppError('PAYLOAD_TOO_LARGE', 'uploaded image is too large');
    return src.upload;
  }
  if (src.relative_path !== undefined) return readImageFile(opts.imagesRoot, src.relative_path, { maxBytes: opts.maxImageBytes });
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
