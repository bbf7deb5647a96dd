import { AppError } from '@doppel/service-kit';

/**
 * Formats a photo arrives in. SVG (and any other vector or document format libvips can
 * render) is refused: rendering it is a fetch/CPU hazard — a few KB can ask for a blurred
 * 7000x7000 canvas — not a photo.
 */
export const ACCEPTED_IMAGE_FORMATS: ReadonlySet<string> = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif', 'heif']);

/** Throws 415 UNSUPPORTED_MEDIA_TYPE unless `format` (sharp's metadata().format) is accepted. */
export function requireAcceptedFormat(format: string | undefined): void {
  if (format === 'svg') throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'SVG images are not accepted');
  if (!format || !ACCEPTED_IMAGE_FORMATS.has(format)) throw new AppError('UNSUPPORTED_MEDIA_TYPE', `image format ${format ?? 'unknown'} is not accepted`);
}
