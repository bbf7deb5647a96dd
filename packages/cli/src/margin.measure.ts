import sharp from 'sharp';
import pLimit from 'p-limit';
import { join } from 'node:path';
import { inverseRegion, type Point, type Quad } from './region.geometry.js';
import { framedKey, linkSaysContains } from './keeper.logic.js';
import type { ScanGroup } from './scan-groups.logic.js';

/**
 * Is what `outer` shows outside `inner`'s matched region only decoration (caption bars, a
 * frame, an app's chrome, the fill around a rotated copy) rather than more of the picture?
 *
 * Photometry, not a fitted constant: a bar or frame is painted in one colour per side, with
 * at most some text or icons on it, while more of a photograph or artwork spreads over many
 * colours. Each side of the margin (above, below, left, right of the region) that holds
 * pixels must have most of them (MODE_SHARE) within MODE_TOLERANCE levels of its own most
 * common colour, and that colour must stop at the region: where the picture's own edge
 * band carries it on (CONTINUED_SHARE), the flat margin is more of a flat background.
 */
const SIDE = 128; // the margin is judged on a small copy: bars are large, flat and survive it
const MODE_SHARE = 0.6; // caption text and toolbar icons cover well under 40% of a bar
const MODE_TOLERANCE = 16; // JPEG ringing and gentle gradients in a frame stay inside this
// RANSAC corners are good to a few percent of the side: the band just outside the region
// may still be picture, so it is left out of the margin.
const GUARD = 0.04;
const MIN_SIDE_SHARE = 0.01; // a sliver of a side (a pixel row) says nothing
const BAND = 0.06; // the picture's edge band compared with the margin
// A flat background that runs on into the picture over half its edge is more picture.
const CONTINUED_SHARE = 0.5;

const insidePolygon = (poly: Quad, x: number, y: number): boolean => {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i]!;
    const [xj, yj] = poly[j]!;
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
};

/** The quad grown (d > 0) or shrunk (d < 0) about its centroid by d of the image side. */
const grown = (q: Quad, d: number): Quad => {
  const cx = q.reduce((s, p) => s + p[0], 0) / q.length;
  const cy = q.reduce((s, p) => s + p[1], 0) / q.length;
  return q.map(([x, y]) => {
    const dx = x - cx;
    const dy = y - cy;
    const len = Math.hypot(dx, dy) || 1;
    return [x + (dx / len) * d * Math.SQRT2, y + (dy / len) * d * Math.SQRT2] as Point;
  });
};

const binOf = (px: ArrayLike<number>, i: number) => ((px[i]! >> 4) << 8) | ((px[i + 1]! >> 4) << 4) | (px[i + 2]! >> 4);

/** One side's most common colour: the mean of the pixels in its most common 16-level bin. */
function modeColour(px: number[]): [number, number, number] {
  const bins = new Map<number, number>();
  for (let i = 0; i < px.length; i += 3) {
    const bin = binOf(px, i);
    bins.set(bin, (bins.get(bin) ?? 0) + 1);
  }
  let mode = 0;
  let best = -1;
  for (const [k, c] of bins) if (c > best) { best = c; mode = k; }
  let [r, g, b, count] = [0, 0, 0, 0];
  for (let i = 0; i < px.length; i += 3) {
    if (binOf(px, i) !== mode) continue;
    r += px[i]!; g += px[i + 1]!; b += px[i + 2]!; count++;
  }
  return [r / count, g / count, b / count];
}

/** The share of pixels within MODE_TOLERANCE of a colour. */
function shareNear(px: number[], [r, g, b]: [number, number, number]): number {
  let near = 0;
  for (let i = 0; i < px.length; i += 3) {
    if (Math.abs(px[i]! - r) <= MODE_TOLERANCE && Math.abs(px[i + 1]! - g) <= MODE_TOLERANCE && Math.abs(px[i + 2]! - b) <= MODE_TOLERANCE) near++;
  }
  return px.length ? near / (px.length / 3) : 0;
}

/**
 * `inner` is the other picture's corners in `outer`'s normalised coordinates. Undefined
 * when there is no margin to judge (the region covers the picture).
 */
