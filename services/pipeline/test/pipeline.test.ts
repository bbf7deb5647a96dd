import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEncoderClient } from '@doppel/clients';
import { EncodeBatchRequest, EncodeRequest, MatchRequest, ORIENTATION_NAMES, ORIENTATION_ROWS, PipelineConfig, SearchConfig } from '@doppel/schemas';
import { createServer, type Server } from 'node:http';
import { AppError, createLogger, createServiceApp, jsonBody, jsonRoute, loadConfig, Registry, serve, type RunningServer } from '@doppel/service-kit';
import { call } from '@doppel/service-kit/testing';
import { buildService as buildSearchService } from '@doppel/contextual-search';
import { buildService } from '../src/app.js';
import { vanished } from '../src/indexing.logic.js';
import { toVerify } from '../src/duplicates.logic.js';

/*
 * The pipeline against the real contextual-search app and two small stand-ins for the
 * encoder and the matcher (their real behaviour is covered by their own tests and by
 * tests/e2e). A stand-in "image" is a JSON file {vec, group}: the encoder returns vec
 * (orientation k = vec rotated by k places), the matcher confirms pairs of one group.
 */
interface FakeImage { vec: number[]; group: string }
const logger = createLogger('test', 'silent');

function rotate(v: number[], k: number): number[] {
  return v.map((_, i) => v[(i + k) % v.length]!);
}

/** The pipeline's probe of the encoder's model name is a tiny PNG, not a stand-in image. */
const PNG_SIGNATURE = '\x89PNG';

function standInEncoder(root: string, seen: { bodies: unknown[] }, model = 'stand-in') {
  const read = (b: { relative_path?: string; image_base64?: string }): FakeImage => {
    if (b.image_base64) {
      const text = Buffer.from(b.image_base64, 'base64').toString('latin1');
      return text.startsWith(PNG_SIGNATURE) ? { vec: [1, 0, 0, 0], group: 'probe' } : JSON.parse(text) as FakeImage;
    }
    try {
      return JSON.parse(readFileSync(join(root, b.relative_path!), 'utf8')) as FakeImage;
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') throw new AppError('IMAGE_NOT_FOUND', `${b.relative_path}: not found`);
      throw new AppError('UNDECODABLE_IMAGE', `${b.relative_path}: not an image`);
    }
  };
  const encodeOne = (b: EncodeRequest) => {
    const img = read(b);
    return {
      request_id: b.request_id ?? 0, fingerprint: img.vec, dimension: img.vec.length, model,
      ...(b.orientations === 'all' || b.orientations === 'turns'
        ? { orientations: ORIENTATION_NAMES.slice(0, ORIENTATION_ROWS[b.orientations]).map((name, k) => ({ name, fingerprint: rotate(img.vec, k) })) }
        : {}),
    };
  };
  // The stand-ins validate what the pipeline sends against the real request schemas.
  return createServiceApp({
    service: 'image-encoder', registry: new Registry(), logger,
    routes: (a) => {
      a.post('/encode', jsonBody('50mb'), jsonRoute(EncodeRequest, (body) => {
        seen.bodies.push(body);
        return encodeOne(body);
      }));
      a.post('/encode/batch', jsonBody('50mb'), jsonRoute(EncodeBatchRequest, (body) => ({
        results: body.items.map((it) => {
          try {
            return encodeOne(it);
          } catch (e) {
            const err = e as AppError;
            return { request_id: it.request_id ?? 0, error_code: err.code, error_message: err.message, status: err.status };
          }
        }),
      })));
    },
  });
}

function standInMatcher(root: string, seen: { bodies: unknown[] }) {
  const groupOf = (rel: string) => (JSON.parse(readFileSync(join(root, rel), 'utf8')) as FakeImage).group;
  return createServiceApp({
    service: 'instance-matching', registry: new Registry(), logger,
    routes: (a) => {
      a.post('/match', jsonBody('50mb'), jsonRoute(MatchRequest, (b) => {
        seen.bodies.push(b);
        const group = b.candidate !== undefined ? groupOf(b.candidate)
          : (JSON.parse(Buffer.from(b.candidate_base64!, 'base64').toString('utf8')) as FakeImage).group;
        const checked = b.neighbors.map((n) => {
          const same = groupOf(n) === group;
          return { relative_path: n, score: same ? 0.9 : 0.1, inliers: same ? 80 : 3, method: 'sift' as const,
            ...(same ? { region: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]] } : {}) };
        });
        return { duplicated: checked.filter((c) => c.score >= 0.5), checked, errors: [] };
      }));
    },
  });
}

