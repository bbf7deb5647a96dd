import sharp from 'sharp';
import { AppError } from '@doppel/service-kit';
import { requireAcceptedFormat } from './image-format.check.js';

export interface DecodeLimits {
  /** Pixels of the first frame, checked from the header before any pixel is decoded. */
  maxPixels: number;
  /** Encoded bytes (sources already bounded by MAX_IMAGE_BYTES may leave it out). */
  maxBytes?: number;
  /** Seconds libvips may spend on one image: one pathological file cannot hold a libuv thread. */
  timeoutSeconds?: number;
}

export const DECODE_TIMEOUT_S = 10;

/** The one mapping of a decoding failure to the catalogue: 413 pixels, 415 no known format, 422 the rest. */
export function decodeFailure(e: unknown): AppError {
  if (e instanceof AppError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  if (/pixel limit/i.test(msg)) return new AppError('PAYLOAD_TOO_LARGE', 'image has more pixels than allowed');
  if (/unsupported image format/i.test(msg)) return new AppError('UNSUPPORTED_MEDIA_TYPE', 'data is not an image in an accepted format (jpeg, png, webp, gif, tiff, avif, heif)');
  if (/timeout/i.test(msg)) return new AppError('UNDECODABLE_IMAGE', 'image did not decode in the time allowed');
  return new AppError('UNDECODABLE_IMAGE', `image could not be decoded: ${msg.split('\n')[0]}`);
}

export interface OpenedImage {
  /** First frame, EXIF orientation applied, alpha flattened on white; clone() it for several outputs. */
  image: sharp.Sharp;
  format: string;
  width: number;
  height: number;
}

/**
 * Every rule before decoding, from the header only: byte limit (413), format allow-list
 * (SVG and non-photo formats 415), pixel limit of the first frame (413, so a decompression
 * bomb stops here), no pixels (422). The pipeline returned keeps the pixel limit and the
 * timeout for the real decode; run its output through decodeImage (or map errors with
 * decodeFailure).
 */
export async function openImage(input: Buffer, limits: DecodeLimits): Promise<OpenedImage> {
  if (limits.maxBytes !== undefined && input.byteLength > limits.maxBytes) throw new AppError('PAYLOAD_TOO_LARGE', `image is larger than the ${limits.maxBytes} bytes allowed`);
  let meta: sharp.Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw decodeFailure(e);
  }
  requireAcceptedFormat(meta.format);
  const width = meta.width ?? 0;
  const height = meta.pageHeight ?? meta.height ?? 0;
  if (width * height > limits.maxPixels) throw new AppError('PAYLOAD_TOO_LARGE', `image has ${width}x${height} pixels, more than the ${limits.maxPixels} allowed`);
  if (width * height === 0) throw new AppError('UNDECODABLE_IMAGE', 'image has no pixels');
  const image = sharp(input, { failOn: 'error', limitInputPixels: limits.maxPixels, pages: 1, page: 0 })
    .timeout({ seconds: limits.timeoutSeconds ?? DECODE_TIMEOUT_S })
    .rotate()
    .flatten({ background: '#ffffff' });
  return { image, format: meta.format!, width, height };
}

/** openImage, then the caller's outputs; any failure comes back as the catalogue's 413/415/422. */
export async function decodeImage<T>(input: Buffer, limits: DecodeLimits, render: (opened: OpenedImage) => Promise<T>): Promise<T> {
  const opened = await openImage(input, limits);
  try {
    return await render(opened);
  } catch (e) {
    throw decodeFailure(e);
  }
}
