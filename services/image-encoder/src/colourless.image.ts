/**
 * Whether decoded RGB pixels carry no colour: a greyscale copy of a colour picture keeps
 * only its luma, so its fingerprint is compared with the greyscale fingerprints of the
 * collection, not with its colourful original's. JPEG chroma noise and a faint tint stay
 * under the tolerance; a sepia or duotone copy has a visible hue and is not colourless.
 */
export const CHROMA_TOLERANCE = 12;
/** Share of the pixels that may exceed the tolerance (a stray coloured logo, ringing at edges). */
export const COLOURED_SHARE = 0.01;

/** Greyscale by Rec. 601 luma, in place, every pixel's three channels set to it. */
export function toGrey(px: Uint8Array): Uint8Array {
  for (let p = 0; p < px.length; p += 3) {
    const g = Math.round(0.299 * px[p]! + 0.587 * px[p + 1]! + 0.114 * px[p + 2]!);
    px[p] = g;
    px[p + 1] = g;
    px[p + 2] = g;
  }
  return px;
}

/** Whether at most COLOURED_SHARE of the pixels have channels further apart than CHROMA_TOLERANCE. */
export function isColourless(px: Uint8Array): boolean {
  const n = px.length / 3;
  let coloured = 0;
  for (let p = 0; p < px.length; p += 3) {
    const r = px[p]!;
    const g = px[p + 1]!;
    const b = px[p + 2]!;
    if (Math.max(r, g, b) - Math.min(r, g, b) > CHROMA_TOLERANCE) coloured++;
  }
  return coloured <= COLOURED_SHARE * n;
}
