/** Synthetic test images rendered by sharp from SVG: textured scenes and low-texture ones. */
import sharp from 'sharp';
import { mulberry32 } from '@doppel/service-kit';
import { cv } from '../src/opencv.binding.js';

/** Same seeds as before: see mulberry32 in the service kit. */
export const rng = mulberry32;

const WORDS = ['delta', 'orbit', 'maple', 'quartz', 'nimbus', 'falcon', 'harbor', 'prism', 'velvet', 'zenith'];

/** n samples of N(0, sigma²) by Box-Muller from a seeded uniform generator. */
function seededGaussian(r: () => number, n: number, sigma: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(r(), 1e-12);
    const v = r();
    const m = sigma * Math.sqrt(-2 * Math.log(u));
    out[i] = m * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = m * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/** Random rectangles, ellipses, polygons and words on a noisy background. */
export async function texturedScene(seed: number, width = 640, height = 480): Promise<Buffer> {
  const r = rng(seed);
  const col = () => `rgb(${Math.floor(r() * 256)},${Math.floor(r() * 256)},${Math.floor(r() * 256)})`;
  const parts: string[] = [`<rect width="${width}" height="${height}" fill="${col()}"/>`];
  for (let i = 0; i < 70; i++) {
    const x = r() * width;
    const y = r() * height;
    const s = 10 + r() * 70;
    const kind = i % 4;
    if (kind === 0) parts.push(`<rect x="${x}" y="${y}" width="${s}" height="${s * (0.3 + r())}" fill="${col()}" transform="rotate(${r() * 90} ${x} ${y})"/>`);
    else if (kind === 1) parts.push(`<ellipse cx="${x}" cy="${y}" rx="${s / 2}" ry="${s / 3}" fill="${col()}" stroke="${col()}" stroke-width="3"/>`);
    else if (kind === 2) parts.push(`<polygon points="${x},${y} ${x + s},${y + s / 3} ${x + s / 4},${y + s}" fill="${col()}"/>`);
    else parts.push(`<text x="${x}" y="${y}" font-size="${12 + r() * 28}" font-family="sans-serif" fill="${col()}">${WORDS[Math.floor(r() * WORDS.length)]}</text>`);
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join('')}</svg>`;
  // Gaussian noise (sigma 12) from the seed, not from libvips' generator: libvips draws other
  // noise every run, and a test near a threshold then passes or fails by chance.
  const noise = seededGaussian(rng(seed ^ 0x5eed), width * height * 3, 12);
  const base = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer();
  for (let i = 0; i < base.length; i++) base[i] = Math.max(0, Math.min(255, Math.round(base[i]! + noise[i]!)));
  return sharp(base, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** A smooth two-colour gradient with a few soft blobs: few SIFT keypoints, like a wallpaper. */
export async function lowTextureScene(seed: number, width = 640, height = 400): Promise<Buffer> {
  const r = rng(seed);
  const col = () => `rgb(${Math.floor(r() * 256)},${Math.floor(r() * 256)},${Math.floor(r() * 256)})`;
  const blobs = Array.from({ length: 3 }, () =>
    `<ellipse cx="${r() * width}" cy="${r() * height}" rx="${60 + r() * 120}" ry="${40 + r() * 90}" fill="${col()}" filter="url(#b)"/>`).join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <defs><linearGradient id="g" x1="0" y1="0" x2="${r().toFixed(2)}" y2="1"><stop offset="0" stop-color="${col()}"/><stop offset="1" stop-color="${col()}"/></linearGradient>
    <filter id="b"><feGaussianBlur stdDeviation="40"/></filter></defs>
    <rect width="${width}" height="${height}" fill="url(#g)"/>${blobs}</svg>`;
  return sharp(Buffer.from(svg)).removeAlpha().jpeg({ quality: 92 }).toBuffer();
}

/** The transformations a near-duplicate must survive. */
export const TRANSFORMS: Record<string, (img: Buffer) => Promise<Buffer>> = {
  rot90: (b) => sharp(b).rotate(90).jpeg({ quality: 90 }).toBuffer(),
  rot180: (b) => sharp(b).rotate(180).jpeg({ quality: 90 }).toBuffer(),
  rot270: (b) => sharp(b).rotate(270).jpeg({ quality: 90 }).toBuffer(),
  mirror: (b) => sharp(b).flop().jpeg({ quality: 90 }).toBuffer(),
  crop50: async (b) => {
    const m = await sharp(b).metadata();
    const w = Math.round(m.width! * 0.71);
    const h = Math.round(m.height! * 0.71);
    return sharp(b).extract({ left: m.width! - w - 5, top: 3, width: w, height: h }).jpeg({ quality: 90 }).toBuffer();
  },
  recompress: (b) => sharp(b).resize({ width: 320 }).jpeg({ quality: 25 }).toBuffer(),
  recolour: (b) => sharp(b).modulate({ hue: 120, saturation: 1.5, brightness: 1.15 }).jpeg({ quality: 90 }).toBuffer(),
  grey: (b) => sharp(b).greyscale().jpeg({ quality: 90 }).toBuffer(),
  blur: (b) => sharp(b).blur(1.5).jpeg({ quality: 90 }).toBuffer(),
  caption: async (b) => {
    const m = await sharp(b).metadata();
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${m.width}" height="${m.height}"><rect x="0" y="${m.height! - 70}" width="${m.width}" height="70" fill="black" opacity="0.6"/><text x="20" y="${m.height! - 25}" font-size="36" font-family="sans-serif" fill="white">when you see it LOL</text></svg>`;
    return sharp(b).composite([{ input: Buffer.from(svg) }]).jpeg({ quality: 90 }).toBuffer();
  },
  border: (b) => sharp(b).extend({ top: 60, bottom: 60, left: 40, right: 40, background: '#ffffff' }).jpeg({ quality: 90 }).toBuffer(),
};

/** Hard copies: the transformations that the verification rules of issue #11 must survive. */
export const HARD_COPIES: Record<string, (img: Buffer) => Promise<Buffer>> = {
  /** The top-left quarter of the area (half of each side). */
  'corner crop (25% of the area)': async (b) => {
    const m = await sharp(b).metadata();
    return sharp(b).extract({ left: 0, top: 0, width: Math.round(m.width! / 2), height: Math.round(m.height! / 2) }).jpeg({ quality: 90 }).toBuffer();
  },
  /** Rotated by 20 degrees, then cropped to the middle so no filled corner remains. */
  'rotation by 20 degrees, cropped': async (b) => {
    const rotated = await sharp(b).rotate(20, { background: '#000000' }).png().toBuffer();
    const m = await sharp(rotated).metadata();
    const w = Math.round(m.width! * 0.5);
    const h = Math.round(m.height! * 0.5);
    return sharp(rotated).extract({ left: Math.round((m.width! - w) / 2), top: Math.round((m.height! - h) / 2), width: w, height: h }).jpeg({ quality: 90 }).toBuffer();
  },
  /** Perspective: the top edge shrunk to 60% of its width, as a photo of a tilted print. */
  keystone: async (b) => {
    const { data, info } = await sharp(b).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const { width: w, height: h } = info;
    const src = new cv.Mat(data, h, w, cv.CV_8UC3);
    const m = cv.getPerspectiveTransform(
      [new cv.Point2(0, 0), new cv.Point2(w, 0), new cv.Point2(w, h), new cv.Point2(0, h)],
      [new cv.Point2(0.2 * w, 0.05 * h), new cv.Point2(0.8 * w, 0.05 * h), new cv.Point2(w, h), new cv.Point2(0, h)],
    );
    const warped = src.warpPerspective(m, new cv.Size(w, h), cv.INTER_LINEAR, cv.BORDER_CONSTANT, new cv.Vec3(255, 255, 255));
    return sharp(warped.getData(), { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
  },
  /** Another picture pasted over the left third. */
  'a third covered by another picture': async (b) => {
    const m = await sharp(b).metadata();
    const cover = await sharp(await texturedScene(77, Math.round(m.width! / 3), m.height!)).png().toBuffer();
    return sharp(b).composite([{ input: cover, left: 0, top: 0 }]).jpeg({ quality: 90 }).toBuffer();
  },
};

/**
 * Turned by `degrees` about its centre, then cropped to the largest centred rectangle of its
 * own aspect that holds no filled corner (as a photo editor's straighten tool does).
 */
export async function turnedAndFilled(b: Buffer, degrees: number): Promise<Buffer> {
  const m = await sharp(b).metadata();
  const [w, h] = [m.width!, m.height!];
  const [c, s] = [Math.cos((degrees * Math.PI) / 180), Math.sin((degrees * Math.PI) / 180)];
  const k = Math.min(h / (w * s + h * c), w / (w * c + h * s));
  const rotated = await sharp(b).rotate(degrees, { background: '#000000' }).png().toBuffer();
  const r = await sharp(rotated).metadata();
  const [cw, ch] = [Math.floor(w * k), Math.floor(h * k)];
  return sharp(rotated).extract({ left: Math.round((r.width! - cw) / 2), top: Math.round((r.height! - ch) / 2), width: cw, height: ch }).jpeg({ quality: 90 }).toBuffer();
}

/** Turned by `degrees` about its centre inside its own frame: the corners the turn leaves are filled black. */
export async function turnedInFrame(b: Buffer, degrees: number): Promise<Buffer> {
  const m = await sharp(b).metadata();
  const rotated = await sharp(b).rotate(degrees, { background: '#000000' }).png().toBuffer();
  const r = await sharp(rotated).metadata();
  return sharp(rotated).extract({ left: Math.round((r.width! - m.width!) / 2), top: Math.round((r.height! - m.height!) / 2), width: m.width!, height: m.height! }).jpeg({ quality: 90 }).toBuffer();
}

/** A linear gradient between two colours along an angle: no shape, no edge. */
export async function smoothGradient(seed: number, width = 640, height = 400): Promise<Buffer> {
  const r = rng(seed);
  const col = () => `rgb(${Math.floor(r() * 256)},${Math.floor(r() * 256)},${Math.floor(r() * 256)})`;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <defs><linearGradient id="g" x1="0" y1="0" x2="${r().toFixed(2)}" y2="${r().toFixed(2)}"><stop offset="0" stop-color="${col()}"/><stop offset="1" stop-color="${col()}"/></linearGradient></defs>
    <rect width="${width}" height="${height}" fill="url(#g)"/></svg>`;
  return sharp(Buffer.from(svg)).removeAlpha().jpeg({ quality: 85 }).toBuffer();
}

/** An almost flat grey picture: a blank crop of a wall or sky, with sensor-like noise. */
export async function nearFlat(grey: number, width = 500, height = 400): Promise<Buffer> {
  const g = grey.toString(16).padStart(2, '0');
  return sharp({ create: { width, height, channels: 3, background: `#${g}${g}${g}`, noise: { type: 'gaussian', mean: grey, sigma: 1.5 } } })
    .jpeg({ quality: 85 }).toBuffer();
}

const drawn = (width: number, height: number, body: string) =>
  sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${body}</svg>`)).removeAlpha().jpeg({ quality: 92 }).toBuffer();

/** A flag of two flat horizontal colour bands: one straight border, nothing else. */
export const bandFlag = (top: string, bottom: string): Promise<Buffer> =>
  drawn(600, 400, `<rect width="600" height="200" fill="${top}"/><rect y="200" width="600" height="200" fill="${bottom}"/>`);

/** A flat-shaded facade (a block with a slanted roof against the sky): a few straight edges, few keypoints. */
export const facadeScene = (): Promise<Buffer> =>
  drawn(640, 400, '<rect width="640" height="400" fill="#0a2a55"/><polygon points="0,150 380,120 380,400 0,400" fill="#0b5570"/><polygon points="380,120 640,190 640,400 380,400" fill="#d8f0e4"/>');

/**
 * A flat-shaded dune under a sky (a slanted ridge, a tilted ellipse of sunlit sand crossing
 * it, a curved shadow), 1024 x 640: a few large shapes with curved borders, few keypoints.
 */
export const duneScene = (): Promise<Buffer> =>
  drawn(1024, 640, '<rect width="1024" height="640" fill="#74c2b8"/><polygon points="0,520 1024,200 1024,640 0,640" fill="#045a6a"/>'
    + '<ellipse cx="860" cy="330" rx="300" ry="110" transform="rotate(38 860 330)" fill="#f8bc50"/>'
    + '<path d="M 120 640 Q 380 420 700 470 L 760 640 Z" fill="#0a3a48"/>');

/** Parallel diagonal colour bands with wavy borders, like a flat-shaded wallpaper of ribbons. */
export function wavyBands(): Promise<Buffer> {
  const colours = ['#e8a0a8', '#b84060', '#801838', '#60b8f0', '#8898a8', '#283040', '#d07080'];
  let body = '<rect width="640" height="400" fill="#404850"/>';
  colours.forEach((c, i) => {
    const x0 = -300 + i * 150;
    let d = `M ${x0} 420`;
    for (let y = 420; y >= -20; y -= 20) d += ` L ${(x0 + (420 - y) * 0.8 + 12 * Math.sin(y / 23 + i)).toFixed(1)} ${y}`;
    body += `<path d="${d} L 1200 -20 L 1200 420 Z" fill="${c}"/>`;
  });
  return drawn(640, 400, body);
}

/**
 * A few large shapes under thousands of dots a few pixels wide (no noise: the same pixels
 * every run). At the working size its strongest SIFT keypoints are the dots; a 120-px
 * thumbnail has lost them and keeps only the shapes.
 */
export async function dottedScene(seed: number, width = 1024, height = 768): Promise<Buffer> {
  const r = rng(seed);
  const col = () => `rgb(${Math.floor(r() * 256)},${Math.floor(r() * 256)},${Math.floor(r() * 256)})`;
  const parts = [`<rect width="${width}" height="${height}" fill="${col()}"/>`];
  for (let i = 0; i < 25; i++) {
    const x = r() * width;
    const y = r() * height;
    const s = 60 + r() * 140;
    parts.push(i % 2
      ? `<ellipse cx="${x}" cy="${y}" rx="${s / 2}" ry="${s / 3}" fill="${col()}"/>`
      : `<rect x="${x}" y="${y}" width="${s}" height="${s * (0.4 + r())}" fill="${col()}" transform="rotate(${r() * 90} ${x} ${y})"/>`);
  }
  for (let i = 0; i < 3000; i++) parts.push(`<circle cx="${r() * width}" cy="${r() * height}" r="${4 * (0.5 + r())}" fill="${col()}"/>`);
  return sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join('')}</svg>`)).removeAlpha().png().toBuffer();
}

/**
 * A colour boost done in 8-bit arithmetic: each channel scaled past 255 wraps around (so its
 * tone curve is not monotone: white turns dark), then posterized to 8 levels.
 */
export async function wrappedPosterize(img: Buffer): Promise<Buffer> {
  const { data, info } = await sharp(img).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  // & 0xe0 keeps bits 5-7 of the sum: the wrap (mod 256) and the 8 levels at once.
  for (let i = 0; i < data.length; i++) data[i] = (Math.round(data[i]! * 1.8) + 40) & 0xe0;
  return sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } }).jpeg({ quality: 90 }).toBuffer();
}
