/** Byte-bounded LRU (lru-cache) with hit/miss counters, for the feature caches. */
import { LRUCache } from 'lru-cache';

/**
 * Bounded by bytes, not entries: a target's features range from a few KB (a flat image)
 * to ~200 KB (the fine set of a textured one), so an entry count says little about memory.
 * Every set() names its size, so two caches fed the same sets and gets in the same order
 * (a worker's and the pool's mirror of it) evict the same keys.
 */
export class ByteLru<V extends NonNullable<unknown>> {
  private readonly lru: LRUCache<string, V> | undefined;
  hits = 0;
  misses = 0;

  constructor(maxBytes: number) {
    this.lru = maxBytes > 0 ? new LRUCache<string, V>({ maxSize: maxBytes }) : undefined;
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }

  get bytes(): number {
    return this.lru?.calculatedSize ?? 0;
  }

  get(key: string): V | undefined {
    const v = this.lru?.get(key);
    if (v === undefined) this.misses++;
    else this.hits++;
    return v;
  }

  /** A value larger than the whole cache is not kept (lru-cache refuses it on both sides alike). */
  set(key: string, value: V, bytes: number): void {
    if (!this.lru || bytes > this.lru.maxSize) return;
    this.lru.set(key, value, { size: Math.max(1, Math.ceil(bytes)) });
  }

  clear(): void {
    this.lru?.clear();
  }
}

export const fileKey = (file: string, size: number, mtimeMs: number): string => `${file}\u0000${size}\u0000${mtimeMs}`;
