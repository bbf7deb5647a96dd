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

/**
 * One public endpoint and a valid request to break: a JSON body, form fields, query
 * parameters, multipart file fields and path parameters, as its OpenAPI operation takes them.
 */
export interface Endpoint {
  service: 'image-encoder' | 'contextual-search' | 'instance-matching' | 'pipeline';
  method: 'POST' | 'DELETE' | 'GET';
  /** The OpenAPI path, `{id}` for a path parameter. */
  path: string;
  json?: Record<string, unknown>;
  form?: Record<string, string>;
  query?: Record<string, string | number | boolean>;
  /** Multipart file fields the route reads. */
  files?: string[];
  /** Values of the path's `{name}` parameters. */
  params?: Record<string, string>;
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

const BOUNDARY = 'XyZfuzz';

/** A multipart body: text fields, then files of random bytes (or a valid image), optionally cut short. */
function multipart(fields: Record<string, string>, files: Array<[string, Uint8Array]>, cut?: number): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(fields)) parts.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  for (const [k, bytes] of files) {
    parts.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${k}"; filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`), Buffer.from(bytes), Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  const body = Buffer.concat(parts);
  return cut === undefined ? body : body.subarray(0, cut % Math.max(1, body.length));
}

/** Form values: strings, since that is all a form carries. */
const nastyText: fc.Arbitrary<string> = nastyValue.map((v) => (typeof v === 'string' ? v : asJson(v)));

