import type { SearchClient } from '@doppel/clients';
import type { FileStamp } from '@doppel/image-source';
import { isApiManaged } from './image-location.js';
import { FINGERPRINT_MODEL_KEY, modelOf } from './fingerprint-model.logic.js';

type Stamp = { size: number; mtime_ms: number; model: string | undefined };

/**
 * The metadata keys the pipeline writes next to each vector so re-indexing can skip unchanged
 * files: the file's size and mtime, and the model that fingerprinted it.
 */
export const stampMetadata = (f: FileStamp, model: string) => ({ file_size: f.size, file_mtime_ms: f.mtime_ms, [FINGERPRINT_MODEL_KEY]: model });

export function stampOf(meta: Record<string, unknown> | undefined): Stamp | undefined {
  const size = meta?.file_size;
  const mtime = meta?.file_mtime_ms;
  return typeof size === 'number' && typeof mtime === 'number' ? { size, mtime_ms: mtime, model: modelOf(meta) } : undefined;
}

/** The stored stamp is this file as it is now, fingerprinted by `model`. */
export const isStampOf = (s: Stamp | undefined, f: FileStamp, model: string): boolean =>
  s !== undefined && s.size === f.size && s.mtime_ms === f.mtime_ms && s.model === model;

/**
 * What contextual-search already holds, keyed by path. Loaded once by paging through
 * /vectors and kept in step with our own upserts; reloaded whenever the collection's
 * count says someone else changed it (a restart with other state, a delete).
 */
export class KnownFiles {
  private stamps = new Map<string, Stamp | undefined>();
  /** Ids added through POST /images: folder indexing neither re-encodes nor prunes them. */
  private managed = new Set<string>();
  private loaded = false;

  constructor(private readonly search: SearchClient, private readonly pageSize = 1000) {}

  private async reload(): Promise<void> {
    const next = new Map<string, Stamp | undefined>();
    const managed = new Set<string>();
    for (let offset = 0; ; offset += this.pageSize) {
      const page = await this.search.list({ offset, limit: this.pageSize });
      for (const item of page.items) {
        next.set(item.relative_path, stampOf(item.metadata));
        if (isApiManaged(item.metadata)) managed.add(item.relative_path);
      }
      if (page.items.length < this.pageSize || offset + page.items.length >= page.total) break;
    }
    this.stamps = next;
    this.managed = managed;
    this.loaded = true;
  }

  async sync(): Promise<void> {
    if (!this.loaded) return this.reload();
    const { count } = await this.search.stats();
    if (count !== this.stamps.size) await this.reload();
  }

  /** Indexed, unchanged, and fingerprinted by `model` (a vector of another model, or of none recorded, is stale). */
  isCurrent(f: FileStamp, model: string): boolean {
    return this.managed.has(f.relative_path) || isStampOf(this.stamps.get(f.relative_path), f, model);
  }

  remember(f: FileStamp, model: string): void {
    this.stamps.set(f.relative_path, { size: f.size, mtime_ms: f.mtime_ms, model });
  }

  /** Indexed file paths (prune candidates): API-managed ids are not files of the folder. */
  paths(): string[] {
    return [...this.stamps.keys()].filter((p) => !this.managed.has(p));
  }

  /** An id POST /images just added (keeps the view in step without a reload). */
  adopt(id: string): void {
    this.stamps.set(id, undefined);
    this.managed.add(id);
  }

  has(id: string): boolean {
    return this.stamps.has(id);
  }

  forget(paths: string[]): void {
    for (const p of paths) {
      this.stamps.delete(p);
      this.managed.delete(p);
    }
  }
}
