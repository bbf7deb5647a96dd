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
  /** Long side of the aspect-kept thumbnail of the overlap check (absent: none made). */
  overlapSide?: number;
  /**
   * An image whose long side is under this is enlarged 2x instead (0 or absent: never). A
   * 120-px thumbnail holds its detail at 1-3 px, below the scales SIFT's first octave
   * keeps stable; at twice the size the same detail is found (bench/matching/coarse-fine.bench.ts).
   */
  enlargeBelow?: number;
  /**
   * Describe the picture as if its long side were this many pixels: it is first shrunk to
   * that size (never enlarged), then takes the working-size and enlargement rules above like
   * any image of that size. So a neighbour can be seen at the resolution of a small copy
   * (absent: the picture's own size).
   */
  resampleTo?: number;
}

export interface DecodedImage {
  grey: GreyImage;
  thumb: GreyImage;
  /** Aspect-kept thumbnail (long side `overlapSide`) for the overlap check; empty when not asked for. */
  overlap: GreyImage;
  /** The same thumbnail's red, green and blue planes (the tone check, overlap.check.ts); none when not asked for. */
  colour: GreyImage[];
  /** The picture's own size (before EXIF rotation), whatever the working size. */
  width: number;
  height: number;
}

const EMPTY: GreyImage = { width: 0, height: 0, data: new Uint8Array(0) };

async function rawGrey(pipeline: sharp.Sharp): Promise<GreyImage> {
  const { data, info } = await pipeline.toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  if (info.channels === 1) return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  const out = new Uint8Array(info.width * info.height);
  for (let i = 0; i < out.length; i++) out[i] = data[i * info.channels]!;
  return { width: info.width, height: info.height, data: out };
}

/** The picture's red, green and blue planes (a grey picture gives three equal planes). */
async function rawPlanes(pipeline: sharp.Sharp): Promise<GreyImage[]> {
  const { data, info } = await pipeline.toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  const n = info.width * info.height;
  return [0, 1, 2].map((c) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = data[i * info.channels + Math.min(c, info.channels - 1)]!;
    return { width: info.width, height: info.height, data: out };
  });
}

/** The picture shrunk to fit `long` x `long`, as a new pipeline (a second resize needs the first one's pixels). */
async function shrunk(image: sharp.Sharp, long: number): Promise<sharp.Sharp> {
  const { data, info } = await image.clone().resize({ width: long, height: long, fit: 'inside' }).raw().toBuffer({ resolveWithObject: true });
  return sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } });
}

export async function decodeImage(input: Buffer, limits: DecodeLimits): Promise<DecodedImage> {
  // image-source checks bytes, format (SVG 415, as in the encoder), pixels and the decode
  // deadline, and maps failures to 413/415/422 the same way for every service.
  return decodeSource(input, limits, async ({ image: opened, width, height }) => {
    // The header's size is before EXIF rotation: only the long side is used, and 'inside' keeps the aspect.
    const own = Math.max(width, height);
    const resample = limits.resampleTo !== undefined && limits.resampleTo < own ? limits.resampleTo : undefined;
    const image = resample === undefined ? opened : await shrunk(opened, resample);
    const long = resample ?? own;
    const enlarge = long < (limits.enlargeBelow ?? 0);
    const side = limits.overlapSide ?? 0;
    const small = () => image.clone().resize({ width: side, height: side, fit: 'inside' });
    const [grey, thumb, overlap, colour] = await Promise.all([
      rawGrey(enlarge
        ? image.clone().resize({ width: 2 * long, height: 2 * long, fit: 'inside' })
        : image.clone().resize({ width: limits.width, height: limits.height, fit: 'inside', withoutEnlargement: true })),
      rawGrey(image.clone().resize({ width: limits.thumbSize, height: limits.thumbSize, fit: 'fill' })),
      side > 0 ? rawGrey(small()) : Promise.resolve(EMPTY),
      side > 0 ? rawPlanes(small()) : Promise.resolve([]),
    ]);
    return { grey, thumb, overlap, colour, width, height };
  });
}
