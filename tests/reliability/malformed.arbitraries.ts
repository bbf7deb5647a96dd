import fc from 'fast-check';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';

/*
 * fast-check generators of malformed requests: a valid template per endpoint, then one of
 * many ways to break it (a field of the wrong type or range, NaN/Infinity tokens, wrong
 * dimensions, deep nesting, unknown or missing fields, truncated or random bodies, wrong
 * content types and charsets, compressed garbage, multipart, random bytes as images).
 */
export interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Uint8Array | string;
  /** What was done to the template, for the failure message. */
  how: string;
}

export interface Endpoint {
  service: 'image-encoder' | 'contextual-search' | 'instance-matching' | 'pipeline';
  method: 'POST' | 'DELETE' | 'GET';
  path: string;
  /** A valid request body (POST/DELETE) or query (GET) to break. */
  template: Record<string, unknown>;
}

const nested = (depth: number, leaf: unknown): unknown => {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 ? { k: v } : [v];
  return v;
};

/** Values that do not belong where a field expects something else. */
const nastyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.integer(),
  fc.double(), // NaN and ±Infinity become null in JSON
  fc.constantFrom(0, -1, 1e308, -1e308, 2 ** 53 + 1, 1e-320, 65536, 4097, 1001, 10001),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.double({ noNaN: true }), { maxLength: 5000 }),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 20 }),
  fc.jsonValue({ maxDepth: 3 }),
  fc.integer({ min: 1, max: 3000 }).map((d) => nested(d, 1)),
  fc.constantFrom('../../etc/passwd', '/etc/passwd', 'a/../../x.jpg', '..', '.', './', '', '\u0000x.jpg', 'C:\\x.jpg', '%2e%2e/x', 'x'.repeat(5000)),
  fc.constantFrom('file:///etc/passwd', 'http://127.0.0.1:1/x.png', 'gopher://x', 'http://[::1]/', 'http://localhost./', 'not a url', 'http://0x7f000001/'),
  fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b).toString('base64')),
  fc.constantFrom('!!!not base64!!!', 'data:image/png;base64,AAAA', '='.repeat(100), 'iVBORw0KGgo='),
);

type Mutation = (t: Record<string, unknown>) => fc.Arbitrary<{ body: string | Uint8Array; how: string; headers?: Record<string, string> }>;

const asJson = (v: unknown) => JSON.stringify(v) ?? 'null';

