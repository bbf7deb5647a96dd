import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { call } from '@doppel/service-kit/testing';
import type { Stack } from '@doppel/cli';
import { realModelPath, regionVectors, searchEverything, startIndexedStack, type Hit } from './helpers/real-stack.fixture.js';
import { syntheticImage } from './helpers/images.fixture.js';

/*
 * The four real services as processes, the encoder indexing each colour image with a
 * second, greyscale fingerprint (GREY_ENTRY=true, regions off) and the real fingerprint
 * model: a greyscale copy of an indexed colour picture meets that picture's grey entry,
 * an image without colour gets no grey entry, and the entries are replaced and deleted
 * with their image.
 */
const DISTRACTORS = 24;
const TARGET = 'index/target.jpg';
const GREY_PICTURE = 'index/grey-picture.jpg';

/** Greyscale as a photo editor's "desaturate" makes it (libvips' own luma weights, not the encoder's). */
const greyCopy = (img: Buffer) => sharp(img).greyscale().jpeg({ quality: 90 }).toBuffer();

describe('e2e: grey entries through the real stack', { timeout: 300_000, skip: !existsSync(realModelPath) && 'no real model (pnpm models)' }, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'doppel-grey-e2e-'));
  const root = join(tmp, 'images');
  let stack: Stack;
  let base: string;
  const searchAll = (vec: number[]) => searchEverything(stack, vec);
  const fingerprint = async (relative_path: string) => {
    const r = await call(stack.urls['image-encoder'], 'POST', '/encode', { relative_path });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.response.fingerprint as number[];
  };
  const greyEntries = () => regionVectors(stack);

  before(async () => {
    mkdirSync(join(root, 'index'), { recursive: true });
    mkdirSync(join(root, 'queries'), { recursive: true });
    const target = await syntheticImage(905);
    writeFileSync(join(root, TARGET), target);
    for (let i = 0; i < DISTRACTORS; i++) writeFileSync(join(root, 'index', `d-${String(i).padStart(2, '0')}.jpg`), await syntheticImage(930 + i));
    // A picture that has no colour of its own: its fingerprint already is its greyscale one.
    writeFileSync(join(root, GREY_PICTURE), await greyCopy(await syntheticImage(960)));
    writeFileSync(join(root, 'queries', 'grey.jpg'), await greyCopy(target));

    stack = await startIndexedStack({ root, tmp, encoderEnv: { GREY_ENTRY: 'true', REGIONS: 'none' }, expectIndexed: DISTRACTORS + 2 });
    base = stack.urls.pipeline;
  });

  after(async () => {
    await stack?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('when a folder is indexed, then every colour image gets one grey entry and the colourless one none', async () => {
    assert.equal(await greyEntries(), DISTRACTORS + 1);
    const hits = await searchAll(await fingerprint(GREY_PICTURE));
    assert.equal(hits[0]!.relative_path, GREY_PICTURE);
    assert.equal(hits[0]!.region, undefined, 'found by its own fingerprint: it has no other entry');
  });

  it('when a greyscale copy of a colour picture is queried, then search scores the picture by its grey entry, far above its colour fingerprint, and the copy is verified', async () => {
    const query = await fingerprint('queries/grey.jpg');
    const hits = await searchAll(query);
    assert.equal(hits[0]!.relative_path, TARGET, JSON.stringify(hits.slice(0, 3)));
    assert.equal(hits[0]!.region, 0, 'the best entry of the picture is its grey entry (the only one with regions off)');
    assert.ok(hits[0]!.score > 0.97, `grey copy against the grey entry: ${hits[0]!.score}`);
    // The same cosine against the colour fingerprint alone: what search had before grey entries.
    const colour = await fingerprint(TARGET);
    const cos = query.reduce((a, v, i) => a + v * colour[i]!, 0);
    assert.ok(cos < hits[0]!.score - 0.05, `colour fingerprint ${cos.toFixed(3)} vs grey entry ${hits[0]!.score.toFixed(3)}`);

    const r = await call(base, 'POST', '/duplicates', { relative_path: 'queries/grey.jpg' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const { duplicated, candidates } = r.body.response as { duplicated: Hit[]; candidates: Hit[] };
    assert.equal(candidates[0]!.relative_path, TARGET);
    assert.deepEqual(duplicated.map((d) => d.relative_path), [TARGET], JSON.stringify(r.body.response));
  });

  it('when every entry is searched, then each image comes back once though colour images hold two vectors', async () => {
    const hits = await searchAll(await fingerprint('queries/grey.jpg'));
    assert.equal(hits.length, DISTRACTORS + 2);
    assert.equal(new Set(hits.map((h) => h.relative_path)).size, hits.length);
  });

  it('when an indexed picture is replaced by a colourless one and re-indexed, then its grey entry goes; when an image is deleted with prune, then its grey entry goes with it', async () => {
    writeFileSync(join(root, TARGET), await greyCopy(await syntheticImage(970)));
    const re = await call(base, 'POST', '/index', { relative_path: 'index' });
    assert.equal(re.body.response.indexed, 1, JSON.stringify(re.body));
    assert.equal(await greyEntries(), DISTRACTORS);
    const hits = await searchAll(await fingerprint('queries/grey.jpg'));
    assert.ok(hits.every((h) => h.relative_path !== TARGET || h.region === undefined), 'the old grey entry of the target is gone');

    unlinkSync(join(root, 'index', 'd-00.jpg'));
    const pruned = await call(base, 'POST', '/index', { relative_path: 'index', prune: true });
    assert.equal(pruned.body.response.removed, 1, JSON.stringify(pruned.body));
    assert.equal(await greyEntries(), DISTRACTORS - 1);
    assert.ok(!(await searchAll(await fingerprint('queries/grey.jpg'))).some((h) => h.relative_path === 'index/d-00.jpg'));
  });
});
