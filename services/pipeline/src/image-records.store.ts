import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import type { ImageRecord } from '@doppel/schemas';
import { sha256, storageError } from './blob.store.js';

/** What POST /images remembers about an id; contextual-search holds its fingerprint under the same id. */
export type StoredRecord = Required<ImageRecord>;

/**
 * One JSON file per id added through the API (`records/<h[0:2]>/<sha256(id)>.json` under
 * API_STATE_DIR): its metadata and where its bytes are. Ids may hold any character, so
 * the file is named by the id's hash and the id itself is inside. Writes are atomic
 * (write-file-atomic: tmp file, fsync, rename).
 */
export class ImageRecords {
  constructor(private readonly imagesRoot: string, private readonly dir: string) {}

  private file(id: string): string {
    const h = sha256(id);
    return join(this.imagesRoot, posix.join(this.dir, 'records', h.slice(0, 2), `${h}.json`));
  }

  async get(id: string): Promise<StoredRecord | undefined> {
    let text: string;
    try {
      text = await readFile(this.file(id), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw storageError('read a record', e);
    }
    const rec = JSON.parse(text) as StoredRecord;
    // A hash collision is astronomically unlikely; a hand-copied file is not.
    return rec.id === id ? rec : undefined;
  }

  async put(rec: StoredRecord): Promise<void> {
    const file = this.file(rec.id);
    try {
      await mkdir(dirname(file), { recursive: true });
      await writeFileAtomic(file, JSON.stringify(rec), { fsync: true });
    } catch (e) {
      throw storageError('write a record', e);
    }
  }

  async remove(id: string): Promise<void> {
    await rm(this.file(id), { force: true });
  }
}
