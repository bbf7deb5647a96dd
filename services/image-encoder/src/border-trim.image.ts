/**
 * Finds the picture inside uniform borders, bars and app frames (a caption bar, a
 * letterbox, the chrome of a screenshot), so the fingerprint describes the picture and not
 * the frame around it. Pure JS on a small RGB thumbnail; the verifier still sees the whole
 * image.
 */
export interface Box { left: number; top: number; width: number; height: number }

export interface TrimOptions {
  /** A pixel belongs to a line's flat colour when every channel is within this of the line's median. */
  tolerance?: number;
  /** A line is flat when at least this share of its pixels has its median colour (sparse caption text stays below 1 - this). */
  flatShare?: number;
  /** Never keep less than this share of a side: a mostly flat graphic is left whole. */
  minKeep?: number;
}

/** Median of each channel over `count` pixels starting at `start`, `step` bytes apart (histograms, no sort). */
function lineMedian(px: Uint8Array, start: number, step: number, count: number, hist: Uint32Array): [number, number, number] {
  hist.fill(0);
  for (let i = 0, p = start; i < count; i++, p += step) {
    hist[px[p]!]! += 1;
    hist[256 + px[p + 1]!]! += 1;
    hist[512 + px[p + 2]!]! += 1;
  }
  const med: [number, number, number] = [0, 0, 0];
  for (let c = 0; c < 3; c++) {
    let acc = 0;
    for (let v = 0; v < 256; v++) {
      acc += hist[c * 256 + v]!;
      if (2 * acc >= count) { med[c] = v; break; }
    }
  }
  return med;
}

/** Share of the line's pixels within `tol` of `ref` on every channel. */
function shareNear(px: Uint8Array, start: number, step: number, count: number, ref: readonly number[], tol: number): number {
  let near = 0;
  for (let i = 0, p = start; i < count; i++, p += step) {
    if (Math.abs(px[p]! - ref[0]!) <= tol && Math.abs(px[p + 1]! - ref[1]!) <= tol && Math.abs(px[p + 2]! - ref[2]!) <= tol) near += 1;
  }
  return near / count;
}

/**
 * The largest box whose outer rows and columns are not flat, found by peeling flat lines
 * off each side (each line judged against its own median colour, so a dark title bar then
 * a light margin both go). Returns the whole image when that would keep less than `minKeep`
 * of a side.
 */
export function contentBox(px: Uint8Array, width: number, height: number, opts: TrimOptions = {}): Box {
  const tol = opts.tolerance ?? 10;
  const share = opts.flatShare ?? 0.6;
  const minKeep = opts.minKeep ?? 0.34;
  const hist = new Uint32Array(768);
  let top = 0;
  let bottom = height;
  let left = 0;
  let right = width;
  const rowAt = (y: number) => [(y * width + left) * 3, 3, right - left] as const;
  const colAt = (x: number) => [(top * width + x) * 3, width * 3, bottom - top] as const;
  /**
   * A band is peeled while its lines keep the colour of its outermost line: a frame is one
   * flat colour (caption text covers a minority of its pixels), while a smooth sky or
   * gradient drifts away from its first line within a few rows and stops the peel.
   */
  const peel = (line: () => readonly [number, number, number], step: () => void, room: () => boolean): boolean => {
    if (!room()) return false;
    const first = line();
    const ref = lineMedian(px, ...first, hist);
    let peeled = false;
    while (room()) {
      const l = line();
      if (shareNear(px, ...l, ref, tol) < share) break;
      step();
      peeled = true;
    }
    return peeled;
  };
  const rows = () => bottom - top > 1;
  const cols = () => right - left > 1;
  // Sides alternate so nested frames (a title bar, then a margin) are peeled in any order.
  for (let changed = true; changed;) {
    changed = false;
    if (peel(() => rowAt(top), () => { top += 1; }, rows)) changed = true;
    if (peel(() => rowAt(bottom - 1), () => { bottom -= 1; }, rows)) changed = true;
    if (peel(() => colAt(left), () => { left += 1; }, cols)) changed = true;
    if (peel(() => colAt(right - 1), () => { right -= 1; }, cols)) changed = true;
  }
  const keepH = bottom - top >= minKeep * height;
  const keepW = right - left >= minKeep * width;
  return {
    left: keepW ? left : 0,
    width: keepW ? right - left : width,
    top: keepH ? top : 0,
    height: keepH ? bottom - top : height,
  };
}
