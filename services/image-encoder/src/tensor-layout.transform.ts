/**
 * Pixel -> tensor transforms that run in the inference worker (pure JS, no sharp), so
 * the per-pixel loops stay off the event loop that serves HTTP.
 */

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];
/** Byte -> normalised value per channel: a table beats 150k divisions per image. */
const LUT = MEAN.map((m, c) => Float32Array.from({ length: 256 }, (_, v) => (v / 255 - m) / STD[c]!)) as [Float32Array, Float32Array, Float32Array];

/** Writes the normalised CHW tensor of an RGB (HWC, size x size) image into `out` at `offset`. */
export function rgbToTensor(rgb: Uint8Array, size: number, out: Float32Array, offset = 0): void {
  const n = size * size;
  const [l0, l1, l2] = LUT;
  for (let i = 0, p = 0; i < n; i++, p += 3) {
    out[offset + i] = l0[rgb[p]!]!;
    out[offset + n + i] = l1[rgb[p + 1]!]!;
    out[offset + 2 * n + i] = l2[rgb[p + 2]!]!;
  }
}

/**
 * Source pixel of destination (y, x) for each orientation, in ORIENTATION_NAMES order:
 * rotations are clockwise; `flip` is a left-right mirror, `flip_rotN` mirrors then rotates.
 * Every mapping is affine, src = a + b*y + c*x, so the copy loop needs no index table.
 */
function orientationSteps(size: number): Array<[number, number, number]> {
  const s1 = size - 1;
  const rot = [
    (y: number, x: number) => [y, x],
    (y: number, x: number) => [s1 - x, y],
    (y: number, x: number) => [s1 - y, s1 - x],
    (y: number, x: number) => [x, s1 - y],
  ] as const;
  const steps: Array<[number, number, number]> = [];
  for (const flip of [false, true]) {
    for (const r of rot) {
      const at = (y: number, x: number) => {
        const [sy, sx] = r(y, x);
        return sy! * size + (flip ? s1 - sx! : sx!);
      };
      const a = at(0, 0);
      steps.push([a, at(1, 0) - a, at(0, 1) - a]);
    }
  }
  return steps;
}

/**
 * Writes the first `count` orientations (ORIENTATION_NAMES order: 4 quarter turns, then
 * their mirrors) of the tensor found at `out[offset]` into the `count - 1` slots after it.
 * Done on the tensor rather than by decoding again: for a square input, turning after
 * resizing equals resizing after turning.
 */
export function expandOrientations(out: Float32Array, size: number, offset: number, count = 8): void {
  const n = size * size;
  const plane = 3 * n;
  const steps = orientationSteps(size);
  for (let k = 1; k < count; k++) {
    const [a, b, c] = steps[k]!;
    for (let ch = 0; ch < 3; ch++) {
      const src = offset + ch * n + a;
      let d = offset + k * plane + ch * n;
      for (let y = 0; y < size; y++) {
        let s = src + b * y;
        for (let x = 0; x < size; x++, s += c) out[d++] = out[s]!;
      }
    }
  }
}

/** The tensors of one image, 1 or 8 (orientations), as separate arrays (benchmarks, tests). */
export function imageTensors(rgb: Uint8Array, size: number, orientations: boolean): Float32Array {
  const plane = 3 * size * size;
  const out = new Float32Array(plane * (orientations ? 8 : 1));
  rgbToTensor(rgb, size, out, 0);
  if (orientations) expandOrientations(out, size, 0);
  return out;
}