/** Multipart uploads: random bytes as the image, odd field names and values, no boundary, cut bodies. */
function multipartMutations(files: string[], fields: Record<string, string>): Array<fc.Arbitrary<Omit<FuzzRequest, 'method' | 'path'>>> {
  const ct = { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` };
  return [
    fc.tuple(fc.subarray(files, { minLength: 0 }), fc.uint8Array({ maxLength: 3000 })).map(([names, bytes]) => ({
      body: multipart(fields, names.map((n) => [n, bytes])), headers: ct, how: `multipart ${names.join('+') || 'no file'}: ${bytes.length} random bytes`,
    })),
    fc.tuple(fc.constantFrom(...Object.keys(fields), 'extra', 'image', files[0] ?? 'image'), nastyText, fc.uint8Array({ maxLength: 600 })).map(([k, v, bytes]) => ({
      body: multipart({ ...fields, [k]: v }, files.map((n) => [n, bytes])), headers: ct, how: `multipart field ${k} := ${v.slice(0, 60)}`,
    })),
    fc.tuple(fc.uint8Array({ maxLength: 1000 }), fc.nat()).map(([bytes, cut]) => ({
      body: multipart(fields, files.map((n) => [n, bytes]), cut), headers: ct, how: `multipart cut at ${cut}`,
    })),
    fc.uint8Array({ maxLength: 1000 }).map((bytes) => ({
      body: multipart(fields, files.map((n) => [n, bytes])), headers: { 'content-type': 'multipart/form-data' }, how: 'multipart without a boundary',
    })),
    // The same file field twice.
    fc.uint8Array({ maxLength: 500 }).map((bytes) => ({
      body: multipart(fields, [...files, ...files].map((n) => [n, bytes])), headers: ct, how: 'multipart with each file twice',
    })),
  ];
}

const urlencoded = (fields: Record<string, string>) => Object.entries(fields).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');

/** Form bodies: fields replaced, missing, repeated, unknown, badly escaped. */
function formMutations(form: Record<string, string>): Array<fc.Arbitrary<Omit<FuzzRequest, 'method' | 'path'>>> {
  const ct = { 'content-type': 'application/x-www-form-urlencoded' };
  const keys = Object.keys(form).length ? Object.keys(form) : ['url'];
  return [
    fc.tuple(fc.constantFrom(...keys), nastyText).map(([k, v]) => ({ body: urlencoded({ ...form, [k]: v }), headers: ct, how: `form ${k} := ${v.slice(0, 60)}` })),
    fc.constantFrom(...keys).map((k) => {
      const copy = { ...form };
      delete copy[k];
      return { body: urlencoded(copy), headers: ct, how: `form without ${k}` };
    }),
    fc.tuple(fc.constantFrom(...keys), nastyText).map(([k, v]) => ({ body: `${urlencoded(form)}&${encodeURIComponent(k)}=${encodeURIComponent(v)}`, headers: ct, how: `form ${k} twice` })),
    fc.tuple(fc.string({ minLength: 1, maxLength: 20 }), nastyText).map(([k, v]) => ({ body: urlencoded({ ...form, [`${k}_x`]: v }), headers: ct, how: `form extra ${k}_x` })),
    fc.constantFrom('%zz', '%', '=&=&', '&&&', 'a[b][c]=1', 'x=%00', `${'a=1&'.repeat(200)}`, 'filepath[]=a&filepath[]=b')
      .map((raw) => ({ body: `${urlencoded(form)}&${raw}`, headers: ct, how: `form + ${raw.slice(0, 40)}` })),
    fc.string({ unit: 'binary', maxLength: 300 }).map((s) => ({ body: s, headers: ct, how: 'form of random text' })),
  ];
}

/** Query strings: known keys with odd values, unknown keys, repeated keys, bad escapes. */
function queryMutations(query: Record<string, string | number | boolean>): fc.Arbitrary<string> {
  const keys = Object.keys(query);
  const key = keys.length ? fc.oneof(fc.constantFrom(...keys), fc.string({ maxLength: 10 })) : fc.string({ maxLength: 10 });
  const val = fc.oneof(fc.string({ maxLength: 20 }), nastyText.map((v) => v.slice(0, 300)),
    fc.constantFrom('NaN', '-1', '1e9', '1.5', '', 'true', '99999999999999999999', '%00', '[]', '../../etc/passwd', '/etc/passwd'));
  const base = Object.entries(query).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return fc.oneof(
    fc.array(fc.tuple(key, val), { minLength: 1, maxLength: 4 }).map((pairs) => pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')),
    fc.tuple(fc.constantFrom(...(keys.length ? keys : ['x'])), val).map(([k, v]) => [...base.filter((b) => !b.startsWith(`${encodeURIComponent(k)}=`)), `${encodeURIComponent(k)}=${encodeURIComponent(v)}`].join('&')),
    fc.tuple(fc.constantFrom(...(keys.length ? keys : ['x'])), val, val).map(([k, a, b]) => [...base, `${k}=${encodeURIComponent(a)}`, `${k}=${encodeURIComponent(b)}`].join('&')),
    fc.constantFrom('%zz', '%', 'a=%ff%fe', '=', '&&', 'a[b]=1', '__proto__=1', 'constructor[prototype]=1', `${'a=1&'.repeat(100)}`),
  );
}

/** Path parameters: traversal, escapes, NUL, very long, unicode. */
const nastyParam: fc.Arbitrary<{ text: string; raw: boolean }> = fc.oneof(
  fc.string({ minLength: 1, maxLength: 40 }).map((text) => ({ text, raw: false })),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }).map((text) => ({ text, raw: false })),
  fc.constantFrom('.x', '..x', '../../etc/passwd', '%2e%2e%2f', '%00', '%', '%zz', '%ff', 'a%2fb', 'x'.repeat(3000), '~', 'img-0.jpg', 'sub/img-1.jpg')
    .map((text) => ({ text, raw: true })),
);

/** Malformed variants of one endpoint's request. */
export function malformedRequest(ep: Endpoint): fc.Arbitrary<FuzzRequest> {
  const params = Object.keys(ep.params ?? {});
  const fill = (path: string, values: Record<string, string>) => path.replace(/\{([A-Za-z_]+)\}/g, (_, n: string) => {
    const v = values[n] ?? '';
    // A '.' or '..' segment (also as %2e) is resolved away by the URL parser before it is sent.
    return /^(\.|%2e){1,2}$/i.test(v) ? `${v}x` : v;
  });
  const validPath = fill(ep.path, Object.fromEntries(Object.entries(ep.params ?? {}).map(([k, v]) => [k, encodeURIComponent(v)])));
  const validQuery = ep.query ? `?${Object.entries(ep.query).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join('&')}` : '';
  const arbs: Array<fc.Arbitrary<FuzzRequest>> = [];
  const withBody = (a: fc.Arbitrary<Omit<FuzzRequest, 'method' | 'path'>>): fc.Arbitrary<FuzzRequest> => a.map((m) => ({ ...m, method: ep.method, path: validPath + validQuery }));

  if (ep.json) {
    arbs.push(fc.oneof(...mutations.map((m) => m(ep.json!))).map((m) => ({
      method: ep.method, path: validPath, headers: { 'content-type': 'application/json', ...m.headers }, body: m.body, how: m.how,
    })));
  }
  if (ep.form) {
    const raw = bodyMutations().map((m) => m.map((x) => ({ ...x, headers: { 'content-type': 'application/x-www-form-urlencoded', ...x.headers } })));
    arbs.push(withBody(fc.oneof(...formMutations(ep.form), ...raw)));
  }
  if (ep.files?.length || ep.form) arbs.push(withBody(fc.oneof(...multipartMutations(ep.files ?? [], ep.form ?? {}))));
  if (ep.query || (!ep.json && !ep.form)) {
    arbs.push(queryMutations(ep.query ?? {}).map((qs) => ({ method: ep.method, path: `${validPath}?${qs}`, headers: {}, how: `query ${qs.slice(0, 120)}` })));
  }
  if (params.length) {
    arbs.push(fc.tuple(fc.constantFrom(...params), nastyParam).map(([name, p]) => {
      const path = fill(ep.path, { ...Object.fromEntries(Object.entries(ep.params!).map(([k, v]) => [k, encodeURIComponent(v)])), [name]: p.raw ? p.text : encodeURIComponent(p.text) });
      return { method: ep.method, path: path + validQuery, headers: {}, how: `${name} := ${p.text.slice(0, 60)}${p.raw ? ' (raw)' : ''}` };
    }));
  }
  return fc.oneof(...arbs);
}

/** Body-level breakage for a non-JSON body: random bytes, compressed garbage, unknown encodings. */
function bodyMutations(): Array<fc.Arbitrary<{ body: string | Uint8Array; how: string; headers?: Record<string, string> }>> {
  return [
    fc.uint8Array({ maxLength: 2000 }).map((b) => ({ body: b, how: `random ${b.length} bytes` })),
    fc.tuple(fc.constantFrom('gzip', 'deflate', 'br'), fc.uint8Array({ minLength: 1, maxLength: 2000 }))
      .map(([enc, bytes]) => ({ body: bytes, how: `${enc} of random bytes`, headers: { 'content-encoding': enc } })),
    fc.constantFrom('application/json', 'text/plain', 'image/png', '').map((ct) => ({ body: '{"filepath":"x"}', how: `content-type ${ct}`, headers: { 'content-type': ct } })),
  ];
}