const mutations: Mutation[] = [
  // A field replaced by a value of the wrong kind.
  (t) => fc.tuple(fc.constantFrom(...Object.keys(t)), nastyValue).map(([k, v]) => ({ body: asJson({ ...t, [k]: v }), how: `${k} := ${asJson(v).slice(0, 80)}` })),
  // A nested field replaced (items[0].x, neighbors[0]).
  (t) => fc.tuple(fc.constantFrom(...Object.keys(t)), nastyValue).map(([k, v]) => {
    const inner = t[k];
    const broken = Array.isArray(inner) && inner.length > 0
      ? [typeof inner[0] === 'object' && inner[0] !== null ? { ...inner[0], [Object.keys(inner[0] as object)[0] ?? 'x']: v } : v, ...inner.slice(1)]
      : v;
    return { body: asJson({ ...t, [k]: broken }), how: `${k}[0] := ${asJson(v).slice(0, 80)}` };
  }),
  // Missing field, unknown field.
  (t) => fc.constantFrom(...Object.keys(t)).map((k) => {
    const copy = { ...t };
    delete copy[k];
    return { body: asJson(copy), how: `without ${k}` };
  }),
  (t) => fc.tuple(fc.string({ minLength: 1, maxLength: 20 }), nastyValue).map(([k, v]) => ({ body: asJson({ ...t, [`${k}_x`]: v }), how: `extra ${k}_x` })),
  // Whole body of another shape.
  () => fc.jsonValue({ maxDepth: 4 }).map((v) => ({ body: asJson(v), how: `body := ${asJson(v).slice(0, 80)}` })),
  // Tokens JSON does not have, truncation, random text and bytes.
  (t) => fc.tuple(fc.constantFrom(...Object.keys(t)), fc.constantFrom('NaN', 'Infinity', '-Infinity', 'undefined', '1e99999', '0x10', '01', '.5', "'x'"))
    .map(([k, tok]) => ({ body: asJson(t).replace(new RegExp(`("${k}":)`), `$1${tok},"_":`), how: `${k}: ${tok}` })),
  (t) => fc.nat().map((n) => {
    const s = asJson(t);
    const cut = s.length > 1 ? n % (s.length - 1) : 0;
    return { body: s.slice(0, cut), how: `truncated at ${cut}` };
  }),
  () => fc.string({ unit: 'binary', maxLength: 300 }).map((s) => ({ body: s, how: 'random text' })),
  () => fc.uint8Array({ maxLength: 2000 }).map((b) => ({ body: b, how: `random ${b.length} bytes` })),
  // Nesting past any sane depth, as text (JSON.stringify would overflow first).
  () => fc.integer({ min: 50, max: 20_000 }).map((d) => ({ body: `{"a":${'['.repeat(d)}${']'.repeat(d)}}`, how: `nested ${d} deep` })),
  // Wrong content types and charsets.
  (t) => fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', 'application/xml', 'image/png', '', 'application/json; charset=utf-16')
    .map((ct) => ({ body: asJson(t), how: `content-type ${ct}`, headers: { 'content-type': ct } })),
  // Multipart, with random bytes as the image or no boundary at all.
  () => fc.tuple(fc.uint8Array({ maxLength: 3000 }), fc.boolean()).map(([bytes, goodBoundary]) => {
    const b = 'XyZfuzz';
    const body = Buffer.concat([
      Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`),
      Buffer.from(bytes), Buffer.from(`\r\n--${b}--\r\n`),
    ]);
    return { body, how: `multipart ${bytes.length} random bytes`, headers: { 'content-type': goodBoundary ? `multipart/form-data; boundary=${b}` : 'multipart/form-data' } };
  }),
  // Encodings: garbage claiming to be compressed, valid compression of a broken body, unknown.
  () => fc.tuple(fc.constantFrom('gzip', 'deflate', 'br'), fc.uint8Array({ minLength: 1, maxLength: 2000 }))
    .map(([enc, bytes]) => ({ body: bytes, how: `${enc} of random bytes`, headers: { 'content-encoding': enc } })),
  (t) => fc.tuple(fc.constantFrom('gzip', 'deflate', 'br'), fc.constantFrom(...Object.keys(t)), nastyValue).map(([enc, k, v]) => {
    const raw = Buffer.from(asJson({ ...t, [k]: v }));
    const body = enc === 'gzip' ? gzipSync(raw) : enc === 'deflate' ? deflateSync(raw) : brotliCompressSync(raw);
    return { body, how: `${enc} of ${k} := ${asJson(v).slice(0, 60)}`, headers: { 'content-encoding': enc } };
  }),
  () => fc.constantFrom('compress', 'gzip, gzip', 'zstd', 'identity, br', 'x-unknown')
    .map((enc) => ({ body: '{}', how: `content-encoding ${enc}`, headers: { 'content-encoding': enc } })),
];

/** Malformed variants of one endpoint's request (query strings for GET). */
export function malformedRequest(ep: Endpoint): fc.Arbitrary<FuzzRequest> {
  if (ep.method === 'GET') {
    const key = fc.oneof(fc.constantFrom(...Object.keys(ep.template)), fc.string({ maxLength: 10 }));
    const val = fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('NaN', '-1', '1e9', '1.5', '', 'true', '99999999999999999999', '%00', '[]'));
    return fc.array(fc.tuple(key, val), { minLength: 1, maxLength: 4 }).map((pairs) => {
      const qs = pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
      return { method: 'GET', path: `${ep.path}?${qs}`, headers: {}, how: `query ${qs}` };
    });
  }
  return fc.oneof(...mutations.map((m) => m(ep.template))).map((m) => ({
    method: ep.method,
    path: ep.path,
    headers: { 'content-type': 'application/json', ...m.headers },
    body: m.body,
    how: m.how,
  }));
}