export async function marginIsDecoration(file: string, inner: Quad): Promise<boolean | undefined> {
  return judgeMargin(await smallCopy(file), inner);
}

interface SmallCopy { data: Buffer; info: { width: number; height: number; channels: number } }

/** The picture at SIDE px, upright, as raw sRGB: what the margin is judged on. */
const smallCopy = (file: string): Promise<SmallCopy> =>
  sharp(file, { failOn: 'none' }).rotate().resize(SIDE, SIDE, { fit: 'inside' }).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });

function judgeMargin({ data, info }: SmallCopy, inner: Quad): boolean | undefined {
  const margin = grown(inner, GUARD);
  // The picture's own edge band, just inside the region: where a bar was added, it differs
  // from the bar; where the "margin" is more of a flat background (a crop of a product shot
  // on white), the picture carries the same colour across the boundary.
  const bandOuter = grown(inner, -GUARD);
  const bandInner = grown(inner, -GUARD - BAND);
  const xs = inner.map((p) => p[0]);
  const ys = inner.map((p) => p[1]);
  const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sides: number[][] = [[], [], [], []]; // above, below, left, right
  const bands: number[][] = [[], [], [], []];
  const ch = info.channels;
  for (let y = 0; y < info.height; y++) {
    const v = (y + 0.5) / info.height;
    for (let x = 0; x < info.width; x++) {
      const u = (x + 0.5) / info.width;
      const i = (y * info.width + x) * ch;
      if (!insidePolygon(margin, u, v)) {
        const side = v < minY ? 0 : v > maxY ? 1 : u < minX ? 2 : u > maxX ? 3 : v < (minY + maxY) / 2 ? 0 : 1;
        sides[side]!.push(data[i]!, data[i + 1]!, data[i + 2]!);
      } else if (insidePolygon(bandOuter, u, v) && !insidePolygon(bandInner, u, v)) {
        // The nearest side of the region's box.
        const d = [v - minY, maxY - v, u - minX, maxX - u];
        bands[d.indexOf(Math.min(...d))]!.push(data[i]!, data[i + 1]!, data[i + 2]!);
      }
    }
  }
  const total = info.width * info.height;
  const judged = [0, 1, 2, 3].filter((k) => sides[k]!.length / 3 >= MIN_SIDE_SHARE * total);
  if (judged.length === 0) return undefined;
  return judged.every((k) => {
    const colour = modeColour(sides[k]!);
    return shareNear(sides[k]!, colour) >= MODE_SHARE && shareNear(bands[k]!, colour) < CONTINUED_SHARE;
  });
}

/**
 * Among the containment links of the groups, those where the containing picture adds only
 * decoration around the other: `framedKey(outer, inner)`. The keeper rule then counts the
 * inner picture as the content (a captioned copy is its original plus bars, not more).
 * A file that cannot be read leaves its link a plain containment.
 */
export async function framedLinks(root: string, groups: Array<Pick<ScanGroup, 'pairs'>>, concurrency = 4): Promise<Set<string>> {
  const limit = pLimit(concurrency);
  const out = new Set<string>();
  const jobs: Array<Promise<void>> = [];
  // A screenshot holding a dozen members is one decode, not a dozen.
  const copies = new Map<string, Promise<SmallCopy>>();
  const copyOf = (rel: string) => copies.get(rel) ?? copies.set(rel, smallCopy(join(root, rel))).get(rel)!;
  for (const g of groups) {
    for (const p of g.pairs) {
      if (!p.region) continue;
      // region = the query's corners in the match; read backwards, the match's corners in the query.
      const links: Array<[string, string, Quad | undefined]> = [
        [p.match, p.query, p.region as Quad],
        [p.query, p.match, inverseRegion(p.region as Quad)],
      ];
      for (const [outer, inner, quad] of links) {
        if (!quad || !linkSaysContains(p, outer, inner)) continue;
        jobs.push(limit(async () => {
          try {
            if (judgeMargin(await copyOf(outer), quad)) out.add(framedKey(outer, inner));
          } catch {
            // Unreadable now (moved since the scan): no evidence either way.
          }
        }));
      }
    }
  }
  await Promise.all(jobs);
  return out;
}
