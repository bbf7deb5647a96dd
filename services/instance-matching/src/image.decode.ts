/** Decoding with sharp (libvips runs off the event loop): working-size grey image and dense thumbnail. */
import sharp from 'sharp';
import { requireAcceptedFormat } from '@doppel/image-source';
import { AppError } from '@doppel/service-kit';
import type { GreyImage } from './opencv.binding.js';

export interface DecodeLimits {
  maxPixels: number;
  maxBytes: number;
  /** Working size: the image is shrunk (never enlarged) to fit in width x height. */
  width: number;
  height: number;
  /** Side of the square thumbnail used by the dense check. */
  thumbSize: number;
}

export interface DecodedImage {
  grey: GreyImage;
  thumb: GreyImage;
}

async function rawGrey(pipeline: sharp.Sharp): Promise<GreyImage> {
  const { data, info } = await pipeline.toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  if (info.channels === 1) return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  const out = new Uint8Array(info.width * info.height);
  for (let i = 0; i < out.length; i++) out[i] = data[i * info.channels]!;
  return { width: info.width, height: info.height, data: out };
}

/** Seconds libvips may spend decoding one image before it is answered 422. */
const DECODE_TIMEOUT_S = 10;

export async function decodeImage(input: Buffer, limits: DecodeLimits): Promise<DecodedImage> {
  if (input.byteLength > limits.maxBytes) throw new AppError('PAYLOAD_TOO_LARGE', `image is larger than ${limits.maxBytes} bytes`);
  let meta: sharp.Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: false }).metadata();
  } catch {
    throw new AppError('UNDECODABLE_IMAGE', 'image data could not be decoded');
  }
  // The same allow-list as the encoder's: SVG is 415 here too, never rendered.
  requireAcceptedFormat(meta.format);
  const pixels = (meta.width ?? 0) * (meta.height ?? 0);
  // Checked from the header, before any pixel is decoded: a decompression bomb stops here.
  if (pixels > limits.maxPixels) throw new AppError('PAYLOAD_TOO_LARGE', `image has ${pixels} pixels, more than ${limits.maxPixels}`);
  if (pixels === 0) throw new AppError('UNDECODABLE_IMAGE', 'image has no pixels');
  try {
    // A deadline on libvips' work, so one pathological file cannot hold a libuv thread.
    const base = sharp(input, { limitInputPixels: limits.maxPixels, failOn: 'error' }).timeout({ seconds: DECODE_TIMEOUT_S }).rotate().flatten({ background: '#ffffff' });
    const [grey, thumb] = await Promise.all([
      rawGrey(base.clone().resize({ width: limits.width, height: limits.height, fit: 'inside', withoutEnlargement: true })),
      rawGrey(base.clone().resize({ width: limits.thumbSize, height: limits.thumbSize, fit: 'fill' })),
    ]);
    return { grey, thumb };
  } catch (e) {
    if (e instanceof AppError) throw e;
    throw new AppError('UNDECODABLE_IMAGE', 'image data could not be decoded', { cause: e });
  }
}
