/**
 * JPEG quality estimated from the file's luminance quantisation table: encoders derived
 * from libjpeg (cameras, phones, sharp, Photoshop's export, GIMP) scale the standard
 * Annex K table by a factor of the quality setting, so the quality whose scaled table is
 * closest to the file's is a good estimate of how hard the file was compressed. Encoders
 * with their own tables still land on a comparable number (coarser tables = lower quality).
 */

// ITU-T T.81 Annex K.1, in zig-zag order (the order DQT segments store).
const STD_LUMA_ZIGZAG = [
  16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40, 26, 24, 22, 22, 24, 49, 35, 37, 29, 40, 58, 51, 61, 60, 57, 51,
  56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56, 80, 109, 81, 87, 95, 98, 103, 104, 103, 62, 77, 113, 121, 112, 100, 120, 92, 101, 103, 99,
];

/** libjpeg's jpeg_quality_scaling + jpeg_add_quant_table (baseline: clamp to 1..255). */
export function scaledLumaTable(quality: number): number[] {
  const q = Math.min(100, Math.max(1, Math.round(quality)));
  const scale = q < 50 ? 5000 / q : 200 - q * 2;
  return STD_LUMA_ZIGZAG.map((v) => Math.min(255, Math.max(1, Math.floor((v * scale + 50) / 100))));
}

/** The luminance (id 0) quantisation table of a JPEG, in zig-zag order; undefined if none is found. */
export function readLumaTable(buf: Buffer): number[] | undefined {
  if (buf.length < 4 || buf[0] !== 0xff || buf[1] !== 0xd8) return undefined;
  let i = 2;
  while (i + 4 <= buf.length) {
    if (buf[i] !== 0xff) return undefined;
    const marker = buf[i + 1]!;
    if (marker === 0xff) { i += 1; continue; } // fill byte
    if (marker === 0xd9 || marker === 0xda) return undefined; // end of image / start of scan: no DQT before it
    const len = buf.readUInt16BE(i + 2);
    const end = i + 2 + len;
    if (marker === 0xdb) {
      let j = i + 4;
      while (j < end && j < buf.length) {
        const pq = buf[j]! >> 4; // 0: 8-bit entries, 1: 16-bit
        const tq = buf[j]! & 0x0f;
        const size = pq ? 128 : 64;
        if (j + 1 + size > buf.length) return undefined;
        if (tq === 0) return Array.from({ length: 64 }, (_, k) => (pq ? buf.readUInt16BE(j + 1 + 2 * k) : buf[j + 1 + k]!));
        j += 1 + size;
      }
    }
    i = end;
  }
  return undefined;
}

/** 1..100, or undefined when the bytes are not a JPEG with a luminance table. */
export function estimateJpegQuality(buf: Buffer): number | undefined {
  const table = readLumaTable(buf);
  if (!table) return undefined;
  let best = 0;
  let bestErr = Infinity;
  for (let q = 1; q <= 100; q++) {
    const ref = scaledLumaTable(q);
    let err = 0;
    for (let k = 0; k < 64; k++) err += Math.abs(ref[k]! - table[k]!);
    // Ties (flat tables at the extremes) go to the higher quality, the one the encoder
    // most likely used: q 98-100 all give tables of ones.
    if (err <= bestErr) { bestErr = err; best = q; }
  }
  return best;
}
