/**
 * Helpers for tests that speak HTTP to a real app. Kept out of the main entry so
 * production code never imports them.
 */
import { createServer } from 'node:net';
import { createLogger } from './logger.js';
import { serve } from './serve.js';
import type { Service } from './service.js';

export interface EnvelopeReply {
  status: number;
  headers: Headers;
  // Tests inspect arbitrary response shapes; the schemas are checked separately.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: { global_status: 0 | 1; error_message: string; error_code?: string; response: any };
}

export async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  init: { headers?: Record<string, string>; raw?: string | Uint8Array | FormData } = {},
): Promise<EnvelopeReply> {
  const headers: Record<string, string> = { ...init.headers };
  let payload: string | Uint8Array | FormData | undefined = init.raw;
  if (body !== undefined) {
    headers['content-type'] ??= 'application/json';
    payload = JSON.stringify(body);
  }
  const r = await fetch(base + path, { method, headers, body: payload });
  const text = await r.text();
  let parsed: EnvelopeReply['body'];
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${method} ${path}: non-JSON reply ${r.status}: ${text.slice(0, 200)}`);
  }
  return { status: r.status, headers: r.headers, body: parsed };
}

/** Ports nothing listens on right now (bound to 0, read, released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => resolve(s));
  })));
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

export interface Listening {
  base: string;
  /** Stops serving, then closes the service. */
  close(): Promise<void>;
  /** Stops serving without closing the service (state left as a crash would leave it). */
  abandon(): Promise<void>;
}

/** Serves a built service on 127.0.0.1, port 0, and runs its start() (as serveMain does). */
export async function listen(service: Service): Promise<Listening> {
  const srv = await serve(service.app, { port: 0, host: '127.0.0.1', logger: createLogger('test', 'silent') });
  const close = async () => {
    await srv.close();
    await service.close();
  };
  try {
    await service.start?.();
  } catch (e) {
    await close();
    throw e;
  }
  return { base: `http://127.0.0.1:${srv.port}`, close, abandon: () => srv.close() };
}
