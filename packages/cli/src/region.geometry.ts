/**
 * Geometry of a matched region: the query's four corners (TL, TR, BR, BL) projected into
 * the matched image, in that image's normalised coordinates (x / width, y / height).
 */
export type Point = [number, number];
export type Quad = Point[];

const UNIT: Quad = [[0, 0], [1, 0], [1, 1], [0, 1]];

/** Shoelace area of a simple polygon (absolute value: orientation does not matter). */
export function polygonArea(poly: Quad): number {
  let s = 0;
  for (let i = 0; i < poly.length; i++) {
    const [x1, y1] = poly[i]!;
    const [x2, y2] = poly[(i + 1) % poly.length]!;
    s += x1 * y2 - x2 * y1;
  }
  return Math.abs(s) / 2;
}

/** Sutherland-Hodgman clip of a polygon against the unit square. */
export function clipToUnit(poly: Quad): Quad {
  let out = poly;
  const edges: Array<[(p: Point) => boolean, (a: Point, b: Point) => Point]> = [
    [(p) => p[0] >= 0, (a, b) => lerpAt(a, b, (0 - a[0]) / (b[0] - a[0]))],
    [(p) => p[0] <= 1, (a, b) => lerpAt(a, b, (1 - a[0]) / (b[0] - a[0]))],
    [(p) => p[1] >= 0, (a, b) => lerpAt(a, b, (0 - a[1]) / (b[1] - a[1]))],
    [(p) => p[1] <= 1, (a, b) => lerpAt(a, b, (1 - a[1]) / (b[1] - a[1]))],
  ];
  for (const [inside, cut] of edges) {
    const src = out;
    out = [];
    for (let i = 0; i < src.length; i++) {
      const cur = src[i]!;
      const prev = src[(i + src.length - 1) % src.length]!;
      if (inside(cur)) {
        if (!inside(prev)) out.push(cut(prev, cur));
        out.push(cur);
      } else if (inside(prev)) {
        out.push(cut(prev, cur));
      }
    }
    if (out.length === 0) return [];
  }
  return out;
}

const lerpAt = (a: Point, b: Point, t: number): Point => [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t];

/**
 * How two images overlap, from the query's corners in the match:
 * - `matchCovered`: the fraction of the match's area that shows query content;
 * - `queryInside`: the fraction of the query's area that lies inside the match.
 * Both are area ratios in the match's frame: the projective map keeps them for the
 * similarity transforms RANSAC fits, and approximately for mild perspective.
 */
export function overlap(region: Quad): { matchCovered: number; queryInside: number } {
  const whole = polygonArea(region);
  const inside = polygonArea(clipToUnit(region));
  return { matchCovered: Math.min(1, inside), queryInside: whole > 0 ? Math.min(1, inside / whole) : 0 };
}

/** The 3x3 homography (row-major, h33 = 1) that maps the unit square's corners onto `quad`. */
export function homographyFromUnit(quad: Quad): number[] | undefined {
  // Solve the 8x8 system of the four correspondences (Gaussian elimination, partial pivoting).
  const a: number[][] = [];
  for (let i = 0; i < 4; i++) {
    const [x, y] = UNIT[i]!;
    const [u, v] = quad[i]!;
    a.push([x, y, 1, 0, 0, 0, -u * x, -u * y, u]);
    a.push([0, 0, 0, x, y, 1, -v * x, -v * y, v]);
  }
  for (let c = 0; c < 8; c++) {
    let p = c;
    for (let r = c + 1; r < 8; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[p]![c]!)) p = r;
    if (Math.abs(a[p]![c]!) < 1e-12) return undefined;
    [a[c], a[p]] = [a[p]!, a[c]!];
    for (let r = 0; r < 8; r++) {
      if (r === c) continue;
      const f = a[r]![c]! / a[c]![c]!;
      for (let k = c; k < 9; k++) a[r]![k]! -= f * a[c]![k]!;
    }
  }
  return [...Array.from({ length: 8 }, (_, i) => a[i]![8]! / a[i]![i]!), 1];
}

function invert3(m: number[]): number[] | undefined {
  const [a, b, c, d, e, f, g, h, i] = m as [number, number, number, number, number, number, number, number, number];
  const A = e * i - f * h;
  const B = -(d * i - f * g);
  const C = d * h - e * g;
  const det = a * A + b * B + c * C;
  if (Math.abs(det) < 1e-12) return undefined;
  return [A, -(b * i - c * h), b * f - c * e, B, a * i - c * g, -(a * f - c * d), C, -(a * h - b * g), a * e - b * d].map((x) => x / det);
}

const apply3 = (m: number[], [x, y]: Point): Point => {
  const w = m[6]! * x + m[7]! * y + m[8]!;
  return [(m[0]! * x + m[1]! * y + m[2]!) / w, (m[3]! * x + m[4]! * y + m[5]!) / w];
};

/**
 * The other direction: the match's corners in the query's normalised coordinates, so the
 * group view can draw the shared region on both images from one verified link.
 */
export function inverseRegion(region: Quad): Quad | undefined {
  const h = homographyFromUnit(region);
  const inv = h && invert3(h);
  if (!inv) return undefined;
  const out = UNIT.map((p) => apply3(inv, p));
  return out.every(([x, y]) => Number.isFinite(x) && Number.isFinite(y)) ? out.map(([x, y]) => [round4(x), round4(y)] as Point) : undefined;
}

const round4 = (x: number) => Math.round(x * 1e4) / 1e4;
