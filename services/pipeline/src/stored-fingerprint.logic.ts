import type { SearchClient } from '@doppel/clients';
import { fileStamp, type ResolvedImage } from '@doppel/image-source';
import { isStampOf, stampOf } from './known-files.store.js';

/**
 * The fingerprint search already holds for an indexed, unchanged file, so that a query by
 * relative_path (what `doppel scan` sends for every file) is not encoded again: indexing
 * encoded it with the same orientation ('none') and preprocessing. It is used only when the
 * stored size and mtime are the file's now (a rewritten file is encoded afresh) and the stored
 * vector was made by the model the encoder last answered with (so a query never compares two
 * models' fingerprints; until the pipeline has seen an encoder answer, it encodes): the same
 * rule by which indexing skips a file. A file added through POST /images has no file stamp
 * and is encoded as before.
 */
export class StoredFingerprints {
  private encoderModel: string | undefined;

  constructor(private readonly search: SearchClient) {}

  /** Every encoder answer names its model: the newest is the one stored vectors must match. */
  noteEncoderModel(model: string): void {
    this.encoderModel = model;
  }

  async forQuery(file: ResolvedImage): Promise<{ fingerprint: number[]; model: string } | undefined> {
    const model = this.encoderModel;
    if (model === undefined) return undefined;
    const [item] = (await this.search.lookup({ relative_paths: [file.id] })).items;
    if (!item || !isStampOf(stampOf(item.metadata), fileStamp(file), model)) return undefined;
    return { fingerprint: item.vec_features, model };
  }
}
