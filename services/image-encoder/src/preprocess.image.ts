import sharp from 'sharp';
import { decodeImage as decodeSource } from '@doppel/image-source';
import { AppError } from '@doppel/service-kit';
import { contentBox } from './border-trim.image.js';

export interface PreprocessOptions {
  /** Side of the square model input. */
  size: number;
  /** 'whole': squash the whole image to the square; 'center-crop': largest centred square. */
  mode: 'whole' | 'center-crop';
  maxPixels: number;
  /** Cut uniform borders, bars and frames off before resizing (border-trim.image.ts). */
  trim?: boolean;
}

/** Long side of the thumbnail the borders are looked for in: a 1-2 px bar of a 1000 px image still shows. */
const TRIM_PROBE = 256;

/** The picture inside its uniform frame, in the coordinates of the decoded image. */
async function trimmedBox(rgb: Buffer, width: number, height: number) {
  const probe = await sharp(rgb, { raw: { width, height, channels: 3 } })
    .resize(TRIM_PROBE, TRIM_PROBE, { fit: 'inside', withoutEnlargement: true })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const b = contentBox(probe.data, probe.info.width, probe.info.height);
  const sx = width / probe.info.width;
  const sy = height / probe.info.height;
  // Rounded inwards, so a blended edge pixel of the frame is not kept.
  const left = Math.min(width - 1, Math.ceil(b.left * sx));
  const top = Math.min(height - 1, Math.ceil(b.top * sy));
  const right = Math.max(left + 1, Math.floor((b.left + b.width) * sx));
  const bottom = Math.max(top + 1, Math.floor((b.top + b.height) * sy));
  return { left, top, width: right - left, height: bottom - top };
}

/**
 * Decodes the first frame, applies the EXIF orientation, makes it RGB and resizes it to
 * the model input: returns size x size x 3 bytes (HWC). Normalisation happens in the
 * inference worker (tensor-layout.transform.ts).
 */
export async function decodeImage(data: Buffer, opts: PreprocessOptions): Promise<Uint8Array> {
  const size = opts.size;
  const fit = { fit: opts.mode === 'whole' ? 'fill' : 'cover', position: 'centre' } as const;
  // image-source applies the limits (bytes are bounded by the source, pixels, format,
  // timeout) and maps failures to 413/415/422.
  const raw = await decodeSource(data, { maxPixels: opts.maxPixels }, async ({ image }) => {
    const decoded = () => image.clone().toColourspace('srgb');
    if (!opts.trim) return decoded().resize(size, size, fit).raw().toBuffer({ resolveWithObject: true });
    // Decoded once at full size: the border search and the crop read the same pixels.
    const full = await decoded().removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const { width: fw, height: fh } = full.info;
    return sharp(full.data, { raw: { width: fw, height: fh, channels: full.info.channels } })
      .extract(full.info.channels === 3 ? await trimmedBox(full.data, fw, fh) : { left: 0, top: 0, width: fw, height: fh })
      .resize(size, size, fit)
      .raw()
      .toBuffer({ resolveWithObject: true });
  });
  const { data: px, info } = raw;
  const n = size * size;
  if (info.width !== size || info.height !== size || px.length < n * info.channels) throw new AppError('UNDECODABLE_IMAGE', 'image decoded to an unexpected shape');
  if (info.channels === 3) return px;
  // sRGB output has 3 bands; anything else (grey + alpha corner cases) is widened here.
  const rgb = new Uint8Array(n * 3);
  for (let i = 0, p = 0; i < n; i++, p += info.channels) {
    const r = px[p]!;
    rgb[i * 3] = r;
    rgb[i * 3 + 1] = info.channels >= 3 ? px[p + 1]! : r;
    rgb[i * 3 + 2] = info.channels >= 3 ? px[p + 2]! : r;
  }
  return rgb;
}
