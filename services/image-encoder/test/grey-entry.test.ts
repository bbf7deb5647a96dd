import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { call } from '@doppel/service-kit/testing';
import { rmacWindows } from '../src/feature-output.graph.js';
import { toGrey } from '../src/colourless.image.js';
import { pattern, startEncoder, type TestEncoder } from './helpers.js';

const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);
const b64 = (b: Buffer) => b.toString('base64');
const W = 128;
const H = 96;
const png = (px: Uint8Array) => sharp(px, { raw: { width: W, height: H, channels: 3 } }).png().toBuffer();

describe('image-encoder: grey entries (GREY_ENTRY)', () => {
  let grey: TestEncoder;
  let greyRegions: TestEncoder;
  let colour: Buffer;
  let greyed: Buffer;
  before(async () => {
    [grey, greyRegions] = await Promise.all([
      startEncoder({ GREY_ENTRY: 'true', REGIONS: 'none' }),
      startEncoder({ GREY_ENTRY: 'true', REGIONS: 'rmac' }),
    ]);
    colour = await png(pattern(W, H, 3));
    greyed = await png(toGrey(Uint8Array.from(pattern(W, H, 3))));
  });
  after(async () => {
    await Promise.all([grey.close(), greyRegions.close()]);
  });

  const encode = async (enc: TestEncoder, img: Buffer, regions?: boolean) => {
    const r = await call(enc.base, 'POST', '/encode', { image_base64: b64(img), ...(regions ? { regions } : {}) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.response as { fingerprint: number[]; regions?: number[][] };
  };

  it('when a colour image is encoded for indexing, then its one other entry is the fingerprint of its greyscale version, and its fingerprint is unchanged', async () => {
    const indexed = await encode(grey, colour, true);
    assert.equal(indexed.regions?.length, 1);
    const greyCopy = await encode(grey, greyed);
    assert.ok(dot(indexed.regions[0]!, greyCopy.fingerprint) > 0.999, `grey entry vs the grey copy: ${dot(indexed.regions[0]!, greyCopy.fingerprint)}`);
    const plain = await encode(grey, colour);
    assert.equal(plain.regions, undefined, 'a query asks for no entries and gets none');
    assert.ok(dot(plain.fingerprint, indexed.fingerprint) > 0.99999);
    assert.ok(dot(plain.fingerprint, greyCopy.fingerprint) < 0.999, 'the colour fingerprint is not the grey one');
  });

  it('when a colourless image is encoded for indexing, then it gets no grey entry (its fingerprint already is one)', async () => {
    const r = await call(grey.base, 'POST', '/encode/batch', { items: [{ image_base64: b64(greyed), regions: true }, { image_base64: b64(colour), regions: true }] });
    assert.equal(r.status, 200);
    const [g, c] = r.body.response.results as Array<{ regions: number[][] }>;
    assert.deepEqual(g!.regions, []);
    assert.equal(c!.regions.length, 1);
  });

  it('when the encoder also pools regions, then the grey entry comes after the 13 regions', async () => {
    const indexed = await encode(greyRegions, colour, true);
    assert.equal(indexed.regions?.length, rmacWindows().length + 1);
    const greyCopy = await encode(greyRegions, greyed);
    assert.ok(dot(indexed.regions.at(-1)!, greyCopy.fingerprint) > 0.999);
  });
});
