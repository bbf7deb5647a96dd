/**
 * How much an image has to prove anything with: measured on its 32x32 thumbnail, where
 * area averaging has removed sensor and JPEG noise. A flat or near-flat picture (a blank
 * crop, a plain panel) has almost no grey spread; a smooth gradient has spread but almost
 * no variation of its gradient. Neither can be told apart from another such picture, so
 * neither may be declared a copy on appearance alone.
 */
import type { GreyImage } from './opencv.binding.js';

export interface Structure {
  /** Standard deviation of the grey levels (0..255). */
  greyStd: number;
  /**
   * Standard deviation of the Sobel gradient magnitude (grey levels per thumbnail pixel):
   * zero for a flat image and for a linear gradient, large where there are edges and shapes.
   */
  edgeStd: number;
}

function std(values: Float64Array): number {
  let s = 0;
  for (const v of values) s += v;
  const mean = s / values.length;
  let q = 0;
  for (const v of values) q += (v - mean) ** 2;
  return Math.sqrt(q / values.length);
}

export function structureOf(img: GreyImage): Structure {
  const { width: w, height: h, data } = img;
  const grey = Float64Array.from(data);
  if (w < 3 || h < 3) return { greyStd: std(grey), edgeStd: 0 };
  const mag = new Float64Array((w - 2) * (h - 2));
  const at = (x: number, y: number) => data[y * w + x]!;
  let k = 0;
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      const gx = at(x + 1, y - 1) + 2 * at(x + 1, y) + at(x + 1, y + 1) - at(x - 1, y - 1) - 2 * at(x - 1, y) - at(x - 1, y + 1);
      const gy = at(x - 1, y + 1) + 2 * at(x, y + 1) + at(x + 1, y + 1) - at(x - 1, y - 1) - 2 * at(x, y - 1) - at(x + 1, y - 1);
      mag[k++] = Math.hypot(gx, gy) / 8;
    }
  }
  return { greyStd: std(grey), edgeStd: std(mag) };
}
