import sharp from 'sharp';
import { mulberry32 as rng } from '@doppel/service-kit';


/**
 * A textured synthetic "photo": many random shapes give SIFT plenty of corners, and
 * different seeds give unrelated images.
 */
export async function syntheticImage(seed: number, width = 480, height = 360): Promise<Buffer> {
  const r = rng(seed);
  const colour = () => `rgb(${Math.floor(r() * 256)},${Math.floor(r() * 256)},${Math.floor(r() * 256)})`;
  const shapes: string[] = [];
  for (let i = 0; i < 70; i++) {
    const x = r() * width;
    const y = r() * height;
    const s = 8 + r() * 60;
    const kind = r();
    if (kind < 0.4) shapes.push(`<rect x="${x}" y="${y}" width="${s}" height="${s * (0.3 + r())}" fill="${colour()}" transform="rotate(${r() * 90} ${x} ${y})"/>`);
    else if (kind < 0.7) shapes.push(`<circle cx="${x}" cy="${y}" r="${s / 2}" fill="${colour()}" stroke="${colour()}" stroke-width="3"/>`);
    else shapes.push(`<polygon points="${x},${y} ${x + s},${y + r() * s} ${x + r() * s},${y + s}" fill="${colour()}"/>`);
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="${colour()}"/>${shapes.join('')}</svg>`;
  return sharp(Buffer.from(svg)).jpeg({ quality: 92 }).toBuffer();
}

export type Transform = 'crop' | 'rot90' | 'mirror' | 'recompress';

/** The near-duplicate edits the system must see through. */
export async function transformed(img: Buffer, t: Transform): Promise<Buffer> {
  const s = sharp(img);
  const { width = 0, height = 0 } = await s.metadata();
  switch (t) {
    case 'crop':
      return s.extract({ left: Math.round(width * 0.12), top: Math.round(height * 0.12), width: Math.round(width * 0.76), height: Math.round(height * 0.76) }).jpeg({ quality: 88 }).toBuffer();
    case 'rot90':
      return s.rotate(90).jpeg({ quality: 88 }).toBuffer();
    case 'mirror':
      return s.flop().jpeg({ quality: 88 }).toBuffer();
    case 'recompress':
      return s.resize(Math.round(width * 0.6)).jpeg({ quality: 35 }).toBuffer();
  }
}

/**
 * A drawn picture of another kind than syntheticImage: a two-colour gradient under one
 * set of stripes (random period and angle) and a few large translucent discs. Its
 * fingerprint is far from the random-shape pictures', as a photo's is from another's.
 */
export async function stripedImage(seed: number, width = 480, height = 360): Promise<Buffer> {
  const r = rng(seed);
  const colour = () => `rgb(${Math.floor(r() * 256)},${Math.floor(r() * 256)},${Math.floor(r() * 256)})`;
  const period = 6 + r() * 40;
  const angle = r() * 180;
  const discs = Array.from({ length: 4 + Math.floor(r() * 6) }, () => `<circle cx="${r() * width}" cy="${r() * height}" r="${5 + (r() * width) / 4}" fill="${colour()}" fill-opacity="0.8"/>`).join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><defs>`
    + `<linearGradient id="g" gradientTransform="rotate(${r() * 360})"><stop offset="0" stop-color="${colour()}"/><stop offset="1" stop-color="${colour()}"/></linearGradient>`
    + `<pattern id="p" width="${period}" height="${period}" patternUnits="userSpaceOnUse" patternTransform="rotate(${angle})"><rect width="${period / 2}" height="${period}" fill="${colour()}" fill-opacity="0.7"/></pattern>`
    + `</defs><rect width="100%" height="100%" fill="url(#g)"/><rect width="100%" height="100%" fill="url(#p)"/>${discs}</svg>`;
  return sharp(Buffer.from(svg)).jpeg({ quality: 92 }).toBuffer();
}
