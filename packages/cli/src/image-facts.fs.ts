import sharp from 'sharp';
import pLimit from 'p-limit';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { estimateJpegQuality } from './jpeg-quality.logic.js';

/** What the report says about one file, and what the keeper rule weighs. */
export interface ImageFacts {
  /** Path relative to the scanned folder's image root, forward slashes. */
  relative_path: string;
  width: number;
  height: number;
  /** sharp's name for the container: jpeg, png, webp, gif, tiff, heif, avif ... */
  format: string;
  bytes: number;
  mtime_ms: number;
  /** Estimated from the quantisation tables (JPEG only). */
  jpeg_quality?: number;
}

// DQT segments sit in the first few KB of a JPEG (before the scan); EXIF thumbnails can
// push them further, so read generously but never the whole file.
const HEADER_BYTES = 256 * 1024;

async function head(file: string): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await fh.read(buf, 0, HEADER_BYTES, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

export async function imageFacts(root: string, rel: string): Promise<ImageFacts> {
  const file = join(root, rel);
  const [st, bytes] = await Promise.all([stat(file), head(file)]);
  // Header only (sharp reads dimensions without decoding); EXIF orientation 5-8 swaps the sides.
  const meta = await sharp(bytes.length < st.size ? file : bytes).metadata();
  const swap = (meta.orientation ?? 1) >= 5;
  const width = (swap ? meta.height : meta.width) ?? 0;
  const height = (swap ? meta.width : meta.height) ?? 0;
  const format = meta.format ?? 'unknown';
  const quality = format === 'jpeg' ? estimateJpegQuality(bytes) : undefined;
  return {
    relative_path: rel, width, height, format, bytes: st.size, mtime_ms: Math.floor(st.mtimeMs),
    ...(quality !== undefined ? { jpeg_quality: quality } : {}),
  };
}

/** Facts of many files, a few at a time; a file that cannot be read is left out (the report says so). */
export async function collectFacts(root: string, rels: string[], concurrency = 8): Promise<{ facts: Map<string, ImageFacts>; unreadable: string[] }> {
  const limit = pLimit(concurrency);
  const facts = new Map<string, ImageFacts>();
  const unreadable: string[] = [];
  await Promise.all(rels.map((rel) => limit(async () => {
    try {
      facts.set(rel, await imageFacts(root, rel));
    } catch {
      unreadable.push(rel);
    }
  })));
  return { facts, unreadable: unreadable.sort() };
}
