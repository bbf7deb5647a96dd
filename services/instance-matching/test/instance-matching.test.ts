import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { cv, type GreyImage } from '../src/opencv.binding.js';
import { extractFeatures, type Features } from '../src/sift.extract.js';
import { candidateMatches, oneToOneMatches, type DescriptorKernel } from '../src/descriptor.match.js';
import { DENSE_SCALES, DENSE_THUMB, denseCheck } from '../src/dense.check.js';
import { mirrorFeatures } from '../src/sift.mirror.js';
import { verifyPass } from '../src/sift.verify.js';
import { MatchingConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { call, listen, type Listening } from '@doppel/service-kit/testing';
import { buildService, WorkerPool } from '../src/index.js';
import { runsOf } from '../src/match.service.js';
import { decodeImage } from '../src/image.decode.js';
import { alignedAgreement, OVERLAP_SIDE, pinnedAgreement } from '../src/overlap.check.js';
import { cropSearch } from '../src/crop.search.js';
import { project } from '../src/transform.geometry.js';
import { sharedBytes, type PairVerdict, type PreparedCandidate, type TargetFeatures, type WorkerResult } from '../src/verify.protocol.js';
import { TaskTimeoutError } from '../src/worker.pool.js';
import { bandFlag, dottedScene, duneScene, facadeScene, HARD_COPIES, lowTextureScene, nearFlat, smoothGradient, texturedScene, TRANSFORMS, turnedAndFilled, turnedInFrame, wavyBands, wrappedPosterize } from './scenes.fixture.js';

type Started = Listening;

/** The service as main.ts builds it, on port 0. */
const start = (env: Record<string, string>): Promise<Started> =>
  listen(buildService(loadConfig(MatchingConfig, { LOG_LEVEL: 'silent', ...env }), { checkResponses: true }));

async function greyOf(png: Buffer): Promise<GreyImage> {
  const { data, info } = await sharp(png).greyscale().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data) };
}

describe('the patched binding', () => {
  it('when SIFTDetector is used on a generated scene, then it exists and finds keypoints', async () => {
    assert.equal(typeof cv.SIFTDetector, 'function');
    const { data, info } = await sharp(await texturedScene(7)).greyscale().raw().toBuffer({ resolveWithObject: true });
    const mat = new cv.Mat(data, info.height, info.width, cv.CV_8UC1);
    const sift = new cv.SIFTDetector({ nFeatures: 500 });
    const kps = sift.detect(mat);
    assert.ok(kps.length > 100, `only ${kps.length} keypoints`);
    const desc = sift.compute(mat, kps);
    assert.deepEqual([desc.rows, desc.cols], [kps.length, 128]);
    const both = sift.detectAndCompute(mat);
    assert.equal(both.keypoints.length, kps.length);
    assert.deepEqual([both.descriptors.rows, both.descriptors.cols], [kps.length, 128]);
  });

  it('when batchDistance runs with K=2, then it finds the same neighbours as the brute-force matcher', async () => {
    const sift = new cv.SIFTDetector({ nFeatures: 200 });
    const a = sift.detectAndCompute(new cv.Mat(Buffer.from((await greyOf(await texturedScene(7))).data), 480, 640, cv.CV_8UC1)).descriptors;
    const b = sift.detectAndCompute(new cv.Mat(Buffer.from((await greyOf(await texturedScene(8))).data), 480, 640, cv.CV_8UC1)).descriptors;
    const knn = cv.matchKnnBruteForce(a, b, 2);
    const r = cv.batchDistance(a, b, cv.CV_32F, cv.NORM_L2, 2);
    assert.deepEqual([r.nidx.rows, r.nidx.cols, r.dist.rows], [a.rows, 2, a.rows]);
    const idx = r.nidx.getDataAsArray();
    const dist = r.dist.getDataAsArray();
    knn.forEach((m, i) => {
      assert.deepEqual([idx[i]![0], idx[i]![1]], [m[0]!.trainIdx, m[1]!.trainIdx]);
      assert.ok(Math.abs(dist[i]![0]! - m[0]!.distance) < 1e-3);
    });
  });
});

describe('the matching kernels', () => {
  /** Lowe's test and one-to-one on batchDistance's 2-NN: the matcher this module replaced, as the oracle. */
  function batchDistanceMatches(a: Features, b: Features, ratio: number, kernel: DescriptorKernel): string[] {
    const mat = (f: Features) => {
      const raw = new cv.Mat(Buffer.from(f.descriptors.subarray(0, f.count * 128)), f.count, 128, cv.CV_8U).convertTo(cv.CV_32F);
      if (kernel === 'l2') return raw;
      // RootSIFT written the plain way: each row over its L1 norm, then the square root.
      const rows = raw.getDataAsArray().map((r) => {
        const l1 = r.reduce((x, y) => x + y, 0);
        return r.map((v) => Math.sqrt(v / l1));
      });
      return new cv.Mat(rows, cv.CV_32F);
    };
    const r = cv.batchDistance(mat(a), mat(b), cv.CV_32F, cv.NORM_L2, 2);
    const idx = r.nidx.getDataAsArray();
    const dist = r.dist.getDataAsArray();
    const best = new Map<number, { q: number; d: number }>();
    idx.forEach(([t1], q) => {
      const [d1, d2] = dist[q]!;
      if (d1! >= ratio * d2!) return;
      const prev = best.get(t1!);
      if (!prev || d1! < prev.d) best.set(t1!, { q, d: d1! });
    });
    return [...best].map(([t, { q }]) => `${q}-${t}`).sort();
  }
  const keys = (pairs: Array<{ q: number; t: number }>) => pairs.map((p) => `${p.q}-${p.t}`).sort();

  for (const kernel of ['l2', 'rootsift'] as const) {
    it(`when descriptors are matched through one matrix product under ${kernel}, then the pairs are those of batchDistance on the same vectors, for the plain and the mirrored candidate and sides under the BLAS size`, async () => {
      const a = extractFeatures(await greyOf(await texturedScene(7)), 300);
      const b = extractFeatures(await greyOf(await sharp(await texturedScene(7)).resize(480).rotate(12).png().toBuffer()), 300);
      const few = extractFeatures(await greyOf(await sharp(await texturedScene(7)).extract({ left: 0, top: 0, width: 200, height: 160 }).png().toBuffer()), 60);
      assert.ok(a.count > 200 && b.count > 200 && few.count < 100, `${a.count} / ${b.count} / ${few.count}`);
      let matched = 0;
      for (const [cand, target] of [[a, b], [b, a], [few, a], [a, few], [few, few]] as const) {
        const oracle = batchDistanceMatches(cand, target, 0.8, kernel);
        assert.deepEqual(keys(oneToOneMatches(cand, target, 0.8, kernel)), oracle);
        const both = candidateMatches({ plain: cand, mirrored: mirrorFeatures(cand) }, target, kernel);
        assert.deepEqual(keys(both(false, 0.8)), oracle);
        assert.deepEqual(keys(both(true, 0.8)), batchDistanceMatches(mirrorFeatures(cand), target, 0.8, kernel));
        matched += oracle.length;
      }
      assert.ok(matched > 100, `only ${matched} pairs: the comparison proves little`);
    });
  }

  it('when a recompressed, rotated copy is matched under rootsift, then it verifies as under l2, through other matches (the kernel is applied)', async () => {
    const a = extractFeatures(await greyOf(await texturedScene(7)), 300);
    const copy = extractFeatures(await greyOf(await sharp(await texturedScene(7)).resize(480).rotate(12).jpeg({ quality: 40 }).toBuffer()), 300);
    const opts = { ratio: 0.8, model: 'similarity' as const, reprojPx: 4 };
    const root = verifyPass(copy, a, { ...opts, kernel: 'rootsift' }, false);
    const raw = verifyPass(copy, a, { ...opts, kernel: 'l2' }, false);
    assert.ok(root.inliers >= 10 && raw.inliers >= 10, `${root.inliers} / ${raw.inliers}`);
    assert.notDeepEqual(keys(oneToOneMatches(copy, a, 0.8, 'rootsift')), keys(oneToOneMatches(copy, a, 0.8, 'l2')));
  });

  /** The search the dense check replaced: one matchTemplate per orientation and crop scale. */
  function oneCallPerPlacement(cand: GreyImage, target: GreyImage): number {
    const plane = (img: GreyImage, edges: boolean) => {
      const m = new cv.Mat(Buffer.from(img.data), img.height, img.width, cv.CV_8UC1).convertTo(cv.CV_32F);
      if (!edges) return m;
      const gx = m.sobel(cv.CV_32F, 1, 0, 3);
      const gy = m.sobel(cv.CV_32F, 0, 1, 3);
      return gx.hMul(gx).add(gy.hMul(gy)).sqrt();
    };
    const scales = (m: cv.Mat) => DENSE_SCALES.map((s) => (s === 1 ? m : m.resize(Math.round(m.cols * s), Math.round(m.cols * s), 0, 0, cv.INTER_AREA)));
    const flat = (m: cv.Mat) => m.meanStdDev().stddev.at(0, 0) < 1e-3;
    const ncc = (image: cv.Mat, templ: cv.Mat) => {
      if (flat(image) || flat(templ)) return 0;
      const v = image.matchTemplate(templ, cv.TM_CCOEFF_NORMED).minMaxLoc().maxVal;
      return Number.isFinite(v) ? Math.max(0, v) : 0;
    };
    let sum = 0;
    for (const edges of [false, true]) {
      const c = plane(cand, edges);
      const t = scales(plane(target, edges));
      let best = 0;
      for (const base of [c, c.flip(1)]) {
        for (const o of [base, base.rotate(cv.ROTATE_90_CLOCKWISE), base.rotate(cv.ROTATE_180), base.rotate(cv.ROTATE_90_COUNTERCLOCKWISE)]) {
          const cs = scales(o);
          best = Math.max(best, ncc(t[0]!, cs[0]!));
          for (let i = 1; i < DENSE_SCALES.length; i++) best = Math.max(best, ncc(t[0]!, cs[i]!), ncc(cs[0]!, t[i]!));
        }
      }
      sum += best;
    }
    return sum / 2;
  }

  it('when the dense check correlates the 8 orientations side by side, then it finds the correlation of one matchTemplate per placement', async () => {
    const limits = { maxPixels: 1e8, maxBytes: 1e8, width: 384, height: 384, thumbSize: DENSE_THUMB };
    const scene = await lowTextureScene(3);
    const thumbs = await Promise.all([
      scene,
      await sharp(scene).rotate(90).flop().png().toBuffer(),
      await sharp(scene).extract({ left: 100, top: 60, width: 400, height: 280 }).png().toBuffer(),
      await smoothGradient(4),
      await texturedScene(9),
      await nearFlat(128),
    ].map(async (png) => (await decodeImage(png, limits)).thumb));
    let high = 0;
    for (const a of thumbs) {
      for (const b of thumbs) {
        const got = denseCheck(a, b).correlation;
        // Both are float32 DFT correlations of different sizes (one 256-px strip against one
        // 32-px picture per call), and OpenCV's vector loops sum in an order that can depend on
        // a buffer's alignment: a CI run saw 0.16628 against 0.16608, a difference of 2e-4. A
        // missed orientation or scale moves the best correlation by far more than 1e-3.
        assert.ok(Math.abs(got - oneCallPerPlacement(a, b)) < 1e-3, `${got} vs ${oneCallPerPlacement(a, b)}`);
        if (got > 0.8) high++;
      }
    }
    // The copies of the scene correlate highly with it in some orientation: the search was exercised.
    assert.ok(high >= 9, `only ${high} pairs over 0.8`);
  });
});

