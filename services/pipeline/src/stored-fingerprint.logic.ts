import type { SearchClient } from '@doppel/clients';
import { modelOf } from './fingerprint-model.logic.js';

/** A query file as the pipeline resolved it just now. */
export interface QueryFile { id: string; size: number; mtimeMs: number }

/**
 * The fingerprint search already holds for an indexed, unchanged file, so that a query by
 * relative_path (what `doppel scan` sends for every file) is not encoded again: indexing
 * encoded it with the same orientation ('none') and preprocessing. It is used only when the
 * stored size and mtime are the file's now (a rewritten file is encoded afresh) and the stored
 * vector was made by the model the encoder last answered with (so a query never compares two
 * models' fingerprints; until the pipeline has seen an encoder answer, it encodes). A file
 * added through POST /images has no file stamp and is encoded as before.
 */
export class StoredFingerprints {
  private encoderModel: string | undefined;

  constructor(private readonly search: SearchClient) {}

  /** Every encoder answer names its model: the newest is the one stored vectors must match. */
  noteEncoderModel(model: string): void {
    this.encoderModel = model;
  }

  async forQuery(file: QueryFile): Promise<{ fingerprint: number[]; model: string } | undefined> {
    if (this.encoderModel === undefined) return undefined;
    const { items } = await this.search.lookup({ relative_paths: [file.id] });
    const meta = items[0]?.metadata;
    const model = modelOf(meta);
    if (!items[0] || model !== this.encoderModel) return undefined;
    if (meta?.file_size !== file.size || meta?.file_mtime_ms !== Math.floor(file.mtimeMs)) return undefined;
    return { fingerprint: items[0].vec_features, model };
  }
}