const img = (vec: number[], group: string) => JSON.stringify({ vec, group });

describe('pipeline over HTTP', () => {
  const root = mkdtempSync(join(tmpdir(), 'doppel-pipeline-'));
  const images = join(root, 'images');
  const encSeen = { bodies: [] as unknown[] };
  const matchSeen = { bodies: [] as unknown[] };
  const servers: RunningServer[] = [];
  const closers: Array<() => Promise<void>> = [];
  let encoderSrv: RunningServer;
  let base: string;
  /** The same pipeline, but its url fetcher refuses loopback and private addresses (the default). */
  let guardedBase: string;
  /** The same pipeline with ORIENTATION_SEARCH=all and SEARCH_MIRRORS=true: the 8 orientations of every query. */
  let allOrientationsBase: string;
  /** Serves url queries: /c.json is a copy of c, /moved redirects to it. */
  let imageHost: Server;
  let imageHostUrl: string;
  let closeSearch: () => Promise<void>;
  let indexedPaths: () => Promise<string[]>;

  before(async () => {
    mkdirSync(join(images, 'sub'), { recursive: true });
    writeFileSync(join(images, 'a.png'), img([1, 0, 0, 0], 'A'));
    writeFileSync(join(images, 'a-copy.png'), img([0.95, 0.05, 0, 0], 'A'));
    writeFileSync(join(images, 'b.png'), img([0, 0, 1, 0], 'B'));
    writeFileSync(join(images, 'sub', 'c.jpg'), img([0, 0, 0, 1], 'C'));
    writeFileSync(join(images, 'sub', 'broken.jpg'), 'not json');
    writeFileSync(join(images, 'notes.txt'), 'ignored: not an image extension');

    const start = async (app: Parameters<typeof serve>[0]) => {
      const s = await serve(app, { port: 0, host: '127.0.0.1', logger });
      servers.push(s);
      return s;
    };
    encoderSrv = await start(standInEncoder(images, encSeen));
    const matchSrv = await start(standInMatcher(images, matchSeen));
    const searchConfig = loadConfig(SearchConfig, { LOCATION: join(root, 'embeddings'), DIMENSION: '4', SNAPSHOT_INTERVAL_MS: '0', LOG_LEVEL: 'silent' });
    const searchService = buildSearchService(searchConfig, { checkResponses: true });
    const { collection } = searchService;
    const searchSrv = await start(searchService.app);
    await searchService.start?.();
    closeSearch = () => searchService.close();
    indexedPaths = async () => (await collection.list(0, 1000, false)).items.map((i: { relative_path: string }) => i.relative_path).sort();
    const url = (s: RunningServer) => `http://127.0.0.1:${s.port}`;
    const pipelineWith = (allowPrivate: boolean, orientations: Record<string, string> = {}) => {
      const config = loadConfig(PipelineConfig, {
        ...orientations,
        LOG_LEVEL: 'silent', IMAGES_ROOT: images, NB_NEIGHBORS: '10', MIN_SCORE: '0', INDEX_BATCH_SIZE: '2', INDEX_CONCURRENCY: '2',
        SEARCH_URL: url(searchSrv), MATCHING_URL: url(matchSrv), DOWNSTREAM_TIMEOUT_MS: '30000',
        URL_TIMEOUT_MS: '10000', MAX_IMAGE_BYTES: String(1 << 20), URL_MAX_REDIRECTS: '1', ALLOW_PRIVATE_URLS: String(allowPrivate),
      });
      // A short retry delay keeps the encoder-restart test quick. No test here waits for a
      // timeout, so the timeouts are long: a slow machine must not turn an answer into a 504.
      const service = buildService(config, { encoder: createEncoderClient({ baseUrl: url(encoderSrv), timeoutMs: 30_000, retryDelayMs: 10 }), checkResponses: true });
      closers.push(() => service.close());
      return service.app;
    };
    base = url(await start(pipelineWith(true)));
    guardedBase = url(await start(pipelineWith(false)));
    allOrientationsBase = url(await start(pipelineWith(true, { ORIENTATION_SEARCH: 'all', SEARCH_MIRRORS: 'true' })));
    imageHost = createServer((req, res) => {
      if (req.url === '/moved') res.writeHead(302, { location: '/c.json' }).end();
      else if (req.url === '/c.json') res.writeHead(200, { 'content-type': 'image/png' }).end(img([0, 0, 0, 0.98], 'C'));
      else res.writeHead(404).end();
    });
    await new Promise<void>((ok) => imageHost.listen(0, '127.0.0.1', ok));
    imageHostUrl = `http://127.0.0.1:${(imageHost.address() as { port: number }).port}`;
  });

  after(async () => {
    await new Promise((ok) => imageHost.close(ok));
    for (const s of servers.reverse()) await s.close();
    for (const c of closers) await c();
    await closeSearch();
    rmSync(root, { recursive: true, force: true });
  });

  it('when a folder is indexed, then images are counted, indexed and broken ones reported', async () => {
    const r = await call(base, 'POST', '/index', { relative_path: '.' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const res = r.body.response;
    assert.equal(res.total, 5);
    assert.equal(res.indexed, 4);
    assert.equal(res.skipped, 0);
    assert.deepEqual(res.failed.map((f: { relative_path: string; error_code: string }) => [f.relative_path, f.error_code]), [['sub/broken.jpg', 'UNDECODABLE_IMAGE']]);
  });

  it('when the same folder is indexed again, then unchanged files are skipped and a touched one is redone', async () => {
    const later = new Date(Date.now() + 5000);
    utimesSync(join(images, 'b.png'), later, later);
    const r = await call(base, 'POST', '/index', { relative_path: '.' });
    assert.equal(r.status, 200);
    assert.equal(r.body.response.indexed, 1);
    assert.equal(r.body.response.skipped, 3);
    const forced = await call(base, 'POST', '/index', { relative_paths: ['a.png', 'missing.png'], force: true });
    assert.equal(forced.body.response.indexed, 1);
    assert.equal(forced.body.response.failed[0].error_code, 'IMAGE_NOT_FOUND');
  });

  it('when files are deleted from a folder, then only a pruning index removes them, and a missing path prunes nothing', async () => {
    mkdirSync(join(images, 'tmp'), { recursive: true });
    writeFileSync(join(images, 'tmp', 'd.png'), img([0, 1, 0, 0], 'D'));
    writeFileSync(join(images, 'sub', 'e.png'), img([0, 1, 1, 0], 'E'));
    const added = await call(base, 'POST', '/index', { relative_path: '.' });
    assert.equal(added.body.response.indexed, 2);
    unlinkSync(join(images, 'tmp', 'd.png'));
    unlinkSync(join(images, 'sub', 'e.png'));
    const plain = await call(base, 'POST', '/index', { relative_path: '.' });
    assert.equal(plain.body.response.removed, 0);
    assert.ok((await indexedPaths()).includes('tmp/d.png'));
    const gone = await call(base, 'POST', '/index', { relative_path: 'tmp/d.png', prune: true });
    assert.equal(gone.status, 404);
    assert.ok((await indexedPaths()).includes('tmp/d.png'));
    const pruned = await call(base, 'POST', '/index', { relative_path: '.', prune: true });
    assert.equal(pruned.status, 200, JSON.stringify(pruned.body));
    assert.equal(pruned.body.response.removed, 2);
    assert.deepEqual(await indexedPaths(), ['a-copy.png', 'a.png', 'b.png', 'sub/c.jpg']);
  });

  it('when an indexed image is queried by path, then its verified duplicate is returned and itself is not', async () => {
    const r = await call(base, 'POST', '/duplicates', { relative_path: 'a.png' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const res = r.body.response;
    assert.deepEqual(res.duplicated.map((d: { relative_path: string }) => d.relative_path), ['a-copy.png']);
    assert.equal(res.duplicated[0].inliers, 80);
    assert.equal(res.duplicated[0].region.length, 4);
    assert.ok(res.duplicated[0].search_score > 0.9);
    assert.ok(!res.candidates.some((c: { relative_path: string }) => c.relative_path === 'a.png'));
    // Rejected candidates keep their verification score too (the eval's threshold curve).
    const scores = Object.fromEntries(res.candidates.map((c: { relative_path: string; verification_score?: number }) => [c.relative_path, c.verification_score]));
    assert.equal(scores['a-copy.png'], 0.9);
    assert.ok(Object.values(scores).includes(0.1), JSON.stringify(res.candidates));
    for (const k of ['encode', 'search', 'match']) assert.equal(typeof res.timings_ms[k], 'number');
  });

  it('when the query as it is verifies a copy, then it is encoded and searched in that one orientation only', async () => {
    const before = encSeen.bodies.length;
    const bytes = Buffer.from(img([0.9, 0.1, 0, 0], 'A')).toString('base64');
    const r = await call(base, 'POST', '/duplicates', { image_base64: bytes });
    assert.deepEqual(r.body.response.duplicated.map((d: { relative_path: string }) => d.relative_path).sort(), ['a-copy.png', 'a.png']);
    assert.equal(r.body.response.orientations_searched, 1);
    assert.equal(r.body.response.fingerprint, 'encoded');
    assert.deepEqual(encSeen.bodies.slice(before), [{ image_base64: bytes, orientations: 'none' }]);
  });

  it('when an indexed, unchanged file is queried by path, then its stored fingerprint is searched and the encoder is not called; once the file changes, it is encoded', async () => {
    const before = encSeen.bodies.length;
    const r = await call(base, 'POST', '/duplicates', { relative_path: 'a.png' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.response.duplicated.map((d: { relative_path: string }) => d.relative_path), ['a-copy.png']);
    assert.equal(r.body.response.fingerprint, 'indexed');
    assert.deepEqual(encSeen.bodies.slice(before), []);
    // Rewritten since it was indexed (another mtime): the stored vector is not its own any more.
    const later = new Date(Date.now() + 7000);
    utimesSync(join(images, 'a-copy.png'), later, later);
    const changed = await call(base, 'POST', '/duplicates', { relative_path: 'a-copy.png' });
    assert.deepEqual(changed.body.response.duplicated.map((d: { relative_path: string }) => d.relative_path), ['a.png']);
    assert.equal(changed.body.response.fingerprint, 'encoded');
    assert.deepEqual(encSeen.bodies.slice(before), [{ relative_path: 'a-copy.png', orientations: 'none' }]);
    assert.equal((await call(base, 'POST', '/index', { relative_path: 'a-copy.png' })).body.response.indexed, 1);
  });

  it('when ORIENTATION_SEARCH is all with SEARCH_MIRRORS, then every query is encoded and searched in its 8 orientations', async () => {
    const before = encSeen.bodies.length;
    const r = await call(allOrientationsBase, 'POST', '/duplicates', { relative_path: 'a.png' });
    assert.deepEqual(r.body.response.duplicated.map((d: { relative_path: string }) => d.relative_path), ['a-copy.png']);
    assert.equal(r.body.response.orientations_searched, 8);
    assert.deepEqual(encSeen.bodies.slice(before), [{ relative_path: 'a.png', orientations: 'all' }]);
  });

  it('when a rotated copy is queried, then its own orientation verifies nothing and its 4 quarter turns (not their mirrors) find the original', async () => {
    // rot90 of the query (rotated by 1 place) is c's vector.
    const rotated = Buffer.from(img([1, 0, 0, 0], 'C')).toString('base64');
    const [encBefore, matchBefore] = [encSeen.bodies.length, matchSeen.bodies.length];
    const r = await call(base, 'POST', '/duplicates', { image_base64: rotated, min_score: 0.6 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.response.duplicated.map((d: { relative_path: string }) => d.relative_path), ['sub/c.jpg']);
    assert.equal(r.body.response.orientations_searched, 4, JSON.stringify(r.body.response));
    assert.deepEqual(encSeen.bodies.slice(encBefore).map((b) => (b as { orientations: string }).orientations), ['none', 'turns']);
    // The second verification gets only the candidates the first did not check.
    const checked = matchSeen.bodies.slice(matchBefore).map((b) => (b as { neighbors: string[] }).neighbors);
    assert.equal(checked.length, 2);
    assert.deepEqual(checked[0], ['a.png', 'a-copy.png']);
    assert.ok(checked[1]!.includes('sub/c.jpg') && !checked[1]!.some((p) => checked[0]!.includes(p)), JSON.stringify(checked));
    const best = r.body.response.candidates.find((c: { relative_path: string }) => c.relative_path === 'sub/c.jpg');
    assert.equal(best.score, 1);
    assert.notEqual(best.orientation, 'identity');
    const sent = matchSeen.bodies.at(-1) as { candidate_base64?: string; candidate?: string };
    assert.equal(sent.candidate_base64, rotated);
    assert.equal(sent.candidate, undefined);
  });

  it('when a url is queried, then it is downloaded once and both services get the same bytes', async () => {
    const before = encSeen.bodies.length;
    const r = await call(base, 'POST', '/duplicates', { url: `${imageHostUrl}/moved` });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.response.duplicated.map((d: { relative_path: string }) => d.relative_path), ['sub/c.jpg']);
    const expected = Buffer.from(img([0, 0, 0, 0.98], 'C')).toString('base64');
    // c verifies from the query as it is: one encoder call, on the downloaded bytes.
    assert.equal(encSeen.bodies.length, before + 1);
    assert.deepEqual(encSeen.bodies.at(-1), { image_base64: expected, orientations: 'none' });
    assert.equal((matchSeen.bodies.at(-1) as { candidate_base64?: string }).candidate_base64, expected);
  });

  it('when a url points at a loopback address and private urls are not allowed, then 403 and nothing is encoded', async () => {
    const before = encSeen.bodies.length;
    const r = await call(guardedBase, 'POST', '/duplicates', { url: `${imageHostUrl}/c.json` });
    assert.equal(r.status, 403, JSON.stringify(r.body));
    assert.equal(r.body.error_code, 'FORBIDDEN_PATH');
    assert.match(r.body.error_message, /private or local address/);
    assert.equal(encSeen.bodies.length, before);
    const gone = await call(base, 'POST', '/duplicates', { url: `${imageHostUrl}/nothing-here` });
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error_code, 'IMAGE_NOT_FOUND');
  });

  it('when the body is invalid or the path escapes the root, then 400 and 403 envelopes', async () => {
    const bad = await call(base, 'POST', '/duplicates', { relative_path: 'a.png', url: 'http://x' });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error_message, /exactly one of/);
    const escape = await call(base, 'POST', '/index', { relative_path: '../etc' });
    assert.equal(escape.status, 403);
    assert.equal(escape.body.error_code, 'FORBIDDEN_PATH');
    const missing = await call(base, 'POST', '/index', { relative_path: 'nope' });
    assert.equal(missing.body.error_code, 'IMAGE_NOT_FOUND');
  });

  it('when a query path names a symlink out of the root, then 403 and nothing is encoded', async () => {
    writeFileSync(join(root, 'outside.png'), img([1, 0, 0, 0], 'A'));
    symlinkSync(join(root, 'outside.png'), join(images, 'link-out.png'));
    const before = encSeen.bodies.length;
    for (const [path, body] of [['/duplicates', { relative_path: 'link-out.png' }], ['/images', { relative_path: 'link-out.png' }], ['/fingerprint', { relative_path: 'sub/../link-out.png' }]] as const) {
      const r = await call(base, 'POST', path, body);
      assert.deepEqual([r.status, r.body.error_code], [403, 'FORBIDDEN_PATH'], path);
    }
    assert.equal(encSeen.bodies.length, before);
    unlinkSync(join(images, 'link-out.png'));
  });

  it('when a query path does not exist, then 404', async () => {
    const r = await call(base, 'POST', '/duplicates', { relative_path: 'gone.png' });
    assert.equal(r.status, 404);
    assert.equal(r.body.error_code, 'IMAGE_NOT_FOUND');
  });

  it('when every downstream is up, then /readyz is ready and reports the three downstreams, and /health/downstream is 200', async () => {
    const r = await call(base, 'GET', '/readyz');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.response.checks, {});
    assert.deepEqual(Object.keys(r.body.response.downstream).sort(), ['contextual-search', 'image-encoder', 'instance-matching']);
    const d = await call(base, 'GET', '/health/downstream');
    assert.equal(d.status, 200);
    assert.equal(d.body.response.ok, true);
  });

  it('when the encoder is down, then a query it must encode is a 503 naming it (an indexed file is still answered from its stored fingerprint), /readyz stays 200 and reports it, and /health/downstream is 503 naming it', async () => {
    await encoderSrv.close();
    const stored = await call(base, 'POST', '/duplicates', { relative_path: 'a.png' });
    assert.equal(stored.status, 200, JSON.stringify(stored.body));
    assert.deepEqual(stored.body.response.duplicated.map((d: { relative_path: string }) => d.relative_path), ['a-copy.png']);
    const r = await call(base, 'POST', '/duplicates', { image_base64: Buffer.from(img([1, 0, 0, 0], 'A')).toString('base64') });
    assert.equal(r.status, 503);
    assert.equal(r.body.error_code, 'UNAVAILABLE');
    assert.match(r.body.error_message, /image-encoder/);
    const ready = await call(base, 'GET', '/readyz');
    assert.equal(ready.status, 200);
    assert.equal(ready.body.response.ready, true);
    assert.equal(ready.body.response.downstream['image-encoder'].ok, false);
    assert.equal(ready.body.response.downstream['contextual-search'].ok, true);
    const down = await call(base, 'GET', '/health/downstream');
    assert.equal(down.status, 503);
    assert.equal(down.body.error_code, 'UNAVAILABLE');
    assert.match(down.body.error_message, /image-encoder/);
    assert.doesNotMatch(down.body.error_message, /contextual-search|instance-matching/);
  });
});

/*
 * Hubness re-ranking against the real search app. In 6 dimensions: the query q = e0 is a
 * copy of o (cosine 0.8 to q); twelve hubs h0..h11 sit at cosine 0.85 to q and at ~0.99 to
 * one another, the way flat or generic pictures crowd together in a large collection. By
 * search score alone the twelve hubs fill the 10 candidates and o is 13th.
 */
/** The servers of one suite: the real search app on a fresh folder and the matcher stand-in; pipelines over them; close() stops all. */
async function suiteServers(root: string, images: string, dimension: number) {
  const servers: RunningServer[] = [];
  const closers: Array<() => Promise<void>> = [];
  const start = async (app: Parameters<typeof serve>[0]) => {
    const srv = await serve(app, { port: 0, host: '127.0.0.1', logger });
    servers.push(srv);
    return `http://127.0.0.1:${srv.port}`;
  };
  const matchUrl = await start(standInMatcher(images, { bodies: [] }));
  const search = buildSearchService(loadConfig(SearchConfig, { LOCATION: join(root, 'embeddings'), DIMENSION: String(dimension), SNAPSHOT_INTERVAL_MS: '0', LOG_LEVEL: 'silent' }), { checkResponses: true });
  const searchUrl = await start(search.app);
  await search.start?.();
  closers.push(() => search.close());
  const pipeline = async (env: Record<string, string>) => {
    const service = buildService(loadConfig(PipelineConfig, {
      LOG_LEVEL: 'silent', IMAGES_ROOT: images, SEARCH_URL: searchUrl, MATCHING_URL: matchUrl, DOWNSTREAM_TIMEOUT_MS: '30000', ...env,
    }), { checkResponses: true });
    closers.unshift(() => service.close());
    return start(service.app);
  };
  return {
    start,
    pipeline,
    close: async () => {
      for (const srv of servers.reverse()) await srv.close();
      for (const c of closers) await c();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

describe('candidate re-ranking by hubness', () => {
  const root = mkdtempSync(join(tmpdir(), 'doppel-rerank-'));
  const images = join(root, 'images');
  const bases: Record<'reranked' | 'plain', string> = { reranked: '', plain: '' };
  let close = async () => {};

  before(async () => {
    mkdirSync(join(images, 'lib', 'hubs'), { recursive: true });
    const unit = (v: number[]) => v.map((x) => x / Math.hypot(...v));
    writeFileSync(join(images, 'q.png'), img([1, 0, 0, 0, 0, 0], 'Q'));
    writeFileSync(join(images, 'lib', 'o.png'), img([0.8, 0, 0, 0.6, 0, 0], 'Q'));
    for (let j = 0; j < 12; j++) writeFileSync(join(images, 'lib', 'hubs', `h${j}.png`), img([0.85, ...unit([1, 0.02 * j, 0.01 * (j % 3)]).map((x) => x * Math.sqrt(1 - 0.85 ** 2)), 0, 0], `H${j}`));
    const servers = await suiteServers(root, images, 6);
    close = servers.close;
    const encoderUrl = await servers.start(standInEncoder(images, { bodies: [] }));
    for (const [name, weight] of [['reranked', '0.75'], ['plain', '0']] as const) {
      bases[name] = await servers.pipeline({ NB_NEIGHBORS: '10', SEARCH_K: '100', HUBNESS_WEIGHT: weight, ENCODER_URL: encoderUrl });
    }
    const indexed = await call(bases.reranked, 'POST', '/index', { relative_path: 'lib' });
    assert.equal(indexed.body.response.indexed, 13, JSON.stringify(indexed.body));
  });

  after(() => close());

  const query = (base: string) => call(base, 'POST', '/duplicates', { relative_path: 'q.png', all_orientations: false });

  it('when hubs outscore a copy\'s original, then the re-ranked candidates put the original first and it is verified', async () => {
    const r = await query(bases.reranked);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const { candidates, duplicated } = r.body.response as { candidates: Array<{ relative_path: string }>; duplicated: Array<{ relative_path: string }> };
    assert.equal(candidates.length, 10);
    assert.equal(candidates[0]!.relative_path, 'lib/o.png');
    assert.deepEqual(duplicated.map((d) => d.relative_path), ['lib/o.png']);
  });

  it('when the hubness weight is 0, then the candidates are the search order and the original is left out', async () => {
    const r = await query(bases.plain);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const { candidates, duplicated } = r.body.response as { candidates: Array<{ relative_path: string }>; duplicated: unknown[] };
    assert.equal(candidates.length, 10);
    assert.ok(candidates.every((c) => c.relative_path.startsWith('lib/hubs/')), JSON.stringify(candidates));
    assert.deepEqual(duplicated, []);
  });
});

/*
 * Two encoders with the same dimension but different fingerprints (a model and the same model
 * whitened: `+pca`) in front of one index.
 */
describe('an index built with another fingerprint model', () => {
  const root = mkdtempSync(join(tmpdir(), 'doppel-model-'));
  const images = join(root, 'images');
  const bases: Record<'plain' | 'whitened', string> = { plain: '', whitened: '' };
  let close = async () => {};

  before(async () => {
    mkdirSync(join(images, 'lib'), { recursive: true });
    writeFileSync(join(images, 'lib', 'x.png'), img([1, 0, 0, 0], 'X'));
    writeFileSync(join(images, 'lib', 'y.png'), img([0, 1, 0, 0], 'Y'));
    writeFileSync(join(images, 'x-copy.png'), img([0.9, 0.1, 0, 0], 'X'));
    const servers = await suiteServers(root, images, 4);
    close = servers.close;
    for (const [name, model] of [['plain', 'resnet18.onnx'], ['whitened', 'resnet18.onnx+pca']] as const) {
      bases[name] = await servers.pipeline({ ENCODER_URL: await servers.start(standInEncoder(images, { bodies: [] }, model)) });
    }
    const indexed = await call(bases.plain, 'POST', '/index', { relative_path: 'lib' });
    assert.equal(indexed.body.response.indexed, 2, JSON.stringify(indexed.body));
  });

  after(() => close());

  const query = (base: string) => call(base, 'POST', '/duplicates', { relative_path: 'x-copy.png', all_orientations: false });

  it('when the encoder\'s model changed since the folder was indexed, then a query gets a 409 naming both models and the fix, and re-indexing re-encodes every file', async () => {
    const refused = await query(bases.whitened);
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.equal(refused.body.global_status, 0);
    assert.equal(refused.body.error_code, 'MODEL_MISMATCH');
    assert.match(refused.body.error_message, /fingerprints of resnet18\.onnx \(e\.g\. lib\/[xy]\.png\) but the encoder now makes resnet18\.onnx\+pca: re-index/);
    // Unchanged files fingerprinted by the other model are not current: all of them are encoded again.
    const reindexed = await call(bases.whitened, 'POST', '/index', { relative_path: 'lib' });
    assert.deepEqual({ ...reindexed.body.response }, { total: 2, indexed: 2, skipped: 0, removed: 0, failed: [] });
    const again = await call(bases.whitened, 'POST', '/index', { relative_path: 'lib' });
    assert.equal(again.body.response.skipped, 2);
    const found = await query(bases.whitened);
    assert.equal(found.status, 200, JSON.stringify(found.body));
    assert.deepEqual(found.body.response.duplicated.map((d: { relative_path: string }) => d.relative_path), ['lib/x.png']);
    // And now the plain encoder is the one that no longer fits.
    assert.equal((await query(bases.plain)).status, 409);
  });
});

describe('which indexed files a prune removes', () => {
  const indexed = ['a.png', 'sub/b.png', 'sub/deep/c.png', 'subway/d.png', 'e.png'];
  const present = new Set(['a.png']);

  it('when the root is pruned, then every indexed file missing from the walk goes', () => {
    assert.deepEqual(vanished(indexed, '.', true, present), ['sub/b.png', 'sub/deep/c.png', 'subway/d.png', 'e.png']);
  });

  it('when a folder is pruned, then only its subtree goes, not a sibling sharing its prefix', () => {
    assert.deepEqual(vanished(indexed, 'sub', true, present), ['sub/b.png', 'sub/deep/c.png']);
    assert.deepEqual(vanished(indexed, './sub/', true, present), ['sub/b.png', 'sub/deep/c.png']);
  });

  it('when the walk is not recursive, then only direct children go', () => {
    assert.deepEqual(vanished(indexed, 'sub', false, present), ['sub/b.png']);
  });

  it('when a single file is pruned, then only that file goes', () => {
    assert.deepEqual(vanished(indexed, 'e.png', true, present), ['e.png']);
  });
});

describe('which candidates a search stage sends to the matcher', () => {
  const c = (p: string) => ({ relative_path: p });
  const paths = (xs: Array<{ relative_path: string }>) => xs.map((x) => x.relative_path);

  it('when nothing is checked yet, then every candidate goes, in rank order', () => {
    assert.deepEqual(paths(toVerify([c('a'), c('b'), c('c')], new Map(), new Set())), ['a', 'b', 'c']);
  });

  it('when the turned search ranks first an image the upright request listed lower, then it goes again, first, before the unchecked ones', () => {
    const checked = new Map([['x', 0.1], ['b', 0.2]]);
    assert.deepEqual(paths(toVerify([c('b'), c('n'), c('x'), c('m')], checked, new Set(['x']))), ['b', 'n', 'm']);
  });

  it('when the likeliest candidate was already first in a request, then only the unchecked ones go', () => {
    const checked = new Map([['a', 0.1], ['b', 0.2]]);
    assert.deepEqual(paths(toVerify([c('a'), c('b'), c('n')], checked, new Set(['a']))), ['n']);
  });
});
