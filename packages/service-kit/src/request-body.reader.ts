import type { Request, Response } from 'express';
import { createBrotliDecompress, createGunzip, createInflate, type Gunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { AppError } from './app-error.js';

export interface BodyOptions {
  /** Largest body, in bytes after decompression (counted while inflating, never after). */
  maxBytes: number;
  /** The whole body must arrive within this; a slow client gets 408 and its connection closes. */
  timeoutMs: number;
  /** Shared by every request of one app: bounds the body bytes buffered at once. */
  budget?: BodyBudget;
}

/**
 * Body bytes held by requests in flight. Per-request limits alone let N concurrent
 * requests hold N x limit (a few KB of gzip each inflate to the limit): past the budget
 * new bytes are refused with 503 until earlier requests finish and release theirs.
 */
export class BodyBudget {
  private used = 0;
  constructor(readonly maxBytes: number) {}

  get inUse(): number {
    return this.used;
  }

  /** Takes n more bytes for a request; false (nothing taken) when that would pass the budget. */
  take(n: number): boolean {
    if (this.used + n > this.maxBytes) return false;
    this.used += n;
    return true;
  }

  release(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

type Decoder = Gunzip | ReturnType<typeof createInflate> | ReturnType<typeof createBrotliDecompress>;

function decoderFor(encoding: string): Decoder | undefined {
  switch (encoding) {
    case 'identity':
      return undefined;
    case 'gzip':
    case 'x-gzip':
      return createGunzip();
    case 'deflate':
      return createInflate();
    case 'br':
      return createBrotliDecompress();
    default:
      throw new AppError('UNSUPPORTED_MEDIA_TYPE', `content-encoding ${JSON.stringify(encoding)} is not supported (identity, gzip, deflate, br)`);
  }
}

/** True when the request declares a body (a length above 0, or chunked framing). */
export const hasBody = (req: Request): boolean =>
  req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;

/**
 * Reads a request body into one Buffer, or throws an AppError without reading further:
 * a declared length over the limit is refused before the first byte (413), a stream is
 * cut as soon as it passes the limit (413, counted after decompression), corrupt
 * gzip/deflate/br data is a 400, a body that is not whole within timeoutMs a 408.
 * Whatever is refused leaves the rest unread; the error middleware then closes the
 * connection instead of draining it.
 */
export function readBody(req: Request, res: Response, opts: BodyOptions): Promise<Buffer> {
  const encoding = String(req.headers['content-encoding'] ?? 'identity').trim().toLowerCase() || 'identity';
  const decoder = decoderFor(encoding);
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > opts.maxBytes) {
    return Promise.reject(new AppError('PAYLOAD_TOO_LARGE', `request body of ${declared} bytes is over the ${opts.maxBytes} allowed`));
  }
  const budget = opts.budget;
  let held = 0;
  if (budget) res.once('close', () => budget.release(held));

  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let settled = false;
    const source: Readable = decoder ?? req;

    const finish = (err: AppError | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.off('data', onRaw);
      req.off('end', onRawEnd);
      req.off('aborted', onAborted);
      req.off('error', onAborted);
      source.off('data', onData);
      source.off('end', onEnd);
      if (decoder) {
        decoder.off('error', onDecodeError);
        // Late zlib errors after destroy must not become uncaught exceptions.
        decoder.on('error', () => undefined);
        decoder.destroy();
      }
      if (err) {
        // Stop pulling bytes; the error middleware answers with Connection: close.
        req.pause();
        reject(err);
      } else {
        resolve(Buffer.concat(chunks, total));
      }
    };

    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > opts.maxBytes) {
        finish(new AppError('PAYLOAD_TOO_LARGE', `request body is over the ${opts.maxBytes} bytes allowed${decoder ? ' once decompressed' : ''}`));
        return;
      }
      if (budget) {
        if (!budget.take(chunk.length)) {
          finish(new AppError('UNAVAILABLE', 'too many request bodies are being received at once; retry shortly', { retryAfter: 1 }));
          return;
        }
        held += chunk.length;
      }
      chunks.push(chunk);
    };
    const onEnd = () => finish(undefined);
    const onDecodeError = () => finish(new AppError('INVALID_REQUEST', `request body is not valid ${encoding} data`));
    const onAborted = () => finish(new AppError('INVALID_REQUEST', 'request aborted before its body was complete'));
    // Compressed bodies: raw bytes go to the decoder by hand, so one 'data' path counts
    // both, and backpressure from zlib pauses the socket.
    const onRaw = (chunk: Buffer) => {
      if (decoder && !decoder.write(chunk)) {
        req.pause();
        decoder.once('drain', () => { if (!settled) req.resume(); });
      }
    };
    const onRawEnd = () => decoder?.end();
    const timer = setTimeout(
      () => finish(new AppError('REQUEST_TIMEOUT', `request body did not arrive within ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    );

    source.on('data', onData);
    source.on('end', onEnd);
    req.on('aborted', onAborted);
    req.on('error', onAborted);
    if (decoder) {
      decoder.on('error', onDecodeError);
      req.on('data', onRaw);
      req.on('end', onRawEnd);
    }
    // Already read to the end by someone else: nothing more will come.
    if (req.readableEnded) finish(new AppError('INVALID_REQUEST', 'request body was already consumed'));
  });
}
