/**
 * The one module that loads OpenCV (via @u4/opencv4nodejs, patched so SIFT comes from
 * features2d and detectAndCompute/batchDistance exist). Everything the matcher keeps is
 * plain typed arrays, so features can be cached and sent to worker processes without
 * holding native objects; the helpers here convert at the boundary.
 */
import { createRequire } from 'node:module';
import type cvTypes from '@u4/opencv4nodejs';

// The binding's loader finds the OpenCV build recorded at install time (scripts/setup.sh
// installs with the system OpenCV). The OPENCV4NODEJS_DISABLE_AUTOBUILD / OPENCV_*_DIR
// variables are set by whoever starts the matcher (the launcher, the Dockerfile), never
// written here: code does not write the environment. The default export of the CJS entry
// is the whole binding, including what the patch adds (batchDistance).
export const cv = (createRequire(import.meta.url)('@u4/opencv4nodejs') as { default: typeof cvTypes }).default;
// eslint-disable-next-line @typescript-eslint/no-namespace
export declare namespace cv {
  type Mat = cvTypes.Mat;
  type SIFTDetector = cvTypes.SIFTDetector;
  type Point2 = cvTypes.Point2;
}

// One OpenCV thread per process: the pool's processes are the parallelism, and the
// binding's Mat allocator reports memory to V8, which aborts when OpenCV's own worker
// threads (parallel_for_) allocate ("Check failed: marking_done_", seen in SIFT detect).
cv.setNumThreads(1);

/** An 8-bit single-channel image, row-major, no padding. */
export interface GreyImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export const toMat = (img: GreyImage): cv.Mat =>
  new cv.Mat(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), img.height, img.width, cv.CV_8UC1);

/** Copies a native buffer into a typed array: its byte offset need not be aligned. */
export function copyOut<T extends Float32Array | Int32Array | Uint8Array>(src: Buffer, out: T): T {
  new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(src.subarray(0, out.byteLength));
  return out;
}

export const siftAvailable = (): boolean => typeof cv.SIFTDetector === 'function';
