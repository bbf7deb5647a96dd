import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppError } from '@doppel/service-kit';
import sharp from 'sharp';
import {
  canonicalId, collectFiles, decodeBase64, decodeFailure, decodeImage, listImages, openImage, readImageFile, requireAcceptedFormat,
  resolveImagePath, stampFiles,
} from '../src/index.js';

const codeOf = async (p: Promise<unknown> | (() => unknown)): Promise<[number, string]> => {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    assert.ok(e instanceof AppError, String(e));
    return [e.status, e.code];
  }
  throw new Error('expected an AppError');
};

describe('image-source: paths under a root', () => {
  let base: string;
  let root: string;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'doppel-src-'));
    root = join(base, 'root');
    await mkdir(join(root, 'sub'), { recursive: true });
    await writeFile(join(root, 'a.png'), 'abc');
    await writeFile(join(root, 'sub', 'b.png'), 'abcdef');
    await writeFile(join(base, 'secret.png'), 'outside');
    await symlink(join(base, 'secret.png'), join(root, 'escape.png'));
    await symlink(join(root, 'a.png'), join(root, 'inner-link.png'));
    await symlink(join(root, 'loop'), join(root, 'loop'));
    execFileSync('mkfifo', [join(root, 'pipe.png')]);
  });
  after(() => rm(base, { recursive: true, force: true }));

  it('when a path has ./ or empty segments or backslashes, then it has the same canonical id as the plain one', () => {
    assert.equal(canonicalId('./a.png'), 'a.png');
    assert.equal(canonicalId('sub//./b.png'), 'sub/b.png');
    assert.equal(canonicalId('sub\\b.png'), 'sub/b.png');
    assert.equal(canonicalId('sub/../a.png'), 'a.png');
    assert.equal(canonicalId('./'), '.');
  });

  it('when a path climbs out, is absolute, has a drive letter or a NUL, then 403 FORBIDDEN_PATH', async () => {
    for (const p of ['../a.png', 'sub/../../x', '/etc/passwd', 'C:/x.png', 'a\u0000.png', '..']) {
      assert.deepEqual(await codeOf(() => canonicalId(p)), [403, 'FORBIDDEN_PATH'], p);
      assert.deepEqual(await codeOf(resolveImagePath(root, p)), [403, 'FORBIDDEN_PATH'], p);
    }
  });

  it('when a symlink lands outside the root or loops, then 403; when it stays inside, then it resolves', async () => {
    assert.deepEqual(await codeOf(resolveImagePath(root, 'escape.png')), [403, 'FORBIDDEN_PATH']);
    assert.deepEqual(await codeOf(resolveImagePath(root, 'loop')), [403, 'FORBIDDEN_PATH']);
    const inner = await resolveImagePath(root, './inner-link.png');
    assert.equal(inner.id, 'inner-link.png');
    assert.equal(inner.size, 3);
  });

  it('when the root itself is reached through a symlink, then paths under it still resolve', async () => {
    const alias = join(base, 'alias');
    await symlink(root, alias);
    assert.equal((await resolveImagePath(alias, 'sub/b.png')).size, 6);
  });

  it('when the path is missing, a folder or a FIFO, then 404 and the FIFO is never opened', async () => {
    for (const p of ['missing.png', 'sub', 'pipe.png']) {
      assert.deepEqual(await codeOf(readImageFile(root, p, { maxBytes: 100 })), [404, 'IMAGE_NOT_FOUND'], p);
    }
  });

  it('when a folder is listed or collected, then ids are canonical, symlinks found inside are not followed and a folder link out is 403', async () => {
    await mkdir(join(base, 'outside-dir'), { recursive: true });
    await writeFile(join(base, 'outside-dir', 'c.png'), 'c');
    await symlink(join(base, 'outside-dir'), join(root, 'dir-out'));
    assert.deepEqual(await listImages(root, './', true), ['a.png', 'sub/b.png']);
    assert.deepEqual((await collectFiles(root, 'sub/', false)).map((f) => [f.relative_path, f.size]), [['sub/b.png', 6]]);
    for (const p of ['dir-out', 'dir-out/c.png', '../root/dir-out']) {
      assert.deepEqual(await codeOf(collectFiles(root, p, true)), [403, 'FORBIDDEN_PATH'], p);
    }
    assert.deepEqual(await codeOf(collectFiles(root, 'nothing', true)), [404, 'IMAGE_NOT_FOUND']);
    const stamped = await stampFiles(root, ['./a.png', 'escape.png', 'missing.png']);
    assert.deepEqual(stamped.map((s) => ('error' in s ? [s.relative_path, s.error.code] : [s.relative_path, s.size])), [
      ['a.png', 3], ['escape.png', 'FORBIDDEN_PATH'], ['missing.png', 'IMAGE_NOT_FOUND'],
    ]);
  });

  it('when a file is over the byte limit, then 413; within it, then its bytes', async () => {
    assert.deepEqual(await codeOf(readImageFile(root, 'sub/b.png', { maxBytes: 5 })), [413, 'PAYLOAD_TOO_LARGE']);
    assert.equal((await readImageFile(root, 'sub/b.png', { maxBytes: 6 })).toString(), 'abcdef');
  });
});

