import type { Metadata } from './wal.codec.js';
import type { SeededFile, SnapshotMeta } from './snapshot.store.js';

export interface Entry {
  label: number;
  metadata: Metadata | undefined;
}

/**
 * The path <-> label maps of the hnswlib backend, the metadata, the tombstones of deleted
 * paths (so a JSONL seed cannot resurrect them) and the JSONL files already seeded.
 * Labels are never reused: hnswlib cannot reuse a label that still names a deleted slot.
 */
export class PathMaps {
  private readonly byPath = new Map<string, Entry>();
  private readonly byLabel = new Map<number, string>();
  readonly tombstones = new Set<string>();
  seeded: Record<string, SeededFile> = {};
  nextLabel = 0;

  get size(): number {
    return this.byPath.size;
  }

  get(path: string): Entry | undefined {
    return this.byPath.get(path);
  }

  pathOf(label: number): string | undefined {
    return this.byLabel.get(label);
  }

  labels(): IterableIterator<number> {
    return this.byLabel.keys();
  }

  /** Insertion order (a replaced path keeps its place). */
  entries(): IterableIterator<[string, Entry]> {
    return this.byPath.entries();
  }

  /** Known live or deleted: the persisted state wins over a seed line for it. */
  seen(path: string): boolean {
    return this.byPath.has(path) || this.tombstones.has(path);
  }

  /** A new path gets the next label. */
  add(path: string, metadata: Metadata | undefined): number {
    const label = this.nextLabel++;
    this.byPath.set(path, { label, metadata });
    this.byLabel.set(label, path);
    this.tombstones.delete(path);
    return label;
  }

  /** Forgets a live path, leaving a tombstone; returns its label. */
  remove(path: string): number | undefined {
    const e = this.byPath.get(path);
    if (!e) return undefined;
    this.byPath.delete(path);
    this.byLabel.delete(e.label);
    this.tombstones.add(path);
    return e.label;
  }

  restore(meta: Pick<SnapshotMeta, 'entries' | 'tombstones' | 'seeded' | 'next_label'>): void {
    for (const [label, path, metadata] of meta.entries) {
      this.byPath.set(path, { label, metadata: metadata ?? undefined });
      this.byLabel.set(label, path);
    }
    for (const t of meta.tombstones) this.tombstones.add(t);
    this.seeded = { ...meta.seeded };
    this.nextLabel = meta.next_label;
  }

  capture(): Pick<SnapshotMeta, 'entries' | 'tombstones' | 'seeded' | 'next_label'> {
    return {
      next_label: this.nextLabel,
      entries: Array.from(this.byPath, ([path, e]) => [e.label, path, e.metadata ?? null]),
      tombstones: Array.from(this.tombstones),
      seeded: { ...this.seeded },
    };
  }
}
