import { crc32, deflateSync } from 'node:zlib';

/*
 * Small files that claim to be enormous images, and formats a service must refuse: each
 * is a few hundred bytes to a few KB, built by hand so no bomb is ever decoded to make it.
 */
function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body) >>> 0);
  return Buffer.concat([len, body, crc]);
}

/** A PNG whose header says width x height (8-bit grey), with a few rows of real data. */
export function pngClaiming(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 0, 0, 0, 0], 8);
  const rows = Buffer.alloc(Math.min(width + 1, 1 << 16) * 4);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(rows)), pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A baseline JPEG header (SOF0) declaring width x height, then the end marker. */
export function jpegClaiming(width: number, height: number): Buffer {
  const sof = Buffer.from([0xff, 0xc0, 0x00, 0x0b, 0x08, height >> 8, height & 0xff, width >> 8, width & 0xff, 0x01, 0x01, 0x11, 0x00]);
  return Buffer.concat([Buffer.from([0xff, 0xd8]), sof, Buffer.from([0xff, 0xd9])]);
}

/** A GIF whose logical screen and first frame are width x height, with a one-pixel LZW stream. */
export function gifClaiming(width: number, height: number): Buffer {
  const le16 = (n: number) => [n & 0xff, n >> 8];
  return Buffer.from([
    ...Buffer.from('GIF89a', 'latin1'), ...le16(width), ...le16(height), 0x80, 0, 0, 0, 0, 0, 255, 255, 255,
    0x2c, 0, 0, 0, 0, ...le16(width), ...le16(height), 0, 0x02, 0x02, 0x44, 0x01, 0, 0x3b,
  ]);
}

/** A little-endian TIFF with one strip, declaring width x height 8-bit grey. */
export function tiffClaiming(width: number, height: number): Buffer {
  const entries: Array<[number, number, number, number]> = [
    [256, 4, 1, width], [257, 4, 1, height], [258, 3, 1, 8], [259, 3, 1, 1], [262, 3, 1, 1],
    [273, 4, 1, 8 + 2 + 12 * 9 + 4], [277, 3, 1, 1], [278, 4, 1, height], [279, 4, 1, 16],
  ];
  const ifd = Buffer.alloc(2 + entries.length * 12 + 4);
  ifd.writeUInt16LE(entries.length, 0);
  entries.forEach(([tag, type, count, value], i) => {
    const o = 2 + i * 12;
    ifd.writeUInt16LE(tag, o);
    ifd.writeUInt16LE(type, o + 2);
    ifd.writeUInt32LE(count, o + 4);
    if (type === 3) ifd.writeUInt16LE(value, o + 8);
    else ifd.writeUInt32LE(value, o + 8);
  });
  const header = Buffer.from([0x49, 0x49, 0x2a, 0x00, 0x08, 0x00, 0x00, 0x00]);
  return Buffer.concat([header, ifd, Buffer.alloc(16)]);
}

/** The 3.6 KB SVG of the probe: 7000x7000 with a blur filter (25 s to rasterise). */
export function svgBomb(): Buffer {
  const shapes = Array.from({ length: 40 }, (_, i) => `<circle cx="${(i * 173) % 7000}" cy="${(i * 311) % 7000}" r="${500 + i * 20}" fill="#${(i * 123456).toString(16).padStart(6, '0').slice(0, 6)}"/>`).join('');
  return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="7000" height="7000"><defs><filter id="b"><feGaussianBlur stdDeviation="200"/></filter></defs><g filter="url(#b)">${shapes}</g></svg>`);
}

/** Hostile inputs by name: each must be refused with a 4xx, quickly. */
export function hostileImages(): Array<[string, Buffer]> {
  return [
    ['png 100000x100000', pngClaiming(100_000, 100_000)],
    ['png 60000x1 (wide strip)', pngClaiming(60_000, 1000)],
    ['jpeg 65500x65500', jpegClaiming(65_500, 65_500)],
    ['gif 65535x65535', gifClaiming(65_535, 65_535)],
    ['tiff 100000x100000', tiffClaiming(100_000, 100_000)],
    ['svg 7000x7000 blur', svgBomb()],
    ['svg script', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>while(1){}</script></svg>')],
    ['html', Buffer.from('<!doctype html><html><body><img src="http://127.0.0.1/"></body></html>')],
    ['pdf header', Buffer.from('%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF')],
    ['random bytes', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24))],
    ['truncated png', pngClaiming(64, 64).subarray(0, 40)],
    ['empty-ish', Buffer.from([0xff, 0xd8])],
  ];
}
