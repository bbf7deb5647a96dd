import { AppError } from '@doppel/service-kit';

// Node's Buffer.from(s, 'base64') skips characters outside the alphabet: a corrupted
// upload would decode to different bytes instead of being refused.
const STRICT = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;

/** Strict base64 (standard alphabet, optional data: URL prefix, line breaks allowed): anything else is a 400. */
export function decodeBase64(data: string, maxBytes: number, field = 'image_base64'): Buffer {
  // Size first: a huge string is refused before any decoding work.
  if (Math.floor((data.length * 3) / 4) > maxBytes + 3) throw new AppError('PAYLOAD_TOO_LARGE', `${field} decodes to more than the ${maxBytes} bytes allowed`);
  const body = (data.startsWith('data:') ? data.slice(data.indexOf(',') + 1) : data).replace(/[\r\n]+/g, '');
  if (!STRICT.test(body)) throw new AppError('INVALID_REQUEST', `${field}: is not valid base64`);
  const buf = Buffer.from(body, 'base64');
  if (buf.length === 0) throw new AppError('INVALID_REQUEST', `${field}: is empty`);
  if (buf.length > maxBytes) throw new AppError('PAYLOAD_TOO_LARGE', `${field} decodes to more than the ${maxBytes} bytes allowed`);
  return buf;
}