describe('mirrored features', () => {
  const opts = { ratio: 0.8, kernel: 'rootsift' as const, model: 'similarity' as const, reprojPx: 4 };

  it('when SIFT descriptors are permuted for a mirror, then they match SIFT run on the flipped image', async () => {
    const scene = await texturedScene(5);
    const plain = extractFeatures(await greyOf(scene), 300);
    const flipped = extractFeatures(await greyOf(await sharp(scene).flop().png().toBuffer()), 300);
    const derived = verifyPass(mirrorFeatures(plain), flipped, opts, false);
    // Control: flipped coordinates with unpermuted descriptors must not match, or the test proves nothing.
    const unpermuted = verifyPass({ ...mirrorFeatures(plain), descriptors: plain.descriptors }, flipped, opts, false);
    assert.ok(derived.inliers >= 150, `only ${derived.inliers} inliers`);
    assert.ok(unpermuted.inliers < derived.inliers / 3, `control kept ${unpermuted.inliers} of ${derived.inliers}`);
    // The fit is the identity: derived points sit where SIFT found them in the flipped image.
    assert.ok(derived.region, 'no region');
    const corners = [[0, 0], [1, 0], [1, 1], [0, 1]] as const;
    derived.region.forEach(([x, y], i) => {
      assert.ok(Math.abs(x - corners[i]![0]) < 0.01 && Math.abs(y - corners[i]![1]) < 0.01, JSON.stringify(derived.region));
    });
  });

  it('when mirrored twice, then the features are the original ones', async () => {
    const plain = extractFeatures(await greyOf(await texturedScene(6)), 100);
    const twice = mirrorFeatures(mirrorFeatures(plain));
    assert.deepEqual(twice.descriptors, plain.descriptors);
    for (let i = 0; i < plain.points.length; i++) assert.ok(Math.abs(twice.points[i]! - plain.points[i]!) < 1e-3);
  });
});

