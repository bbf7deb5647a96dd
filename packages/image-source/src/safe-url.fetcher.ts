import { BlockList, isIP, type LookupFunction } from 'node:net';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { Agent, buildConnector, request } from 'undici';
import { AppError } from '@doppel/service-kit';

export interface UrlFetcherOptions {
  timeoutMs: number;
  maxBytes: number;
  maxRedirects: number;
  /** Allow loopback/private/link-local targets (tests, trusted networks). */
  allowPrivate: boolean;
}

export interface UrlFetcher {
  fetch(url: string): Promise<Buffer>;
  close(): Promise<void>;
}

/** Addresses a server-side fetch must never reach unless explicitly allowed (SSRF). */
const BLOCKED = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16],
  ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) BLOCKED.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  // ::/96 holds ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d (a host may route them to IPv4).
  ['::', 96], ['100::', 64], ['2001::', 32], ['2001:db8::', 32], ['64:ff9b::', 96], ['64:ff9b:1::', 48],
  ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8],
] as const) BLOCKED.addSubnet(net, bits, 'ipv6');

/** The 16 bytes of an IPv6 address (any textual form, dotted IPv4 tail included). */
function ipv6Bytes(address: string): number[] {
  let text = address.toLowerCase().replace(/%.*$/, '');
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

/** The IPv4 address an IPv6 form carries inside it (mapped, translated, 6to4), if any. */
function embeddedIpv4(address: string): string | undefined {
  const b = ipv6Bytes(address);
  const zero = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  const v4 = (at: number) => b.slice(at, at + 4).join('.');
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return v4(12); // ::ffff:0:0/96 mapped
  if (zero(0, 8) && b[8] === 0xff && b[9] === 0xff && zero(10, 12)) return v4(12); // ::ffff:0:0:0/96 translated
  if (b[0] === 0x20 && b[1] === 0x02) return v4(2); // 2002::/16 6to4
  return undefined;
}

export function isBlockedAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return BLOCKED.check(address, 'ipv4');
  if (family === 6) {
    const inner = embeddedIpv4(address);
    if (inner !== undefined && BLOCKED.check(inner, 'ipv4')) return true;
    return BLOCKED.check(address, 'ipv6');
  }
  return true;
}

/**
 * Names that mean this machine whatever DNS says (RFC 6761), trailing dots and case
 * ignored: refused before any lookup, so `localhost.` is a 403 like 127.0.0.1, not a 502.
 */
export function isLocalHostname(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/\.+$/, '');
  return h === 'localhost' || h.endsWith('.localhost') || h === 'localhost.localdomain';
}

class BlockedAddressError extends Error {
  readonly code = 'E_DOPPEL_BLOCKED_ADDRESS';
  constructor(readonly address: string) {
    super(`address ${address} is not allowed`);
  }
}

/**
 * DNS lookup that refuses blocked addresses. It runs inside the connection attempt, so
 * the address checked is the address connected to (no DNS-rebinding window).
 */
const checkedLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
    if (err) return callback(err, '', 0);
    const bad = addresses.find((a) => isBlockedAddress(a.address));
    if (bad) return callback(new BlockedAddressError(bad.address), '', 0);
    if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
    const first = addresses[0];
    if (!first) return callback(new Error(`no address for ${hostname}`), '', 0);
    callback(null, first.address, first.family);
  });
};

function findCause(e: unknown): unknown {
  for (let cur = e, depth = 0; cur && depth < 8; depth++) {
    if (cur instanceof BlockedAddressError || cur instanceof AppError) return cur;
    if (cur instanceof Error && (cur.name === 'TimeoutError' || cur.name === 'AbortError')) return cur;
    cur = (cur as { cause?: unknown }).cause;
  }
  return e;
}

function toAppError(e: unknown, url: string): AppError {
  const cause = findCause(e);
  if (cause instanceof AppError) return cause;
  if (cause instanceof BlockedAddressError) return new AppError('FORBIDDEN_PATH', `url ${url} resolves to a private or local address (${cause.address}), which is not allowed`);
  if (cause instanceof Error && (cause.name === 'TimeoutError' || cause.name === 'AbortError')) return new AppError('DOWNSTREAM_TIMEOUT', `url ${url} did not answer in time`);
  const code = (e as { code?: string }).code ?? (cause as { code?: string }).code;
  return new AppError('DOWNSTREAM_FAILURE', `url ${url} could not be fetched${code ? ` (${code})` : ''}`);
}

export function createUrlFetcher(opts: UrlFetcherOptions): UrlFetcher {
  const base = buildConnector(opts.allowPrivate ? { timeout: opts.timeoutMs } : { timeout: opts.timeoutMs, lookup: checkedLookup });
  const connect: buildConnector.connector = (o, cb) => {
    // Literal IPs never reach the lookup; check them here, still at connect time.
    const host = o.hostname.replace(/^\[|\]$/g, '');
    if (!opts.allowPrivate && ((isIP(host) && isBlockedAddress(host)) || isLocalHostname(host))) {
      cb(new BlockedAddressError(host), null);
      return;
    }
    base(o, cb);
  };
  const agent = new Agent({ connect, connections: 16, headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs });

  async function fetchUrl(url: string): Promise<Buffer> {
    const signal = AbortSignal.timeout(opts.timeoutMs);
    let current: URL;
    try {
      current = new URL(url);
    } catch {
      throw new AppError('INVALID_REQUEST', 'url: is not a valid URL');
    }
    for (let hop = 0; ; hop++) {
      if (current.protocol !== 'http:' && current.protocol !== 'https:') {
        throw new AppError('INVALID_REQUEST', `url: only http and https are supported, got ${current.protocol}`);
      }
      const res = await request(current, { dispatcher: agent, method: 'GET', signal, headers: { accept: 'image/*' } });
      if (res.statusCode >= 300 && res.statusCode < 400 && res.statusCode !== 304) {
        await res.body.dump();
        const location = res.headers.location;
        if (typeof location !== 'string') throw new AppError('DOWNSTREAM_FAILURE', `url ${url} redirected without a location`);
        if (hop >= opts.maxRedirects) throw new AppError('DOWNSTREAM_FAILURE', `url ${url} redirected more than ${opts.maxRedirects} times`);
        current = new URL(location, current);
        continue;
      }
      if (res.statusCode === 404 || res.statusCode === 410) {
        await res.body.dump();
        throw new AppError('IMAGE_NOT_FOUND', `url ${url} answered ${res.statusCode}`);
      }
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new AppError('DOWNSTREAM_FAILURE', `url ${url} answered ${res.statusCode}`);
      }
      const declared = Number(res.headers['content-length'] ?? NaN);
      if (declared > opts.maxBytes) {
        res.body.destroy();
        throw new AppError('PAYLOAD_TOO_LARGE', `url ${url} holds ${declared} bytes, more than the ${opts.maxBytes} allowed`);
      }
      const chunks: Buffer[] = [];
      let total = 0;
      for await (const chunk of res.body) {
        const b = chunk as Buffer;
        total += b.length;
        if (total > opts.maxBytes) {
          res.body.destroy();
          throw new AppError('PAYLOAD_TOO_LARGE', `url ${url} holds more than the ${opts.maxBytes} bytes allowed`);
        }
        chunks.push(b);
      }
      return Buffer.concat(chunks, total);
    }
  }

  return {
    async fetch(url) {
      try {
        return await fetchUrl(url);
      } catch (e) {
        throw toAppError(e, url);
      }
    },
    close: () => agent.close(),
  };
}
