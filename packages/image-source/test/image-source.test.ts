import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppError } from '@doppel/service-kit';
import { canonicalId, decodeBase64, readImageFile, requireAcceptedFormat, resolveImagePath } from '../src/index.js';

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
