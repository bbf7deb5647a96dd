/** SIFT extraction: keypoints and byte descriptors of a working-size grey image. */
import { copyOut, cv, toMat, type GreyImage } from './opencv.binding.js';

export interface Features {
  width: number;
  height: number;
  count: number;
  /** x, y pairs in working-size pixels. */
  points: Float32Array;
  /**
   * count x 128 SIFT descriptors. OpenCV rounds every SIFT component to an integer in
   * 0..255 even in its float output, so bytes hold them exactly at a quarter of the size
   * (the cache and the messages to the workers carry these).
   */
  descriptors: Uint8Array;
}

export const DESCRIPTOR_SIZE = 128;

/** OpenCV's default SIFT contrast threshold. */
export const DEFAULT_CONTRAST = 0.04;

const detectors = new Map<string, cv.SIFTDetector>();
function siftDetector(maxKeypoints: number, contrastThreshold: number): cv.SIFTDetector {
  const key = `${maxKeypoints}/${contrastThreshold}`;
  let d = detectors.get(key);
  if (!d) {
    d = new cv.SIFTDetector({ nFeatures: maxKeypoints, contrastThreshold });
    detectors.set(key, d);
  }
  return d;
}

export function extractFeatures(img: GreyImage, maxKeypoints: number, contrastThreshold = DEFAULT_CONTRAST): Features {
  const mat = toMat(img);
  // One call, one scale space (detect() then compute() builds it twice).
  const found = siftDetector(maxKeypoints, contrastThreshold).detectAndCompute(mat);
  // nFeatures keeps the strongest responses, but ties can exceed it: cap explicitly.
  const count = Math.min(found.keypoints.length, maxKeypoints);
  const points = new Float32Array(count * 2);
  for (let i = 0; i < count; i++) {
    const p = found.keypoints[i]!.pt;
    points[2 * i] = p.x;
    points[2 * i + 1] = p.y;
  }
  const descriptors = new Uint8Array(count * DESCRIPTOR_SIZE);
  if (count > 0) copyOut(found.descriptors.convertTo(cv.CV_8U).getData(), descriptors);
  return { width: mat.cols, height: mat.rows, count, points, descriptors };
}

export interface ExtractOptions {
  maxKeypoints: number;
  /** Fewer keypoints than this at the default contrast threshold: extract again at `lowContrast`. */
  adaptBelow: number;
  lowContrast: number;
}

/**
 * SIFT drops extrema whose contrast is under a fixed threshold, so a smooth, low-contrast
 * picture (a wallpaper of gradients and soft shapes) keeps a handful of keypoints, too few
 * to verify a crop or a rotation. Such an image is described again with a lower threshold.
 * Each side decides alone, from its own count, and a copy of a low-texture picture is
 * low-texture too, so both sides of a true pair see the same weak extrema. Noise picked up
 * this way is harmless: it does not survive RANSAC and the spread check.
 */
export function extractAdaptive(img: GreyImage, opts: ExtractOptions): Features {
  const f = extractFeatures(img, opts.maxKeypoints);
  if (f.count >= opts.adaptBelow || opts.lowContrast >= DEFAULT_CONTRAST) return f;
  const low = extractFeatures(img, opts.maxKeypoints, opts.lowContrast);
  return low.count > f.count ? low : f;
}

/** Bytes a Features value holds (the caches are bounded by bytes, not entries). */
export const featuresBytes = (f: Features): number => f.points.byteLength + f.descriptors.byteLength + 64;