describe('instance-matching over HTTP', () => {
  let root: string;
  let s: Started;
  const src = (p: string) => path.join(root, 'source', p);
  const tgt = (p: string) => path.join(root, 'target', p);

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'doppel-matching-'));
    await mkdir(src('copies'), { recursive: true });
    await mkdir(tgt('originals'), { recursive: true });
    await writeFile(path.join(root, 'outside.png'), await texturedScene(99));
    const original = await texturedScene(1);
    await writeFile(tgt('originals/scene.png'), original);
    await writeFile(tgt('originals/other.png'), await texturedScene(2));
    await writeFile(tgt('originals/third.png'), await texturedScene(3, 500, 500));
    for (const [name, fn] of Object.entries(TRANSFORMS)) await writeFile(src(`copies/${name}.jpg`), await fn(original));
    await writeFile(src('copies/unrelated.png'), await texturedScene(4));
    const flat = await lowTextureScene(11);
    await writeFile(tgt('originals/flat.jpg'), flat);
    await writeFile(tgt('originals/flat-other.jpg'), await lowTextureScene(12));
    await writeFile(src('copies/flat-copy.jpg'), await sharp(flat).resize({ width: 300 }).jpeg({ quality: 40 }).toBuffer());
    await writeFile(src('copies/flat-mirror.jpg'), await sharp(flat).flop().jpeg({ quality: 80 }).toBuffer());
    await writeFile(tgt('garbage.jpg'), Buffer.from('this is not an image at all'));
    await symlink(path.join(root, 'outside.png'), tgt('escape.png'));
    await symlink(path.join(root, 'outside.png'), src('escape.png'));
    s = await start({ SOURCE_DIR: path.join(root, 'source'), TARGET_DIR: path.join(root, 'target'), NB_WORKERS: '2', MAX_PIXELS: '4000000' });
  });
  after(async () => {
    await s.close();
    await rm(root, { recursive: true, force: true });
  });

  const neighbors = ['originals/scene.png', 'originals/other.png', 'originals/third.png'];

  for (const name of Object.keys(TRANSFORMS)) {
    it(`when the candidate is a ${name} copy, then only its original is duplicated`, async () => {
      const r = await call(s.base, 'POST', '/match', { candidate: `copies/${name}.jpg`, neighbors });
      assert.equal(r.status, 200, r.body.error_message);
      const { duplicated, checked, errors } = r.body.response;
      assert.deepEqual(errors, []);
      assert.equal(checked.length, 3);
      assert.deepEqual(duplicated.map((d: { relative_path: string }) => d.relative_path), ['originals/scene.png'], JSON.stringify(checked));
      const hit = duplicated[0];
      assert.equal(hit.method, 'sift');
      assert.ok(hit.inliers >= 10 && hit.score > 0.5 && hit.score <= 1);
      assert.equal(hit.region.length, 4);
    });
  }

  it('when the copy is a crop, then the region locates it in the original', async () => {
    const r = await call(s.base, 'POST', '/match', { candidate: 'copies/crop50.jpg', neighbors: ['originals/scene.png'] });
    const region: Array<[number, number]> = r.body.response.duplicated[0].region;
    // crop50 keeps the top-right 71% x 71% of the scene.
    const xs = region.map((p) => p[0]);
    const ys = region.map((p) => p[1]);
    assert.ok(Math.abs(Math.min(...xs) - 0.28) < 0.04 && Math.abs(Math.max(...xs) - 0.99) < 0.04, JSON.stringify(region));
    assert.ok(Math.abs(Math.min(...ys) - 0.006) < 0.04 && Math.abs(Math.max(...ys) - 0.72) < 0.04, JSON.stringify(region));
  });

  it('when the candidate is unrelated, then nothing is duplicated but every neighbour is checked', async () => {
    const r = await call(s.base, 'POST', '/match', { candidate: 'copies/unrelated.png', neighbors });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.response.duplicated, []);
    assert.equal(r.body.response.checked.length, 3);
    for (const c of r.body.response.checked) assert.ok(c.score < 0.5, JSON.stringify(c));
  });

  it('when the candidate is sent as base64, then it verifies like a path', async () => {
    const b64 = (await TRANSFORMS.rot90!(await texturedScene(2))).toString('base64');
    const r = await call(s.base, 'POST', '/match', { candidate_base64: b64, neighbors });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.response.duplicated.map((d: { relative_path: string }) => d.relative_path), ['originals/other.png']);
  });

  it('when a low-texture copy is matched, then it verifies (low-contrast SIFT or the dense check) and the other low-texture image does not', async () => {
    for (const copy of ['copies/flat-copy.jpg', 'copies/flat-mirror.jpg']) {
      const r = await call(s.base, 'POST', '/match', { candidate: copy, neighbors: ['originals/flat.jpg', 'originals/flat-other.jpg', 'originals/scene.png'] });
      assert.equal(r.status, 200);
      const { duplicated, checked } = r.body.response;
      assert.deepEqual(duplicated.map((d: { relative_path: string }) => d.relative_path), ['originals/flat.jpg'], JSON.stringify(checked));
    }
  });

  it('when the threshold is given, then it decides duplicated and checked keeps every score', async () => {
    const r = await call(s.base, 'POST', '/match', { candidate: 'copies/blur.jpg', neighbors, threshold: 1 });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.response.duplicated, []);
    assert.ok(r.body.response.checked[0].score > 0.5);
  });

  it('when /compare gets a pair, then it answers score, inliers and duplicated', async () => {
    const yes = await call(s.base, 'POST', '/compare', { candidate: 'copies/mirror.jpg', target: 'originals/scene.png' });
    assert.equal(yes.status, 200);
    assert.equal(yes.body.response.duplicated, true);
    assert.ok(yes.body.response.inliers >= 10);
    const no = await call(s.base, 'POST', '/compare', {
      candidate: 'copies/unrelated.png',
      target_base64: (await texturedScene(2)).toString('base64'),
    });
    assert.equal(no.status, 200);
    assert.equal(no.body.response.duplicated, false);
  });

  it('when two unrelated images carry the same caption and frame, then they are not duplicates', async () => {
    const framed = async (png: Buffer) => TRANSFORMS.border!(await TRANSFORMS.caption!(png));
    const [a, b] = await Promise.all([lowTextureScene(31), lowTextureScene(32)]);
    const unrelated = await call(s.base, 'POST', '/compare', {
      candidate_base64: (await framed(a)).toString('base64'),
      target_base64: (await framed(b)).toString('base64'),
    });
    assert.equal(unrelated.status, 200);
    assert.equal(unrelated.body.response.duplicated, false, JSON.stringify(unrelated.body.response));
    // The frame and caption alone are not enough, but they do not hide a real copy either.
    const copy = await call(s.base, 'POST', '/compare', {
      candidate_base64: (await framed(await texturedScene(31))).toString('base64'),
      target_base64: (await texturedScene(31)).toString('base64'),
    });
    assert.equal(copy.body.response.duplicated, true, JSON.stringify(copy.body.response));
  });

  it('when neighbours are missing, unreadable or escape the root, then each is reported in errors', async () => {
    const r = await call(s.base, 'POST', '/match', {
      candidate: 'copies/grey.jpg',
      neighbors: ['originals/scene.png', 'originals/nope.png', '../outside.png', '/etc/passwd', 'escape.png', 'garbage.jpg'],
    });
    assert.equal(r.status, 200);
    const errs = Object.fromEntries(r.body.response.errors.map((e: { relative_path: string; error_code: string }) => [e.relative_path, e.error_code]));
    assert.deepEqual(errs, {
      'originals/nope.png': 'IMAGE_NOT_FOUND',
      '../outside.png': 'FORBIDDEN_PATH',
      '/etc/passwd': 'FORBIDDEN_PATH',
      'escape.png': 'FORBIDDEN_PATH',
      'garbage.jpg': 'UNSUPPORTED_MEDIA_TYPE',
    });
    assert.deepEqual(r.body.response.duplicated.map((d: { relative_path: string }) => d.relative_path), ['originals/scene.png']);
  });

  it('when the candidate path escapes the root, then 403', async () => {
    for (const candidate of ['../outside.png', '/etc/passwd', 'escape.png', 'copies/../../outside.png']) {
      const r = await call(s.base, 'POST', '/match', { candidate, neighbors });
      assert.equal(r.status, 403, candidate);
      assert.equal(r.body.error_code, 'FORBIDDEN_PATH');
    }
    const missing = await call(s.base, 'POST', '/match', { candidate: 'copies/none.jpg', neighbors });
    assert.equal(missing.status, 404);
  });

  it('when the candidate is not an image or is a pixel bomb, then 422 / 413', async () => {
    const bad = await call(s.base, 'POST', '/match', { candidate_base64: Buffer.from('GIF89a nope').toString('base64'), neighbors });
    assert.equal(bad.status, 422);
    assert.equal(bad.body.error_code, 'UNDECODABLE_IMAGE');
    const bomb = await sharp({ create: { width: 2500, height: 2500, channels: 3, background: '#000000' } }).png().toBuffer();
    const r = await call(s.base, 'POST', '/match', { candidate_base64: bomb.toString('base64'), neighbors });
    assert.equal(r.status, 413);
    assert.equal(r.body.error_code, 'PAYLOAD_TOO_LARGE');
  });

  it('when the body is invalid, then 400 names the field', async () => {
    const r = await call(s.base, 'POST', '/match', { candidate: 'a.jpg', candidate_base64: 'AAAA', neighbors: [] });
    assert.equal(r.status, 400);
    assert.match(r.body.error_message, /candidate/);
    const t = await call(s.base, 'POST', '/match', { candidate: 'a.jpg', neighbors: [], threshold: 2 });
    assert.equal(t.status, 400);
    assert.match(t.body.error_message, /threshold/);
  });

  it('when health, readiness and docs are asked, then they answer', async () => {
    assert.equal((await call(s.base, 'GET', '/healthz')).status, 200);
    const ready = await call(s.base, 'GET', '/readyz');
    assert.equal(ready.status, 200, ready.body.error_message);
    assert.equal(ready.body.response.checks.sift.ok, true);
    const doc = (await (await fetch(`${s.base}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    assert.ok(doc.paths['/match'] && doc.paths['/compare']);
    const metrics = await (await fetch(`${s.base}/metrics`)).text();
    assert.match(metrics, /http_request_duration_seconds/);
    // The earlier tests matched every copy against the same three originals: cached and held.
    assert.match(metrics, /matching_queue_depth 0/);
    assert.match(metrics, /matching_feature_cache_entries [1-9]\d*/);
    assert.ok(Number(/matching_feature_cache_lookups_total\{result="hit"\} (\d+)/.exec(metrics)?.[1]) > 0, metrics);
    assert.ok(Number(/matching_worker_features_total\{how="by_key"\} (\d+)/.exec(metrics)?.[1]) > 0, metrics);
  });
});

/** Pids of this process's verification workers (forked children running verify.worker). */
function workerPids(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && readFileSync(`/proc/${name}/cmdline`, 'utf8').includes('verify.worker')) out.push(Number(name));
    } catch { /* gone meanwhile */ }
  }
  return out;
}

describe('instance-matching under load', () => {
  let s: Started;
  let root: string;
  let mine: number[];
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'doppel-matching-load-'));
    await writeFile(path.join(root, 'a.png'), await texturedScene(5, 320, 240));
    const earlier = new Set(workerPids());
    // The admission limiter lets all eight through, so the worker queue itself decides.
    s = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1', QUEUE_LIMIT: '1', CACHE_MAX_MB: '0', ADMIT_CONCURRENCY: '8', ADMIT_QUEUE: '8' });
    mine = workerPids().filter((p) => !earlier.has(p));
    assert.equal(mine.length, 1, 'one verification worker');
  });
  after(async () => {
    for (const pid of mine ?? []) {
      try { process.kill(pid, 'SIGCONT'); } catch { /* already gone */ }
    }
    await s.close();
    await rm(root, { recursive: true, force: true });
  });

  it('when more work arrives than the queue holds, then exactly the excess gets 429 with Retry-After and the rest succeed', async () => {
    // The worker is stopped, so what it holds and what waits do not depend on how fast this
    // machine extracts: one job runs, one waits (QUEUE_LIMIT 1), the six others are refused.
    process.kill(mine[0]!, 'SIGSTOP');
    let settled = 0;
    let replies: Array<Awaited<ReturnType<typeof call>>>;
    try {
      const pending = Array.from({ length: 8 }, () => call(s.base, 'POST', '/match', { candidate: 'a.png', neighbors: ['a.png'] }).finally(() => { settled++; }));
      // Wait (bounded) for the six refusals, which need no worker.
      for (let i = 0; i < 600 && settled < 6; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(settled, 6, 'six requests answered while the worker was stopped');
      process.kill(mine[0]!, 'SIGCONT');
      replies = await Promise.all(pending);
    } finally {
      process.kill(mine[0]!, 'SIGCONT');
    }
    const statuses = replies.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 429, 429, 429, 429, 429, 429]);
    for (const r of replies.filter((x) => x.status === 429)) {
      assert.equal(r.body.error_code, 'OVERLOADED');
      assert.match(r.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    }
    // The pool recovers: a lone request afterwards succeeds.
    const again = await call(s.base, 'POST', '/match', { candidate: 'a.png', neighbors: ['a.png'] });
    assert.equal(again.status, 200);
    assert.equal(again.body.response.duplicated.length, 1);
  });
});

describe('hard copies (crops, rotations, perspective, occlusion, low texture)', () => {
  let root: string;
  let s: Started;
  const neighbors = ['original.png', 'other.png', 'gradient.jpg', 'flat-panel.jpg'];

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'doppel-hard-'));
    const original = await texturedScene(41);
    await writeFile(path.join(root, 'original.png'), original);
    await writeFile(path.join(root, 'other.png'), await texturedScene(42));
    await writeFile(path.join(root, 'gradient.jpg'), await smoothGradient(43));
    await writeFile(path.join(root, 'flat-panel.jpg'), await nearFlat(120));
    for (const [i, fn] of Object.values(HARD_COPIES).entries()) await writeFile(path.join(root, `hard-${i}.jpg`), await fn(original));
    await writeFile(path.join(root, 'gradient-other.jpg'), await smoothGradient(44));
    await writeFile(path.join(root, 'near-flat.jpg'), await nearFlat(118, 420, 300));
    // The original, shrunk to a third of the width, pasted into a larger unrelated picture.
    const inset = await sharp(original).resize({ width: 300 }).png().toBuffer();
    await writeFile(path.join(root, 'picture-in-picture.jpg'), await sharp(await texturedScene(45, 1000, 760)).composite([{ input: inset, left: 620, top: 420 }]).jpeg({ quality: 90 }).toBuffer());
    s = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1' });
  });
  after(async () => {
    await s.close();
    await rm(root, { recursive: true, force: true });
  });

  for (const [i, name] of Object.keys(HARD_COPIES).entries()) {
    it(`when the candidate is a ${name} copy, then it verifies against its original only`, async () => {
      const r = await call(s.base, 'POST', '/match', { candidate: `hard-${i}.jpg`, neighbors });
      assert.equal(r.status, 200, r.body.error_message);
      const { duplicated, checked } = r.body.response;
      assert.deepEqual(duplicated.map((d: { relative_path: string }) => d.relative_path), ['original.png'], JSON.stringify(checked));
      assert.equal(duplicated[0].method, 'sift');
      for (const c of checked.filter((x: { relative_path: string }) => x.relative_path !== 'original.png')) assert.ok(c.reason, JSON.stringify(c));
    });
  }

  it('when two unrelated smooth gradients are compared, then they do not match and the reason names the missing structure', async () => {
    const r = await call(s.base, 'POST', '/match', { candidate: 'gradient-other.jpg', neighbors });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.response.duplicated, [], JSON.stringify(r.body.response.checked));
    const vsGradient = r.body.response.checked.find((c: { relative_path: string }) => c.relative_path === 'gradient.jpg');
    assert.equal(vsGradient.reason, 'query_without_structure', JSON.stringify(vsGradient));
  });

  it('when the query is almost flat, then it declares nothing and says why', async () => {
    const r = await call(s.base, 'POST', '/match', { candidate: 'near-flat.jpg', neighbors });
    assert.equal(r.status, 200);
    const { duplicated, checked, reason } = r.body.response;
    assert.deepEqual(duplicated, [], JSON.stringify(checked));
    assert.equal(reason, 'query_without_structure');
    // Even against the flat panel that it resembles.
    const panel = checked.find((c: { relative_path: string }) => c.relative_path === 'flat-panel.jpg');
    assert.ok(panel.score < 0.5 && panel.reason, JSON.stringify(panel));
  });

  it('when an indexed picture is pasted into a larger one, then it is reported as a partial duplicate with its region in the query', async () => {
    const r = await call(s.base, 'POST', '/match', { candidate: 'picture-in-picture.jpg', neighbors });
    assert.equal(r.status, 200);
    const { duplicated } = r.body.response;
    assert.deepEqual(duplicated.map((d: { relative_path: string }) => d.relative_path), ['original.png'], JSON.stringify(r.body.response.checked));
    assert.equal(duplicated[0].partial, true);
    // The inset spans x 620..920 of 1000 and y 420..645 of 760.
    const xs = duplicated[0].query_region.map((p: number[]) => p[0]);
    const ys = duplicated[0].query_region.map((p: number[]) => p[1]);
    assert.ok(Math.abs(Math.min(...xs) - 0.62) < 0.03 && Math.abs(Math.max(...xs) - 0.92) < 0.03, JSON.stringify(duplicated[0].query_region));
    assert.ok(Math.abs(Math.min(...ys) - 0.553) < 0.03 && Math.abs(Math.max(...ys) - 0.849) < 0.03, JSON.stringify(duplicated[0].query_region));
  });

  it('when a copy fills the whole query, then it is not partial', async () => {
    const r = await call(s.base, 'POST', '/match', { candidate: 'hard-0.jpg', neighbors: ['original.png'] });
    assert.equal(r.body.response.duplicated[0].partial, false);
  });
});

/** Entries in a running service's feature cache (its metric). */
const cacheEntries = async (base: string) => {
  const r = await fetch(`${base}/metrics`);
  return Number(/^matching_feature_cache_entries (\d+)/m.exec(await r.text())![1]);
};

describe('coarse-to-fine verification of small overlaps', () => {
  let root: string;
  let s: Started;
  const neighbors = ['large.png', 'other.png'];

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'doppel-fine-'));
    // A large original; the copy keeps its bottom-right 35% x 35% (an eighth of the area).
    // At the working size the original has ~300 keypoints over the whole picture, so the
    // overlap holds about 35 of them against the copy's 300: the first pass finds matches
    // but no spread fit, the fine description (768 px, 1200 keypoints) finds the copy.
    const large = await texturedScene(53, 1280, 960);
    await writeFile(path.join(root, 'large.png'), large);
    await writeFile(path.join(root, 'other.png'), await texturedScene(54, 1280, 960));
    await writeFile(path.join(root, 'small-crop.jpg'), await sharp(large).extract({ left: 1280 - 448 - 10, top: 960 - 336 - 10, width: 448, height: 336 }).jpeg({ quality: 90 }).toBuffer());
    await writeFile(path.join(root, 'full-copy.jpg'), await sharp(large).resize({ width: 900 }).jpeg({ quality: 80 }).toBuffer());
    s = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1' });
  });
  after(async () => {
    await s.close();
    await rm(root, { recursive: true, force: true });
  });

  // The working size alone comes close to 10 inliers on this pair (up to 11 of its ~11
  // matches were seen when the scene's noise still differed between runs): that side is not
  // asserted, the fine pass's verdict and region are.
  it('when a copy keeps an eighth of a large original, then it verifies with its region in the corner', async () => {
    const r = await call(s.base, 'POST', '/match', { candidate: 'small-crop.jpg', neighbors });
    assert.equal(r.status, 200);
    const { duplicated, checked } = r.body.response;
    assert.deepEqual(duplicated.map((d: { relative_path: string }) => d.relative_path), ['large.png'], JSON.stringify(checked));
    assert.equal(duplicated[0].method, 'sift');
    assert.ok(duplicated[0].inliers >= 10, JSON.stringify(duplicated[0]));
    // The region locates the crop in the bottom-right corner of the original (x from 0.64, y from 0.64).
    const xs = duplicated[0].region.map((p: number[]) => p[0]);
    const ys = duplicated[0].region.map((p: number[]) => p[1]);
    assert.ok(Math.abs(Math.min(...xs) - 0.642) < 0.04 && Math.abs(Math.min(...ys) - 0.64) < 0.04, JSON.stringify(duplicated[0].region));
  });

  it('when the first pass verifies a pair, then no fine features are extracted for it', async () => {
    const fresh = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1' });
    try {
      const copy = await call(fresh.base, 'POST', '/match', { candidate: 'full-copy.jpg', neighbors: ['large.png'] });
      assert.deepEqual(copy.body.response.duplicated.map((d: { relative_path: string }) => d.relative_path), ['large.png']);
      // Only working-size features are cached: the neighbour's, and the candidate's (kept as that file's target).
      assert.equal(await cacheEntries(fresh.base), 2);
    } finally {
      await fresh.close();
    }
  });
});

describe('the first neighbours open the second descriptions whatever their matches', () => {
  let root: string;
  let top: Started;
  let gatesOnly: Started;

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'doppel-refine-top-'));
    // A zoom on the middle 40% of a large dotted picture: at the working size the original's
    // dots are under a pixel, so its keypoints are its shapes and the zoom's are its dots; the
    // first pass finds about 5 matches, under FINE_MIN_MATCHES. The fine description has the dots.
    const large = await dottedScene(71, 1600, 1200);
    await writeFile(path.join(root, 'dotted.png'), large);
    await writeFile(path.join(root, 'dotted-other.png'), await dottedScene(171, 1600, 1200));
    await writeFile(path.join(root, 'zoom.jpg'), await sharp(large).extract({ left: 480, top: 360, width: 640, height: 480 }).jpeg({ quality: 90 }).toBuffer());
    top = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1' });
    gatesOnly = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1', REFINE_TOP: '0' });
  });
  after(async () => {
    await Promise.all([top.close(), gatesOnly.close()]);
    await rm(root, { recursive: true, force: true });
  });

  it('when a zoom\'s original is the first neighbour, then the fine pass verifies it; listed second, or with REFINE_TOP=0, the match gate leaves it undecided', async () => {
    const first = await call(top.base, 'POST', '/match', { candidate: 'zoom.jpg', neighbors: ['dotted.png', 'dotted-other.png'] });
    assert.equal(first.status, 200);
    const { duplicated, checked } = first.body.response;
    assert.deepEqual(duplicated.map((d: { relative_path: string }) => d.relative_path), ['dotted.png'], JSON.stringify(checked));
    assert.ok(duplicated[0].inliers >= 20, JSON.stringify(duplicated[0]));
    // The region is the middle of the original (x and y from 0.3 to 0.7).
    const xs = duplicated[0].region.map((p: number[]) => p[0]);
    assert.ok(Math.abs(Math.min(...xs) - 0.3) < 0.04 && Math.abs(Math.max(...xs) - 0.7) < 0.04, JSON.stringify(duplicated[0].region));
    const second = await call(top.base, 'POST', '/match', { candidate: 'zoom.jpg', neighbors: ['dotted-other.png', 'dotted.png'] });
    assert.deepEqual(second.body.response.duplicated, [], JSON.stringify(second.body.response.checked));
    const gated = await call(gatesOnly.base, 'POST', '/match', { candidate: 'zoom.jpg', neighbors: ['dotted.png', 'dotted-other.png'] });
    assert.deepEqual(gated.body.response.duplicated, [], JSON.stringify(gated.body.response.checked));
  });

  it('when /compare gets the zoom and its original, then the pair counts as first: duplicated, and not with REFINE_TOP=0', async () => {
    const body = { candidate: 'zoom.jpg', target: 'dotted.png' };
    const r = await call(top.base, 'POST', '/compare', body);
    assert.equal(r.status, 200);
    assert.equal(r.body.response.duplicated, true, JSON.stringify(r.body.response));
    const gated = await call(gatesOnly.base, 'POST', '/compare', body);
    assert.equal(gated.body.response.duplicated, false, JSON.stringify(gated.body.response));
  });
});

describe('a small copy against its neighbour at the copy\'s resolution', () => {
  let root: string;
  let on: Started;
  let off: Started;
  const neighbors = ['dotted.png', 'dotted-other.png'];

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'doppel-resample-'));
    // At the working size the original's 300 strongest keypoints are its dots, which the
    // 120-px thumbnail (JPEG quality 40) no longer has: the first pass finds 1-3 matches.
    // Shrunk to 120 px and enlarged like the copy, the original keeps the shapes the copy has.
    const dotted = await dottedScene(62);
    await writeFile(path.join(root, 'dotted.png'), dotted);
    await writeFile(path.join(root, 'dotted-other.png'), await dottedScene(162));
    await writeFile(path.join(root, 'thumb.jpg'), await sharp(dotted).resize({ width: 120 }).jpeg({ quality: 40 }).toBuffer());
    // The gate is opened (0 matches): this pair's first pass has too few matches for the default.
    // The tone check is off in both: it also verifies this whole, upright thumbnail, and the pass under test is the resampled one.
    on = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1', RESAMPLE_MIN_MATCHES: '0', TONE_CHECK: 'false' });
    off = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1', RESAMPLE_SMALL: 'false', TONE_CHECK: 'false' });
  });
  after(async () => {
    await Promise.all([on.close(), off.close()]);
    await rm(root, { recursive: true, force: true });
  });

  it('when the working-size pass leaves a thumbnail undecided, then the neighbour at the thumbnail\'s resolution verifies it, and only its original', async () => {
    const without = await call(off.base, 'POST', '/match', { candidate: 'thumb.jpg', neighbors });
    assert.equal(without.status, 200);
    assert.deepEqual(without.body.response.duplicated, [], JSON.stringify(without.body.response.checked));
    const r = await call(on.base, 'POST', '/match', { candidate: 'thumb.jpg', neighbors });
    assert.equal(r.status, 200);
    const { duplicated, checked } = r.body.response;
    assert.deepEqual(duplicated.map((d: { relative_path: string }) => d.relative_path), ['dotted.png'], JSON.stringify(checked));
    assert.equal(duplicated[0].method, 'sift');
    assert.ok(duplicated[0].inliers >= 20, JSON.stringify(duplicated[0]));
    // The region is in the neighbour's own frame: the whole picture.
    const xs = duplicated[0].region.map((p: number[]) => p[0]);
    assert.ok(Math.min(...xs) < 0.05 && Math.max(...xs) > 0.95, JSON.stringify(duplicated[0].region));
  });

  it('when the same neighbour is checked again at that resolution, then its resampled description comes from the cache', async () => {
    await call(on.base, 'POST', '/match', { candidate: 'thumb.jpg', neighbors });
    const before = await cacheEntries(on.base);
    const r = await call(on.base, 'POST', '/match', { candidate: 'thumb.jpg', neighbors });
    assert.equal(r.body.response.duplicated.length, 1);
    assert.equal(await cacheEntries(on.base), before);
  });
});

describe('the overlap check of low-texture pairs', () => {
  let root: string;
  let s: Started;
  let off: Started;
  const neighbors = ['soft.jpg', 'soft-other.jpg', 'gradient.jpg', 'flat-panel.jpg'];

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'doppel-overlap-'));
    // A smooth picture of soft blobs (SVG, no noise: the same pixels every run) and its
    // top-left corner keeping 45% of each side, a fifth of the area: SIFT finds a few
    // consistent matches there but not 10, and the whole-thumbnail dense check does not
    // reach its cut-off on so small a part.
    const soft = await lowTextureScene(7);
    await writeFile(path.join(root, 'soft.jpg'), soft);
    await writeFile(path.join(root, 'soft-other.jpg'), await lowTextureScene(3));
    await writeFile(path.join(root, 'gradient.jpg'), await smoothGradient(43));
    await writeFile(path.join(root, 'flat-panel.jpg'), await nearFlat(120));
    await writeFile(path.join(root, 'corner.jpg'), await sharp(soft).extract({ left: 0, top: 0, width: 288, height: 180 }).jpeg({ quality: 90 }).toBuffer());
    s = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1' });
    off = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1', OVERLAP_BELOW_KEYPOINTS: '0' });
  });
  after(async () => {
    await s.close();
    await off.close();
    await rm(root, { recursive: true, force: true });
  });

  it('when a low-texture copy keeps a fifth of its original, then the overlap check verifies it, and without the check nothing does', async () => {
    const r = await call(s.base, 'POST', '/match', { candidate: 'corner.jpg', neighbors });
    assert.equal(r.status, 200);
    const { duplicated, checked } = r.body.response;
    assert.deepEqual(duplicated.map((d: { relative_path: string }) => d.relative_path), ['soft.jpg'], JSON.stringify(checked));
    assert.equal(duplicated[0].method, 'dense');
    assert.ok(duplicated[0].inliers < 10, JSON.stringify(duplicated[0]));
    const without = await call(off.base, 'POST', '/match', { candidate: 'corner.jpg', neighbors });
    assert.deepEqual(without.body.response.duplicated, [], JSON.stringify(without.body.response.checked));
  });

  it('when the candidate is aligned on its true place, then the gradients agree; shifted by a third, or on flat or smooth pictures, they do not count', async () => {
    const thumb = async (b: Buffer) => (await decodeImage(b, { maxPixels: 1e8, maxBytes: 1e8, width: 384, height: 384, thumbSize: 32, overlapSide: OVERLAP_SIDE })).overlap;
    const soft = await thumb(await lowTextureScene(7));
    const corner = await thumb(await sharp(await lowTextureScene(7)).extract({ left: 0, top: 0, width: 288, height: 180 }).toBuffer());
    // The corner's thumbnail (96 x 60) sits in the original's (96 x 60) at 0.45 scale, at the origin.
    const k = soft.width / corner.width * 0.45;
    const aligned = alignedAgreement(corner, soft, [k, 0, 0, 0, k, 0, 0, 0, 1]);
    assert.ok(aligned.agreement > 0.8 && aligned.structure > 2 && aligned.pixels > 400, JSON.stringify(aligned));
    const shifted = alignedAgreement(corner, soft, [k, 0, soft.width / 3, 0, k, soft.height / 3, 0, 0, 1]);
    assert.ok(shifted.agreement < 0.5, JSON.stringify(shifted));
    // A flat panel and a smooth gradient hold no structure to agree on, whatever the alignment.
    const flat = await thumb(await nearFlat(120));
    const gradient = await thumb(await smoothGradient(44));
    const identity = (a: GreyImage, b: GreyImage) => [b.width / a.width, 0, 0, 0, b.height / a.height, 0, 0, 0, 1];
    for (const [a, b] of [[flat, await thumb(await nearFlat(118))], [gradient, await thumb(await smoothGradient(43))], [flat, soft]] as const) {
      const r = alignedAgreement(a, b, identity(a, b));
      assert.ok(r.structure < 2, JSON.stringify(r));
    }
  });
});

describe('the crop search of the dense check', () => {
  let root: string;
  let s: Started;
  let off: Started;
  let turning: Started;
  let unturned: Started;
  const others = ['soft.jpg', 'gradient.jpg', 'facade.jpg', 'flag.jpg'];

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'doppel-crop-'));
    // Drawn, no noise: the same pixels every run. Its copies keep under 40 keypoints, too few
    // for SIFT, and the squashed 32-px thumbnail of a strip lines up with nothing.
    const dune = await duneScene();
    await writeFile(path.join(root, 'dune.jpg'), dune);
    await writeFile(path.join(root, 'dune-strip.jpg'), await sharp(dune).extract({ left: 0, top: 250, width: 1024, height: 224 }).jpeg({ quality: 85 }).toBuffer());
    await writeFile(path.join(root, 'dune-turned.jpg'), await turnedAndFilled(dune, 15));
    await writeFile(path.join(root, 'dune-turned-in-frame.jpg'), await turnedInFrame(dune, 20));
    await writeFile(path.join(root, 'soft.jpg'), await lowTextureScene(7));
    await writeFile(path.join(root, 'gradient.jpg'), await smoothGradient(43));
    await writeFile(path.join(root, 'facade.jpg'), await facadeScene());
    await writeFile(path.join(root, 'flag.jpg'), await bandFlag('#2a8cff', '#ffff00'));
    s = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1' });
    off = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1', DENSE_CROP_SEARCH: 'false' });
    // The rotation search alone: the overlap check (SIFT's few-match fit) also turns some of these copies back.
    turning = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1', OVERLAP_BELOW_KEYPOINTS: '0' });
    unturned = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1', OVERLAP_BELOW_KEYPOINTS: '0', DENSE_ROTATION_SEARCH: 'false' });
  });
  after(async () => {
    await s.close();
    await off.close();
    await turning.close();
    await unturned.close();
    await rm(root, { recursive: true, force: true });
  });

  for (const [copy, how] of [['dune-turned.jpg', 'turned by 15 degrees and cropped to fill its frame'], ['dune-turned-in-frame.jpg', 'turned by 20 degrees in its frame, its corners filled']]) {
    it(`when a low-texture copy ${how} is matched, then the rotation search verifies its original, no unrelated picture listed first, and without it nothing`, async () => {
      const r = await call(turning.base, 'POST', '/match', { candidate: copy, neighbors: ['dune.jpg', ...others] });
      assert.equal(r.status, 200);
      const { duplicated, checked } = r.body.response;
      assert.deepEqual(duplicated.map((d: { relative_path: string }) => d.relative_path), ['dune.jpg'], JSON.stringify(checked));
      assert.equal(duplicated[0].method, 'dense');
      // Each unrelated picture listed first gets the rotation search too (REFINE_TOP).
      for (const other of others) {
        const o = await call(turning.base, 'POST', '/match', { candidate: copy, neighbors: [other] });
        assert.deepEqual(o.body.response.duplicated, [], `${other}: ${JSON.stringify(o.body.response.checked)}`);
      }
      const without = await call(unturned.base, 'POST', '/match', { candidate: copy, neighbors: ['dune.jpg'] });
      assert.deepEqual(without.body.response.duplicated, [], JSON.stringify(without.body.response.checked));
    });
  }

  it('when a low-texture full-width strip is matched, then the crop search verifies its original and nothing else, and without it nothing verifies', async () => {
    for (const copy of ['dune-strip.jpg']) {
      const r = await call(s.base, 'POST', '/match', { candidate: copy, neighbors: ['dune.jpg', ...others] });
      assert.equal(r.status, 200);
      const { duplicated, checked } = r.body.response;
      assert.deepEqual(duplicated.map((d: { relative_path: string }) => d.relative_path), ['dune.jpg'], `${copy}: ${JSON.stringify(checked)}`);
      assert.equal(duplicated[0].method, 'dense');
      const without = await call(off.base, 'POST', '/match', { candidate: copy, neighbors: ['dune.jpg', ...others] });
      assert.deepEqual(without.body.response.duplicated, [], `${copy}: ${JSON.stringify(without.body.response.checked)}`);
    }
  });

  it('when the search places a strip, then the map puts it on the rows it was cut from', async () => {
    const thumb = async (b: Buffer) => (await decodeImage(b, { maxPixels: 1e8, maxBytes: 1e8, width: 384, height: 384, thumbSize: 32, overlapSide: OVERLAP_SIDE })).overlap;
    const dune = await duneScene();
    const target = await thumb(dune);
    const strip = await thumb(await sharp(dune).extract({ left: 0, top: 250, width: 1024, height: 224 }).toBuffer());
    const c = cropSearch(strip, target);
    assert.equal(c.fraction, 1);
    // The strip's centre row lands on the original's row 362 of 640, in its 96 x 60 thumbnail.
    const [x, y] = project(c.map, (strip.width - 1) / 2, (strip.height - 1) / 2)!;
    assert.ok(Math.abs(x - (target.width - 1) / 2) < 2 && Math.abs(y - (362 / 640) * target.height) < 2, JSON.stringify({ x, y, c }));
  });
});

describe('the tone check', () => {
  let root: string;
  let s: Started;
  let off: Started;
  const originals = ['soft3.jpg', 'soft5.jpg', 'waves.jpg', 'soft7.jpg', 'gradient.jpg', 'facade.jpg'];

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'doppel-tone-'));
    // Drawn, no noise but JPEG's: the same pixels every run. All 640 x 400, so every pair has one aspect.
    const pictures: Record<string, Buffer> = {
      'soft3.jpg': await lowTextureScene(3), 'soft5.jpg': await lowTextureScene(5), 'soft7.jpg': await lowTextureScene(7),
      'waves.jpg': await wavyBands(), 'gradient.jpg': await smoothGradient(43), 'facade.jpg': await facadeScene(),
    };
    for (const [name, png] of Object.entries(pictures)) await writeFile(path.join(root, name), png);
    for (const name of ['soft3.jpg', 'soft5.jpg', 'waves.jpg']) await writeFile(path.join(root, `vivid-${name}`), await wrappedPosterize(pictures[name]!));
    s = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1' });
    off = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1', TONE_CHECK: 'false' });
  });
  after(async () => {
    await s.close();
    await off.close();
    await rm(root, { recursive: true, force: true });
  });

  it('when a channel-wrapped, posterized copy of a low-texture picture is matched, then the tone check verifies its original and nothing else, and without it nothing verifies', async () => {
    for (const name of ['soft3.jpg', 'soft5.jpg', 'waves.jpg']) {
      const copy = `vivid-${name}`;
      const r = await call(s.base, 'POST', '/match', { candidate: copy, neighbors: originals });
      assert.equal(r.status, 200);
      const { duplicated, checked } = r.body.response;
      assert.deepEqual(duplicated.map((d: { relative_path: string }) => d.relative_path), [name], `${copy}: ${JSON.stringify(checked)}`);
      assert.equal(duplicated[0].method, 'dense');
      const without = await call(off.base, 'POST', '/match', { candidate: copy, neighbors: originals });
      assert.deepEqual(without.body.response.duplicated, [], `${copy}: ${JSON.stringify(without.body.response.checked)}`);
    }
  });

  it('when two unrelated low-texture pictures of one aspect are matched, bare, under one caption bar, or under one caption bar and white frame, then the tone check declares nothing', async () => {
    const r = await call(s.base, 'POST', '/match', { candidate: 'soft7.jpg', neighbors: originals.filter((o) => o !== 'soft7.jpg') });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.response.duplicated, [], JSON.stringify(r.body.response.checked));
    // The overlay's edges agree and its text pins them; the pictures under it do not agree.
    const framed = async (png: Buffer) => TRANSFORMS.border!(await TRANSFORMS.caption!(png));
    for (const overlay of [TRANSFORMS.caption!, framed]) {
      for (const [a, b] of [[31, 32], [7, 11]]) {
        const c = await call(s.base, 'POST', '/compare', {
          candidate_base64: (await overlay(await lowTextureScene(a!))).toString('base64'),
          target_base64: (await overlay(await lowTextureScene(b!))).toString('base64'),
        });
        assert.equal(c.status, 200);
        assert.equal(c.body.response.duplicated, false, JSON.stringify(c.body.response));
      }
    }
  });
});

describe('the dense check confirms its placement', () => {
  let root: string;
  let s: Started;
  let unconfirmed: Started;
  const flags = ['flag-blue-yellow.jpg', 'flag-navy-white.jpg'];

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'doppel-dense-'));
    // Drawn, no noise: the same pixels every run. The facade's middle (70% of each side) shows
    // a roof line, a wall edge and flat colour: few keypoints, and at 32x32 it lines up with a
    // flag's one straight border well enough for the thumbnail correlation.
    const facade = await facadeScene();
    await writeFile(path.join(root, 'facade-middle.jpg'), await sharp(facade).extract({ left: 96, top: 60, width: 448, height: 280 }).jpeg({ quality: 90 }).toBuffer());
    await writeFile(path.join(root, flags[0]!), await bandFlag('#2a8cff', '#ffff00'));
    await writeFile(path.join(root, flags[1]!), await bandFlag('#1a1a80', '#e0e0e0'));
    const ribbons = await wavyBands();
    await writeFile(path.join(root, 'ribbons.jpg'), ribbons);
    // Blurred enough that SIFT keeps no consistent match: only the dense check can verify them.
    await writeFile(path.join(root, 'ribbons-blurred.jpg'), await sharp(ribbons).blur(3).jpeg({ quality: 50 }).toBuffer());
    await writeFile(path.join(root, 'ribbons-small-grey.jpg'), await sharp(ribbons).greyscale().blur(2).resize({ width: 320 }).jpeg({ quality: 50 }).toBuffer());
    s = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1' });
    unconfirmed = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1', DENSE_MIN_PINNING: '0' });
  });
  after(async () => {
    await s.close();
    await unconfirmed.close();
    await rm(root, { recursive: true, force: true });
  });

  it('when a flat-shaded facade meets flags of flat colour bands, then nothing verifies, though the unconfirmed dense check declared both', async () => {
    const before = await call(unconfirmed.base, 'POST', '/match', { candidate: 'facade-middle.jpg', neighbors: flags });
    assert.deepEqual(before.body.response.duplicated.map((d: { relative_path: string }) => d.relative_path).sort(), flags, JSON.stringify(before.body.response.checked));
    assert.ok(before.body.response.duplicated.every((d: { method: string; inliers: number }) => d.method === 'dense' && d.inliers === 0));
    const r = await call(s.base, 'POST', '/match', { candidate: 'facade-middle.jpg', neighbors: flags });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.response.duplicated, [], JSON.stringify(r.body.response.checked));
  });

  it('when copies of a picture of wavy parallel bands are matched, then the dense check still verifies them', async () => {
    for (const copy of ['ribbons-blurred.jpg', 'ribbons-small-grey.jpg']) {
      const r = await call(s.base, 'POST', '/match', { candidate: copy, neighbors: ['ribbons.jpg', ...flags] });
      const { duplicated, checked } = r.body.response;
      assert.deepEqual(duplicated.map((d: { relative_path: string }) => d.relative_path), ['ribbons.jpg'], JSON.stringify(checked));
      assert.equal(duplicated[0].method, 'dense', JSON.stringify(duplicated[0]));
      assert.ok(duplicated[0].inliers < 10, JSON.stringify(duplicated[0]));
    }
  });

  it('when straight bands are slid along their border, then they agree as well as in place; wavy bands agree only in place', async () => {
    const thumb = async (b: Buffer) => (await decodeImage(b, { maxPixels: 1e8, maxBytes: 1e8, width: 384, height: 384, thumbSize: 32, overlapSide: OVERLAP_SIDE })).overlap;
    const identity = (a: GreyImage, b: GreyImage) => [b.width / a.width, 0, 0, 0, b.height / a.height, 0, 0, 0, 1];
    const flag = await thumb(await bandFlag('#2a8cff', '#ffff00'));
    const flagCopy = await thumb(await sharp(await bandFlag('#2a8cff', '#ffff00')).blur(1.5).jpeg({ quality: 60 }).toBuffer());
    const straight = pinnedAgreement(flagCopy, flag, identity(flagCopy, flag));
    assert.ok(straight.agreement > 0.9 && straight.pinning < 0.02, JSON.stringify(straight));
    const ribbons = await thumb(await wavyBands());
    const ribbonsCopy = await thumb(await sharp(await wavyBands()).blur(1.5).jpeg({ quality: 60 }).toBuffer());
    const wavy = pinnedAgreement(ribbonsCopy, ribbons, identity(ribbonsCopy, ribbons));
    assert.ok(wavy.agreement > 0.9 && wavy.pinning > 0.08, JSON.stringify(wavy));
  });
});

describe('small images enlarged before SIFT', () => {
  it('when an image is under ENLARGE_BELOW, then SIFT sees it at twice its size; from ENLARGE_BELOW on, it is only ever shrunk', async () => {
    const limits = { maxPixels: 1e8, maxBytes: 1e8, width: 384, height: 384, thumbSize: 32, enlargeBelow: 192 };
    const tiny = await sharp(await texturedScene(41)).resize({ width: 120 }).jpeg({ quality: 75 }).toBuffer();
    const small = await decodeImage(tiny, limits);
    assert.deepEqual([small.grey.width, small.grey.height], [240, 180]);
    assert.deepEqual([(await decodeImage(tiny, { ...limits, enlargeBelow: 0 })).grey.width], [120]);
    const atLimit = await decodeImage(await sharp(await texturedScene(41)).resize({ width: 192 }).png().toBuffer(), limits);
    assert.equal(atLimit.grey.width, 192);
  });

  it('when a 120-px thumbnail of an original is the candidate, then it verifies against its original', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'doppel-small-'));
    const original = await texturedScene(61);
    await writeFile(path.join(root, 'original.png'), original);
    await writeFile(path.join(root, 'other.png'), await texturedScene(62));
    await writeFile(path.join(root, 'thumb.jpg'), await sharp(original).resize({ width: 120 }).jpeg({ quality: 75 }).toBuffer());
    const s = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1' });
    try {
      const r = await call(s.base, 'POST', '/match', { candidate: 'thumb.jpg', neighbors: ['original.png', 'other.png'] });
      assert.deepEqual(r.body.response.duplicated.map((d: { relative_path: string }) => d.relative_path), ['original.png'], JSON.stringify(r.body.response.checked));
    } finally {
      await s.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('a file that is both candidate and target', () => {
  let root: string;
  let s: Started;
  let fresh: Started;
  const lookups = async (base: string) => {
    const m = await (await fetch(`${base}/metrics`)).text();
    const n = (r: string) => Number(new RegExp(`matching_feature_cache_lookups_total\\{result="${r}"\\} (\\d+)`).exec(m)?.[1] ?? 0);
    return { hit: n('hit'), miss: n('miss') };
  };

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'doppel-once-'));
    const scene = await texturedScene(31);
    await writeFile(path.join(root, 'a.png'), scene);
    await writeFile(path.join(root, 'b.jpg'), await sharp(scene).resize({ width: 420 }).flop().jpeg({ quality: 70 }).toBuffer());
    s = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1' });
    fresh = await start({ SOURCE_DIR: root, TARGET_DIR: root, NB_WORKERS: '1' });
  });
  after(async () => {
    await Promise.all([s.close(), fresh.close()]);
    await rm(root, { recursive: true, force: true });
  });

  it('when every file of a folder is matched against the others, then each is described once and the verdicts are a fresh service\'s', async () => {
    const ab = await call(s.base, 'POST', '/match', { candidate: 'a.png', neighbors: ['b.jpg'] });
    const ba = await call(s.base, 'POST', '/match', { candidate: 'b.jpg', neighbors: ['a.png'] });
    const prepared = await call(s.base, 'POST', '/prepare', { candidate: 'a.png' });
    // Each file missed once (described), then was found: b as a candidate, a as a target and as a prepared candidate.
    assert.deepEqual(await lookups(s.base), { hit: 3, miss: 2 });
    assert.deepEqual(prepared.body.response.timings_ms, { decode: 0, extract: 0 });
    // The same verdicts as from a service that described each file for its role alone.
    const alone = await call(fresh.base, 'POST', '/match', { candidate: 'b.jpg', neighbors: ['a.png'] });
    assert.deepEqual(ba.body.response, alone.body.response);
    assert.equal(ba.body.response.duplicated.length, 1, JSON.stringify(ba.body.response));
    assert.equal(ab.body.response.duplicated.length, 1, JSON.stringify(ab.body.response));
    assert.equal(prepared.body.response.keypoints, (await call(fresh.base, 'POST', '/prepare', { candidate: 'a.png' })).body.response.keypoints);
  });
});

describe('features kept by the worker processes', () => {
  const policy = { ratio: 0.8, kernel: 'rootsift' as const, model: 'similarity' as const, reprojPx: 4, acceptInliers: 10, denseMinKeypoints: 40, denseMinEdgeStd: 2 };
  let candidate: PreparedCandidate;
  let targets: TargetFeatures[];

  before(async () => {
    const extractor = new WorkerPool({ size: 1, queueLimit: 10 });
    const features = async (png: Buffer, kind: 'extract-candidate' | 'extract-target'): Promise<WorkerResult> =>
      extractor.run({ kind, image: await greyOf(png), extraction: { maxKeypoints: 300, adaptBelow: 0, lowContrast: 0.04 } });
    const original = await texturedScene(21);
    const copy = await sharp(original).resize({ width: 400 }).flop().jpeg({ quality: 60 }).toBuffer();
    const c = await features(copy, 'extract-candidate');
    assert.equal(c.kind, 'extract-candidate');
    candidate = { features: c.features, thumb: { width: 32, height: 32, data: new Uint8Array(1024) }, overlap: { width: 0, height: 0, data: new Uint8Array(0) }, colour: [], structure: { greyStd: 0, edgeStd: 0 }, ownLong: 400 };
    targets = [];
    for (const png of [original, await texturedScene(22), await texturedScene(23)]) {
      const t = await features(png, 'extract-target');
      assert.equal(t.kind, 'extract-target');
      targets.push({ features: t.features, thumb: { width: 32, height: 32, data: new Uint8Array(1024) }, overlap: { width: 0, height: 0, data: new Uint8Array(0) }, colour: [], structure: { greyStd: 0, edgeStd: 0 }, refinable: false, ownLong: 512 });
    }
    await extractor.close();
  });

  async function verifyAll(pool: WorkerPool): Promise<PairVerdict[]> {
    const out: PairVerdict[] = [];
    // Every target twice, so a worker that keeps 2 values must evict and be resent some.
    for (const i of [0, 1, 2, 0, 1, 2]) {
      const r = await pool.run({ kind: 'verify', candidate: { key: 'c', value: candidate }, target: { key: `t${i}`, value: targets[i]! }, policy });
      assert.equal(r.kind, 'verify');
      out.push(r.verdict);
    }
    return out;
  }

  it('when workers keep features, then verdicts equal those of always sending them, and fewer are sent', async () => {
    const always = new WorkerPool({ size: 2, queueLimit: 10, sharedBytes: 0 });
    // Room for the candidate and one target: the second target evicts the first.
    const kept = new WorkerPool({ size: 2, queueLimit: 10, sharedBytes: sharedBytes(candidate) + Math.max(...targets.map(sharedBytes)) + 1 });
    try {
      const a = await verifyAll(always);
      const k = await verifyAll(kept);
      assert.deepEqual(k, a);
      assert.ok(a[0]!.inliers >= 10 && a[0]!.mirrored, JSON.stringify(a[0]));
      assert.equal(always.sharing.byKey, 0);
      assert.ok(kept.sharing.byKey > 0, JSON.stringify(kept.sharing));
      assert.ok(kept.sharing.sent < always.sharing.sent, JSON.stringify(kept.sharing));
      assert.equal(kept.sharing.resent, 0);
    } finally {
      await Promise.all([always.close(), kept.close()]);
    }
  });

  it('when the pairs go as one verify-many task, then its verdicts are those of one task per pair, and a repeated target goes by key', async () => {
    const single = new WorkerPool({ size: 1, queueLimit: 10, sharedBytes: 2 ** 24 });
    const many = new WorkerPool({ size: 1, queueLimit: 10, sharedBytes: 2 ** 24 });
    try {
      // The fourth pair is the original again under a stricter ratio test: each pair names its own policy.
      const order = [0, 1, 2, 0, 1, 2];
      const strict = { ...policy, ratio: 0.5 };
      const one: PairVerdict[] = [];
      for (const [j, i] of order.entries()) {
        const v = await single.run({ kind: 'verify', candidate: { key: 'c', value: candidate }, target: { key: `t${i}`, value: targets[i]! }, policy: j === 3 ? strict : policy });
        assert.equal(v.kind, 'verify');
        if (v.kind === 'verify') one.push(v.verdict);
      }
      assert.notDeepEqual(one[3], one[0], 'the stricter ratio changes the verdict');
      const r = await many.run({
        kind: 'verify-many',
        candidate: { key: 'c', value: candidate },
        pairs: order.map((i, j) => ({ target: { key: `t${i}`, value: targets[i]! }, policy: j === 3 ? 1 : 0 })),
        policies: [policy, strict],
      });
      assert.equal(r.kind, 'verify-many');
      if (r.kind !== 'verify-many') return;
      assert.deepEqual(r.verdicts, one);
      // The candidate and three targets sent in full; the three repeats by key only.
      assert.deepEqual(many.sharing, { sent: 4, byKey: 3, resent: 0 });
      // A second task holding only keys the worker has: nothing is sent again.
      const again = await many.run({ kind: 'verify-many', candidate: { key: 'c', value: candidate }, pairs: [{ target: { key: 't2', value: targets[2]! }, policy: 0 }], policies: [policy] });
      assert.deepEqual(again.kind === 'verify-many' ? again.verdicts : again, [one[2]]);
      assert.deepEqual(many.sharing, { sent: 4, byKey: 5, resent: 0 });
    } finally {
      await Promise.all([single.close(), many.close()]);
    }
  });

  it('when a pair asks for its fine description, then the task asking again with its first passes answers as one given the description up front', async () => {
    const pool = new WorkerPool({ size: 1, queueLimit: 10, sharedBytes: 2 ** 24 });
    try {
      // Nothing accepts at 1000 inliers, so the fine gate (open at 0 matches) asks for the fine description.
      const asking = { ...policy, acceptInliers: 1000, fineMinMatches: 0 };
      const target = { key: 't0', value: { ...targets[0]!, refinable: true } };
      const fine = { key: 't0-fine', value: targets[1]!.features };
      const base = { kind: 'verify' as const, candidate: { key: 'c', value: candidate }, target, policy: asking };
      const first = await pool.run(base);
      assert.ok(first.kind === 'verify' && first.verdict.needsFine && first.verdict.passes?.target, JSON.stringify(first));
      if (first.kind !== 'verify') return;
      assert.equal(first.verdict.passes!.target.matches > 0, true);
      const again = await pool.run({ ...base, fine, passes: first.verdict.passes });
      const upFront = await pool.run({ ...base, fine });
      assert.deepEqual(again, upFront);
      assert.ok(again.kind === 'verify' && !again.verdict.needsFine && again.verdict.passes === undefined, JSON.stringify(again));
    } finally {
      await pool.close();
    }
  });

  it('when n neighbours are cut into k runs, then the runs are consecutive, cover each once and differ in size by at most one', () => {
    for (const [n, k] of [[0, 4], [1, 4], [3, 4], [10, 4], [10, 2], [44, 4], [7, 1], [5, 64]] as const) {
      const runs = runsOf(n, k);
      assert.deepEqual(runs.flat(), Array.from({ length: n }, (_, i) => i), `${n} in ${k}`);
      assert.equal(runs.length, Math.min(n, k), `${n} in ${k}`);
      const sizes = runs.map((r) => r.length);
      if (n > 0) assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1 && Math.min(...sizes) >= 1, `${n} in ${k}: ${sizes}`);
    }
  });

  it('when a task names a value no worker holds, then it is resent once and then fails with a clear error', async () => {
    const pool = new WorkerPool({ size: 1, queueLimit: 10, sharedBytes: 2 ** 24 });
    try {
      await assert.rejects(
        pool.run({ kind: 'verify', candidate: { key: 'never-sent' }, target: { key: 't0', value: targets[0]! }, policy }),
        /does not hold never-sent/,
      );
      assert.equal(pool.sharing.resent, 1);
      // The worker is still serving.
      const r = await pool.run({ kind: 'probe' });
      assert.deepEqual(r, { kind: 'probe', sift: true });
    } finally {
      await pool.close();
    }
  });

  it('when a task runs past the task timeout, then it fails, its process is replaced and the pool serves on', async () => {
    // SIFT with 20000 keypoints on a 25-megapixel noise image takes far longer than 3 s
    // (a fresh worker gets extra time for its first task, hence the probe first).
    const side = 5000;
    const noise = await sharp({ create: { width: side, height: side, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 60 } } })
      .greyscale().raw().toBuffer();
    const pool = new WorkerPool({ size: 1, queueLimit: 10, taskTimeoutMs: 3000 });
    try {
      await pool.run({ kind: 'probe' });
      const image = { width: side, height: side, data: new Uint8Array(noise.buffer, noise.byteOffset, side * side) };
      await assert.rejects(pool.run({ kind: 'extract-target', image, extraction: { maxKeypoints: 20000, adaptBelow: 0, lowContrast: 0.04 } }), TaskTimeoutError);
      assert.deepEqual(await pool.run({ kind: 'probe' }), { kind: 'probe', sift: true });
    } finally {
      await pool.close();
    }
  });

  it('when the caller aborts, then its queued tasks are dropped and never run', async () => {
    const pool = new WorkerPool({ size: 1, queueLimit: 10, sharedBytes: 0 });
    try {
      await pool.run({ kind: 'probe' });
      const gone = new AbortController();
      const run = (signal?: AbortSignal) =>
        pool.run({ kind: 'verify', candidate: { key: 'c', value: candidate }, target: { key: 't0', value: targets[0]! }, policy }, { signal });
      const first = run(gone.signal);
      const queued = [run(gone.signal), run(gone.signal), run(gone.signal)];
      assert.equal(pool.queued, 3);
      gone.abort();
      assert.equal(pool.queued, 0);
      for (const q of queued) await assert.rejects(q, { name: 'AbortError' });
      // The running one finishes (a native call cannot be interrupted); its answer is still delivered.
      await first;
      assert.equal(pool.sharing.sent, 2, 'only the first task was sent to the worker');
      await assert.rejects(run(gone.signal), { name: 'AbortError' });
      assert.equal((await run()).kind, 'verify');
    } finally {
      await pool.close();
    }
  });
});
