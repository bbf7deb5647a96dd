/** Pure geometry of a fitted transform: projection of the candidate and sanity checks. */

export type Quad = [[number, number], [number, number], [number, number], [number, number]];

export interface Size { width: number; height: number }

export type Sanity = { ok: true; region: Quad } | { ok: false; reason: string };

/** Linear scale limits: beyond them a "match" is a fit to a few pixels or a speck. */
export const MIN_SCALE = 1 / 10;
export const MAX_SCALE = 10;
/** Ratio of the longest to the shortest side of the projected quad, relative to the original. */
const MAX_ANISOTROPY = 4;

/** Projects a point with a row-major 3x3 matrix; undefined when it goes to infinity or behind. */
export function project(m: readonly number[], x: number, y: number): [number, number] | undefined {
  const w = m[6]! * x + m[7]! * y + m[8]!;
  if (!(w > 1e-8)) return undefined;
  return [(m[0]! * x + m[1]! * y + m[2]!) / w, (m[3]! * x + m[4]! * y + m[5]!) / w];
}

const cross = (o: [number, number], a: [number, number], b: [number, number]) =>
  (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);

function signedArea(q: Quad): number {
  let s = 0;
  for (let i = 0; i < 4; i++) {
    const a = q[i]!;
    const b = q[(i + 1) % 4]!;
    s += a[0] * b[1] - b[0] * a[1];
  }
  return s / 2;
}

const dist = (a: [number, number], b: [number, number]) => Math.hypot(a[0] - b[0], a[1] - b[1]);

/**
 * Accepts a fitted transform only if it maps the candidate to a plausible quad in the
 * target: finite, convex (one turning direction), not collapsed or exploded, not
 * stretched much more along one side than the other, and overlapping the target.
 */
export function sanityOf(m: readonly number[], corners: Quad, cand: Size, target: Size): Sanity {
  if (m.length !== 9 || m.some((v) => !Number.isFinite(v))) return { ok: false, reason: 'non-finite transform' };
  const projected: Array<[number, number]> = [];
  for (const [x, y] of corners) {
    const p = project(m, x, y);
    if (!p) return { ok: false, reason: 'corner projected to infinity' };
    projected.push(p);
  }
  const q = projected as Quad;
  let sign = 0;
  for (let i = 0; i < 4; i++) {
    const c = cross(q[i]!, q[(i + 1) % 4]!, q[(i + 2) % 4]!);
    const s = Math.sign(c);
    if (s === 0) return { ok: false, reason: 'degenerate quad' };
    if (sign === 0) sign = s;
    else if (s !== sign) return { ok: false, reason: 'non-convex quad' };
  }
  const scale = Math.sqrt(Math.abs(signedArea(q)) / (cand.width * cand.height));
  if (!(scale >= MIN_SCALE && scale <= MAX_SCALE)) return { ok: false, reason: `scale ${scale.toFixed(3)} out of range` };
  // Compare each side with its original length; a similarity keeps these ratios equal.
  const sides = [0, 1, 2, 3].map((i) => dist(q[i]!, q[(i + 1) % 4]!) / dist(corners[i]!, corners[(i + 1) % 4]!));
  const anisotropy = Math.max(...sides) / Math.min(...sides);
  if (!(anisotropy <= MAX_ANISOTROPY)) return { ok: false, reason: 'strongly anisotropic' };
  const cx = q.reduce((s, p) => s + p[0], 0) / 4 / target.width;
  const cy = q.reduce((s, p) => s + p[1], 0) / 4 / target.height;
  if (cx < -0.5 || cx > 1.5 || cy < -0.5 || cy > 1.5) return { ok: false, reason: 'projected outside the target' };
  const region = q.map(([x, y]) => [round4(x / target.width), round4(y / target.height)]) as Quad;
  return { ok: true, region };
}

const round4 = (v: number) => Math.round(v * 1e4) / 1e4;

/**
 * Linear scale of a fit (candidate pixels -> target pixels): the square root of the area
 * ratio of its linear part, at the origin for a homography.
 */
export function linearScale(m: readonly number[]): number {
  const w = m[8]! === 0 ? 1 : m[8]!;
  return Math.sqrt(Math.abs(m[0]! * m[4]! - m[1]! * m[3]!)) / Math.abs(w);
}

/** 3x3 row-major product a * b. */
export function mul3(a: readonly number[], b: readonly number[]): number[] {
  const out = new Array<number>(9).fill(0);
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) for (let k = 0; k < 3; k++) out[3 * r + c]! += a[3 * r + k]! * b[3 * k + c]!;
  return out;
}

/** Inverse of a row-major 3x3 matrix, or undefined when it is singular. */
export function invert3x3(m: readonly number[]): number[] | undefined {
  const [a, b, c, d, e, f, g, h, i] = m as [number, number, number, number, number, number, number, number, number];
  const A = e * i - f * h;
  const B = -(d * i - f * g);
  const C = d * h - e * g;
  const det = a * A + b * B + c * C;
  if (!Number.isFinite(det) || Math.abs(det) < 1e-12) return undefined;
  const inv = [A, -(b * i - c * h), b * f - c * e, B, a * i - c * g, -(a * f - c * d), C, -(a * h - b * g), a * e - b * d];
  return inv.map((v) => v / det);
}

/** Area of a quad in normalised coordinates after clamping it to the unit square (an approximation of the clipped area). */
export function clampedArea(q: Quad): number {
  const c = q.map(([x, y]) => [Math.min(1, Math.max(0, x)), Math.min(1, Math.max(0, y))] as [number, number]) as Quad;
  return Math.abs(signedArea(c));
}
