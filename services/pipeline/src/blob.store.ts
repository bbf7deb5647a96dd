import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { AppError } from '@doppel/service-kit';
import { KeyedLock } from './keyed.lock.js';

export const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

/** File name suffix from the leading bytes: the services decode by content, the suffix is for people. */
export function extensionOf(bytes: Buffer): string {
  const head = bytes.subarray(0, 12);
  if (head[0] === 0xff && head[1] === 0xd8) return '.jpg';
  if (head.subarray(0, 4).toString('latin1') === '\x89PNG') return '.png';
  if (head.subarray(0, 4).toString('latin1') === 'RIFF' && head.subarray(8, 12).toString('latin1') === 'WEBP') return '.webp';
  if (head.subarray(0, 3).toString('latin1') === 'GIF') return '.gif';
  if (head.subarray(4, 8).toString('latin1') === 'ftyp') return '.avif';
  if (head.subarray(0, 2).toString('latin1') === 'II' || head.subarray(0, 2).toString('latin1') === 'MM') return '.tif';
  return '.img';
}

export interface StoredBlob {
  sha256: string;
  /** Relative to the image root, forward slashes: what the encoder and the matcher read. */
  relative_path: string;
  bytes: number;
}

/** The filesystem failing under us (read-only volume, disk full) is the deployment's problem, not the caller's. */
export function storageError(what: string, e: unknown): AppError {
  const code = (e as NodeJS.ErrnoException).code ?? 'error';
  return new AppError('UNAVAILABLE', `image store: cannot ${what} (${code}); is API_STATE_DIR writable?`, { cause: e });
}

/**
 * Content-addressed store of uploaded and downloaded images, refcounted by id.
 *
 * Layout under `dir` (itself under the image root):
 *   blobs/<h[0:2]>/<h><ext>          the bytes, named by their sha256 h
 *   refs/<h>/<sha256(id)>            one empty marker per id using h
 * A blob lives while its refs/ folder has a marker. Every step is a single create, rename
 * or unlink, so a crash can leave at worst an unreferenced blob, never a referenced one
 * missing.
 */
export class BlobStore {
  private readonly lock = new KeyedLock();

  constructor(
    /** Absolute image root. */
    private readonly imagesRoot: string,
    /** The store's folder, relative to the image root (forward slashes). */
    private readonly dir: string,
  ) {}

  private abs(rel: string): string {
    return join(this.imagesRoot, rel);
  }

  private blobRel(hash: string, ext: string): string {
    return posix.join(this.dir, 'blobs', hash.slice(0, 2), `${hash}${ext}`);
  }

  private refsDir(hash: string): string {
    return this.abs(posix.join(this.dir, 'refs', hash));
  }

  /**
   * Keeps the bytes for `id`: marks the reference, then writes the blob once (tmp file,
   * fsync, rename) unless a blob with that hash is already there.
   */
  async keep(bytes: Buffer, id: string): Promise<StoredBlob> {
    const hash = sha256(bytes);
    const rel = this.blobRel(hash, extensionOf(bytes));
    const file = this.abs(rel);
    return this.lock.run(hash, async () => {
      try {
        await mkdir(this.refsDir(hash), { recursive: true });
        await writeFile(join(this.refsDir(hash), sha256(id)), '');
        const existing = await stat(file).catch(() => undefined);
        if (existing?.size !== bytes.length) {
          await mkdir(dirname(file), { recursive: true });
          const tmp = `${file}.${randomUUID()}.tmp`;
          const fh = await open(tmp, 'w');
          try {
            await fh.writeFile(bytes);
            await fh.sync();
          } finally {
            await fh.close();
          }
          await rename(tmp, file);
        }
      } catch (e) {
        throw storageError('write an image', e);
      }
      return { sha256: hash, relative_path: rel, bytes: bytes.length };
    });
  }

  /** Drops `id`'s reference; deletes the blob when no id uses it any more. Returns whether it was deleted. */
  async release(blob: Pick<StoredBlob, 'sha256' | 'relative_path'>, id: string): Promise<boolean> {
    return this.lock.run(blob.sha256, async () => {
      const refs = this.refsDir(blob.sha256);
      await unlink(join(refs, sha256(id))).catch(() => undefined);
      const left = await readdir(refs).catch(() => [] as string[]);
      if (left.length > 0) return false;
      await rm(this.abs(blob.relative_path), { force: true });
      await rmdir(refs).catch(() => undefined);
      return true;
    });
  }

  async refCount(hash: string): Promise<number> {
    return (await readdir(this.refsDir(hash)).catch(() => [] as string[])).length;
  }
}
