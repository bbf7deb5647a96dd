/** Mirrored SIFT features derived from the plain ones, without a second SIFT run. */
import { DESCRIPTOR_SIZE, extractAdaptive, type ExtractOptions, type Features } from './sift.extract.js';
import type { GreyImage } from './opencv.binding.js';

/** The candidate is described twice: as given and mirrored, so mirrored copies verify. */
export interface CandidateFeatures {
  plain: Features;
  mirrored: Features;
}

/**
 * Where each component of a SIFT descriptor goes when the image is mirrored left-right.
 * The descriptor is a 4x4 grid (rows across, columns along the keypoint's orientation) of
 * 8 orientation bins. Mirroring keeps the axis along the orientation and reverses the
 * one across it, so grid rows swap (r -> 3 - r) and relative angles change sign
 * (bin o -> -o mod 8). Checked against SIFT run on flipped images in the tests.
 */
const MIRROR_INDEX = Uint8Array.from({ length: DESCRIPTOR_SIZE }, (_, i) => {
  const r = i >> 5;
  const c = (i >> 3) & 3;
  const o = i & 7;
  return (((3 - r) * 4 + c) << 3) | ((8 - o) & 7);
});

/** The features of the left-right mirrored image, derived without running SIFT again. */
export function mirrorFeatures(f: Features): Features {
  const points = new Float32Array(f.points.length);
  for (let i = 0; i < f.count; i++) {
    // flip(1) sends pixel column c to width - 1 - c.
    points[2 * i] = f.width - 1 - f.points[2 * i]!;
    points[2 * i + 1] = f.points[2 * i + 1]!;
  }
  const descriptors = new Uint8Array(f.descriptors.length);
  for (let k = 0; k < f.count; k++) {
    const base = k * DESCRIPTOR_SIZE;
    for (let i = 0; i < DESCRIPTOR_SIZE; i++) descriptors[base + i] = f.descriptors[base + MIRROR_INDEX[i]!]!;
  }
  return { width: f.width, height: f.height, count: f.count, points, descriptors };
}

export function extractCandidateFeatures(img: GreyImage, opts: ExtractOptions): CandidateFeatures {
  const plain = extractAdaptive(img, opts);
  return { plain, mirrored: mirrorFeatures(plain) };
}
