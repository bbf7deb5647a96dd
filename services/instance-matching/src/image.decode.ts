/** Decoding with sharp (libvips runs off the event loop): working-size grey image and dense thumbnail. */
import sharp from 'sharp';
import { decodeImage as decodeSource } from '@doppel/image-source';
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

export async function decodeImage(input: Buffer, limits: DecodeLimits): Promise<DecodedImage> {
  // image-source checks bytes, format (SVG 415, as in the encoder), pixels and the decode
  // deadline, and maps failures to 413/415/422 the same way for every service.
  return decodeSource(input, limits, async ({ image }) => {
    const [grey, thumb] = await Promise.all([
      rawGrey(image.clone().resize({ width: limits.width, height: limits.height, fit: 'inside', withoutEnlargement: true })),
      rawGrey(image.clone().resize({ width: limits.thumbSize, height: limits.thumbSize, fit: 'fill' })),
    ]);
    return { grey, thumb };
  });
}
