import { AppError } from '@doppel/service-kit';

/**
 * Downloads a url query once more for the matcher. It runs only after the encoder
 * accepted the same url, so the encoder's address policy has already vetted it.
 */
export async function fetchImage(url: string, timeoutMs: number, maxBytes: number): Promise<Buffer> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
  } catch (e) {
    const timedOut = (e as Error).name === 'TimeoutError';
    throw new AppError(timedOut ? 'DOWNSTREAM_TIMEOUT' : 'DOWNSTREAM_FAILURE', `${url}: ${timedOut ? `no answer within ${timeoutMs} ms` : (e as Error).message}`);
  }
  if (!res.ok || !res.body) throw new AppError('DOWNSTREAM_FAILURE', `${url}: HTTP ${res.status}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += chunk.byteLength;
    if (size > maxBytes) throw new AppError('PAYLOAD_TOO_LARGE', `${url}: larger than ${maxBytes} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}
