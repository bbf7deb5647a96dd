/** Synthetic test images rendered by sharp from SVG: textured scenes and low-texture ones. */
import sharp from 'sharp';
import { mulberry32 } from '@doppel/service-kit';

/** Same seeds as before: see mulberry32 in the service kit. */
export const rng = mulberry32;

const WORDS = ['delta', 'orbit', 'maple', 'quartz', 'nimbus', 'falcon', 'harbor', 'prism', 'velvet', 'zenith'];

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
  const noise = await sharp({ create: { width, height, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 0, sigma: 12 } } })
    .raw()
    .toBuffer();
  const base = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer();
  for (let i = 0; i < base.length; i++) base[i] = Math.max(0, Math.min(255, base[i]! + noise[i]! - 128));
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
