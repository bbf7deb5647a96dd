import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { rmacWindows } from '@doppel/image-encoder';
import { call } from '@doppel/service-kit/testing';
import type { Stack } from '@doppel/cli';
import { realModelPath, regionVectors, searchEverything, startIndexedStack, type Hit } from './helpers/real-stack.fixture.js';
import { stripedImage, syntheticImage } from './helpers/images.fixture.js';

/*
 * The four real services as processes, the encoder pooling regional fingerprints
 * (REGIONS=rmac) with the real fingerprint model (the installed default, whitened when
 * `pnpm models` wrote its fit, else the shared one): a corner crop of an indexed picture,
 * among drawn distractors, is found through one of the picture's regions, and every image
 * comes back once however many of its vectors match.
 */
const DISTRACTORS = 36;
const REGIONS = rmacWindows().length;
const TARGET = 'index/target.jpg';

describe('e2e: regional fingerprints through the real stack', { timeout: 300_000, skip: !existsSync(realModelPath) && 'no real model (pnpm models)' }, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'doppel-regions-e2e-'));
  const root = join(tmp, 'images');
  let stack: Stack;
  let base: string;
  const searchAll = (vec: number[]) => searchEverything(stack, vec);

  before(async () => {
    mkdirSync(join(root, 'index'), { recursive: true });
    mkdirSync(join(root, 'queries'), { recursive: true });
    // The target: a random-shape picture like the distractors, with a striped picture of
    // another kind over its top-left 2/3 x 2/3 (the R-MAC window [0, 2/3] x [0, 2/3]), so that
    // corner is unlike the whole. The crop is that corner, recompressed.
    const side = 480;
    const inset = (side * 2) / 3;
    const target = await sharp(await syntheticImage(705, side, side))
      .composite([{ input: await stripedImage(701, inset, inset), left: 0, top: 0 }])
      .jpeg({ quality: 92 }).toBuffer();
    writeFileSync(join(root, TARGET), target);
    for (let i = 0; i < DISTRACTORS; i++) writeFileSync(join(root, 'index', `d-${String(i).padStart(2, '0')}.jpg`), await syntheticImage(800 + i));
    writeFileSync(join(root, 'queries', 'crop.jpg'), await sharp(target).extract({ left: 0, top: 0, width: inset, height: inset }).jpeg({ quality: 85 }).toBuffer());

    stack = await startIndexedStack({ root, tmp, encoderEnv: { REGIONS: 'rmac' }, expectIndexed: DISTRACTORS + 1 });
    base = stack.urls.pipeline;
  });

  after(async () => {
    await stack?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('when a folder is indexed, then every image\'s regions are stored with it', async () => {
    assert.equal(await regionVectors(stack), (DISTRACTORS + 1) * REGIONS);
  });

  it('when a corner crop of an indexed picture is queried, then the picture is verified, and search scores it by a top-left region rather than its whole fingerprint', async () => {
    const r = await call(base, 'POST', '/duplicates', { relative_path: 'queries/crop.jpg' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const { duplicated, candidates } = r.body.response as { duplicated: Hit[]; candidates: Hit[] };
    assert.deepEqual(duplicated.map((d) => d.relative_path), [TARGET], JSON.stringify(r.body.response));
    assert.equal(new Set(candidates.map((c) => c.relative_path)).size, candidates.length, 'each candidate once');

    const enc = await call(stack.urls['image-encoder'], 'POST', '/encode', { relative_path: 'queries/crop.jpg' });
    assert.equal(enc.status, 200, JSON.stringify(enc.body));
    const hits = await searchAll(enc.body.response.fingerprint as number[]);
    assert.equal(hits[0]!.relative_path, TARGET, JSON.stringify(hits.slice(0, 3)));
    const region = hits[0]!.region;
    assert.ok(region !== undefined, 'the best entry of the picture is one of its regions');
    assert.deepEqual(rmacWindows()[region]!.slice(0, 2), [0, 0], `region ${region} is a top-left window`);
  });

  it('when every entry is searched, then each image comes back once though it holds 14 vectors', async () => {
    const enc = await call(stack.urls['image-encoder'], 'POST', '/encode', { relative_path: TARGET });
    const hits = await searchAll(enc.body.response.fingerprint as number[]);
    assert.equal(hits.length, DISTRACTORS + 1);
    assert.equal(new Set(hits.map((h) => h.relative_path)).size, hits.length);
  });

  it('when an image is deleted from the folder and the folder re-indexed with prune, then its regions go with it', async () => {
    unlinkSync(join(root, 'index', 'd-00.jpg'));
    const r = await call(base, 'POST', '/index', { relative_path: 'index', prune: true });
    assert.equal(r.body.response.removed, 1, JSON.stringify(r.body));
    assert.equal(await regionVectors(stack), DISTRACTORS * REGIONS);
    const enc = await call(stack.urls['image-encoder'], 'POST', '/encode', { relative_path: TARGET });
    const hits = await searchAll(enc.body.response.fingerprint as number[]);
    assert.ok(!hits.some((h) => h.relative_path === 'index/d-00.jpg'));
  });
});