describe('image-source: strict base64', () => {
  it('when the text is valid base64 (padded, unpadded, data URL, wrapped lines), then it decodes', () => {
    assert.equal(decodeBase64('aGVsbG8=', 100).toString(), 'hello');
    assert.equal(decodeBase64('aGVsbG8', 100).toString(), 'hello');
    assert.equal(decodeBase64('data:image/png;base64,aGVsbG8=', 100).toString(), 'hello');
    assert.equal(decodeBase64('aGVs\r\nbG8=', 100).toString(), 'hello');
  });

  it('when the text has characters outside the alphabet or bad padding, then 400 instead of silently dropping them', async () => {
    for (const s of ['aGVs*bG8=', 'aGVsbG8===', 'a', 'aGVs bG8=', '-_-_', '']) {
      assert.deepEqual(await codeOf(() => decodeBase64(s, 100)), [400, 'INVALID_REQUEST'], s);
    }
  });

  it('when a 20 MB base64 text arrives, then it decodes (no stack overflow in the check)', () => {
    const bytes = Buffer.alloc(15 * 1024 * 1024, 7);
    assert.equal(decodeBase64(bytes.toString('base64'), 20 * 1024 * 1024).length, bytes.length);
  });

  it('when the decoded size is over the limit, then 413', async () => {
    assert.deepEqual(await codeOf(() => decodeBase64(Buffer.alloc(300).toString('base64'), 100)), [413, 'PAYLOAD_TOO_LARGE']);
  });
});

describe('image-source: format allow-list', () => {
  it('when a decoder reports svg, an unknown or a missing format, then 415; photo formats pass', () => {
    for (const f of ['svg', 'pdf', 'magick', undefined]) {
      assert.throws(() => requireAcceptedFormat(f), (e: unknown) => e instanceof AppError && e.code === 'UNSUPPORTED_MEDIA_TYPE');
    }
    for (const f of ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif', 'heif']) assert.doesNotThrow(() => requireAcceptedFormat(f));
  });
});

describe('image-source: decoding with limits', () => {
  const limits = { maxPixels: 1_000_000, maxBytes: 200_000 };
  const flat = (width: number, height: number) => sharp({ create: { width, height, channels: 3, background: '#336699' } });

  it('when a photo is decoded, then the first frame comes out with its EXIF orientation applied', async () => {
    const rotated = await flat(40, 20).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const out = await decodeImage(rotated, limits, ({ image }) => image.raw().toBuffer({ resolveWithObject: true }));
    assert.deepEqual([out.info.width, out.info.height], [20, 40]);
  });

  it('when the pixel count in the header is over the limit, then 413 before decoding', async () => {
    const bomb = await flat(1200, 1000).png().toBuffer();
    assert.ok(bomb.length < limits.maxBytes);
    assert.deepEqual(await codeOf(openImage(bomb, limits)), [413, 'PAYLOAD_TOO_LARGE']);
  });

  it('when the bytes are over the limit, then 413', async () => {
    assert.deepEqual(await codeOf(openImage(Buffer.alloc(limits.maxBytes + 1), limits)), [413, 'PAYLOAD_TOO_LARGE']);
  });

  it('when the data is SVG or in no known format, then 415; a truncated image is 422', async () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>');
    assert.deepEqual(await codeOf(openImage(svg, limits)), [415, 'UNSUPPORTED_MEDIA_TYPE']);
    assert.deepEqual(await codeOf(openImage(Buffer.from('not an image at all'), limits)), [415, 'UNSUPPORTED_MEDIA_TYPE']);
    const jpeg = await sharp({ create: { width: 200, height: 200, channels: 3, background: '#808080' } }).jpeg().toBuffer();
    const truncated = jpeg.subarray(0, Math.floor(jpeg.length / 2));
    const render = decodeImage(truncated, limits, ({ image }) => image.raw().toBuffer());
    assert.deepEqual(await codeOf(render), [422, 'UNDECODABLE_IMAGE']);
  });

  it('when libvips reports a timeout or the pixel limit, then 422 / 413', () => {
    assert.equal(decodeFailure(new Error('timeout: 12% complete')).code, 'UNDECODABLE_IMAGE');
    assert.equal(decodeFailure(new Error('Input image exceeds pixel limit')).code, 'PAYLOAD_TOO_LARGE');
  });
});
