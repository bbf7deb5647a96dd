import { AppError } from '@doppel/service-kit';

// Node's Buffer.from(s, 'base64') skips characters outside the alphabet: a corrupted
// upload would decode to different bytes instead of being refused.
// One character class and a length rule, not a repeated group: V8 backtracks a repeated group
// on the stack, and a 20 MB string overflowed it (500 instead of a decode).
const ALPHABET = /^[A-Za-z0-9+/]*(={0,2})$/;
const isStrictBase64 = (s: string): boolean => {
  const m = ALPHABET.exec(s);
  if (!m) return false;
  // Padded: whole quads. Unpadded: a last quad of 2 or 3 characters, never 1.
  return m[1]!.length > 0 ? s.length % 4 === 0 : s.length % 4 !== 1;
};

/** Strict base64 (standard alphabet, optional data: URL prefix, line breaks allowed): anything else is a 400. */
export function decodeBase64(data: string, maxBytes: number, field = 'image_base64'): Buffer {
  // Size first: a huge string is refused before any decoding work.
  if (Math.floor((data.length * 3) / 4) > maxBytes + 3) throw new AppError('PAYLOAD_TOO_LARGE', `${field} decodes to more than the ${maxBytes} bytes allowed`);
  const body = (data.startsWith('data:') ? data.slice(data.indexOf(',') + 1) : data).replace(/[\r\n]+/g, '');
  if (!isStrictBase64(body)) throw new AppError('INVALID_REQUEST', `${field}: is not valid base64`);
  const buf = Buffer.from(body, 'base64');
  if (buf.length === 0) throw new AppError('INVALID_REQUEST', `${field}: is empty`);
  if (buf.length > maxBytes) throw new AppError('PAYLOAD_TOO_LARGE', `${field} decodes to more than the ${maxBytes} bytes allowed`);
  return buf;
}
