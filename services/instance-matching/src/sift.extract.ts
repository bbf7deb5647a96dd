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

let detector: cv.SIFTDetector | undefined;
let detectorCap = -1;
function siftDetector(maxKeypoints: number): cv.SIFTDetector {
  if (!detector || detectorCap !== maxKeypoints) {
    detector = new cv.SIFTDetector({ nFeatures: maxKeypoints });
    detectorCap = maxKeypoints;
  }
  return detector;
}

export function extractFeatures(img: GreyImage, maxKeypoints: number): Features {
  const mat = toMat(img);
  // One call, one scale space (detect() then compute() builds it twice).
  const found = siftDetector(maxKeypoints).detectAndCompute(mat);
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

/** Bytes a Features value holds (the caches are bounded by bytes, not entries). */
export const featuresBytes = (f: Features): number => f.points.byteLength + f.descriptors.byteLength + 64;
