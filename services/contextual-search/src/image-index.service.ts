import { LRUCache } from 'lru-cache';
import { AppError } from '@doppel/service-kit';
import { MAX_DELETE_ITEMS, MAX_REGIONS, MAX_UPSERT_ITEMS, type BatchNeighbor, type DeleteResponse, type LookupResponse, type Neighbor, type StatsResponse, type UpsertResponse, type VectorItem } from '@doppel/schemas';
import type { Collection } from './collection.service.js';
import { mergeByImage } from './neighbour-merge.logic.js';
import { vectorProblem } from './vector.check.js';
import type { Readiness } from './vector.backend.js';

/** Keys of region entries are `<image path><SEP><region index>`; image paths may not contain it. */
export const REGION_SEPARATOR = '\u001f';
/**
 * Most region neighbours fetched per wanted image: an original's regions crowd the top of the
 * list (a crop matches its own window and the overlapping ones), so k region hits can name
 * far fewer than k images. Fewer when the images hold fewer entries each: with one grey
 * entry per image (GREY_ENTRY, regions off), k hits name about k images.
 */
export const REGION_FANOUT = 4;
/**
 * How long a computed hubness is reused. Hubs come back in the candidates of one query after
 * query, so most lookups hit; this process's own writes clear the cache, and the TTL bounds
 * how stale it gets when another replica (pgvector) writes. An image's hubness moves little
 * with any one write.
 */
export const HUBNESS_TTL_MS = 60_000;

const regionKey = (path: string, i: number) => `${path}${REGION_SEPARATOR}${i}`;
function imageOfKey(key: string): { path: string; region: number } {
  const at = key.lastIndexOf(REGION_SEPARATOR);
  return { path: key.slice(0, at), region: Number(key.slice(at + 1)) };
}

export interface ImageIndexOptions {
  dimension: number;
  distance: StatsResponse['response']['distance'];
  /**
   * While the regions store looks empty, searches look again after this long (pgvector
   * replicas share one table: another replica may be the first to add regions).
   */
  regionsRecheckMs?: number;
}

const REGIONS_RECHECK_MS = 5000;

/**
 * Images with optional regional fingerprints, over two collections: `images` holds one
 * vector per image (keyed by its path, with its metadata: what /vectors lists and counts),
 * `regions` one entry per region. Regions are added, replaced and deleted with their image,
 * and a search returns images, each once, with the best score of the whole image or any
 * region. Replicas may share a pgvector database, so which region keys an image has is
 * not kept here: the keys a replaced or deleted image may have left are deleted blindly
 * (MAX_REGIONS per image). Region changes are applied before the image's: after a crash in
 * between, the image still carries its old stamp, so the pipeline re-indexes it.
 *
 * Regions are off by default (the encoder's REGIONS=none), and then the regions store is
 * empty: while it is, writes skip the blind deletes (on hnswlib each would be a WAL record
 * and an fdatasync of its own) and searches skip the second k-NN query. Whether it is
 * empty is the store's own count, asked again before every write (a write must not leave a
 * deleted image's regions behind) and, for searches, at most every regionsRecheckMs; once a
 * region has been seen the answer stays "not empty" (emptying it again is rare and only
 * costs the old behaviour).
 */
export class ImageIndex {
  private readonly hubCache = new LRUCache<string, number>({ max: 200_000, ttl: HUBNESS_TTL_MS });
  private regionsSeen = false;
  private regionsCheckedAt = Number.NEGATIVE_INFINITY;
  private fanout = { value: REGION_FANOUT, at: Number.NEGATIVE_INFINITY };

  constructor(readonly images: Collection, readonly regions: Collection, private readonly opts: ImageIndexOptions) {}

  async open(): Promise<void> {
    // Both settle before a failure is reported, so a caller that closes on failure never
    // closes (or deletes) a store that is still opening.
    const [a, b] = await Promise.allSettled([this.images.open(), this.regions.open()]);
    if (a.status === 'rejected') throw a.reason;
    if (b.status === 'rejected') throw b.reason;
    await this.mayHoldRegions(true);
  }

  /** Whether the regions store may hold entries: `fresh` asks the store unless a region was already seen. */
  private async mayHoldRegions(fresh: boolean): Promise<boolean> {
    if (this.regionsSeen) return true;
    const now = performance.now();
    if (!fresh && now - this.regionsCheckedAt < (this.opts.regionsRecheckMs ?? REGIONS_RECHECK_MS)) return false;
    this.regionsCheckedAt = now;
    if ((await this.regions.stats()).count > 0) this.regionsSeen = true;
    return this.regionsSeen;
  }

  async close(): Promise<void> {
    await Promise.all([this.images.close(), this.regions.close()]);
  }

  async readiness(): Promise<Readiness> {
    const [a, b] = await Promise.all([this.images.readiness(), this.regions.readiness()]);
    return a.ok && b.ok ? { ok: true } : { ok: false, detail: a.ok ? `regions: ${b.detail ?? 'not ready'}` : a.detail ?? 'not ready' };
  }

  async upsert(items: VectorItem[]): Promise<UpsertResponse['response']> {
    // Everything is checked before anything changes, as a single collection does.
    items.forEach((it, i) => {
      if (it.relative_path.includes(REGION_SEPARATOR)) throw new AppError('INVALID_REQUEST', `items[${i}].relative_path: must not contain the control character U+001F`);
      const problem = vectorProblem(it.vec_features, this.opts.dimension, this.opts.distance, `items[${i}].vec_features`);
      if (problem) throw new AppError('INVALID_REQUEST', problem);
      it.regions?.forEach((v, j) => {
        const p = vectorProblem(v, this.opts.dimension, this.opts.distance, `items[${i}].regions[${j}]`);
        if (p) throw new AppError('INVALID_REQUEST', p);
      });
    });
    // The last item of a path wins, as in the collection.
    const last = new Map(items.map((it) => [it.relative_path, it]));
    const add: VectorItem[] = [];
    const drop: string[] = [];
    for (const [path, it] of last) {
      const n = it.regions?.length ?? 0;
      it.regions?.forEach((v, j) => add.push({ relative_path: regionKey(path, j), vec_features: v }));
      for (let j = n; j < MAX_REGIONS; j++) drop.push(regionKey(path, j));
    }
    const plain = items.map(({ regions: _regions, ...rest }) => rest);
    // Set before the regions are written, so that a search or delete from now on sees them.
    if (add.length) this.regionsSeen = true;
    if (await this.mayHoldRegions(true)) await this.dropRegions(drop);
    for (let i = 0; i < add.length; i += MAX_UPSERT_ITEMS) await this.regions.upsert(add.slice(i, i + MAX_UPSERT_ITEMS));
    try {
      return await this.images.upsert(plain);
    } finally {
      this.hubCache.clear();
    }
  }

  async delete(paths: string[]): Promise<DeleteResponse['response']> {
    if (await this.mayHoldRegions(true)) await this.dropRegions(paths.flatMap((p) => Array.from({ length: MAX_REGIONS }, (_, j) => regionKey(p, j))));
    try {
      return await this.images.delete(paths);
    } finally {
      this.hubCache.clear();
    }
  }

  private async dropRegions(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += MAX_DELETE_ITEMS) await this.regions.delete(keys.slice(i, i + MAX_DELETE_ITEMS));
  }

  /**
   * Region hits fetched per wanted image: the entries per image in the stores (rounded up),
   * at most REGION_FANOUT; counted again at most every regionsRecheckMs (a count is a query
   * on pgvector).
   */
  private async regionFanout(): Promise<number> {
    const now = performance.now();
    if (now - this.fanout.at >= (this.opts.regionsRecheckMs ?? REGIONS_RECHECK_MS)) {
      const [images, regions] = await Promise.all([this.images.stats(), this.regions.stats()]);
      this.fanout = { value: Math.max(1, Math.min(REGION_FANOUT, Math.ceil(regions.count / Math.max(1, images.count)))), at: now };
    }
    return this.fanout.value;
  }

  /** The k best images for one vector: whole-image and region hits merged per image. */
  async search(vec: number[], k: number, minScore?: number, ef?: number): Promise<Neighbor[]> {
    if (!(await this.mayHoldRegions(false))) return this.images.search(vec, k, minScore, ef);
    const [whole, hits] = await Promise.all([
      this.images.search(vec, k, minScore, ef),
      this.regionFanout().then((f) => this.regions.search(vec, k * f, minScore, ef)),
    ]);
    if (hits.length === 0) return whole;
    const regional = hits.map((n) => {
      const { path, region } = imageOfKey(n.relative_path);
      return { relative_path: path, score: n.score, region };
    });
    return mergeByImage([whole, regional], k).map(({ query: _query, ...n }) => n);
  }

  /** Several vectors (a query's orientations), merged per image; with hubnessK, each result's hubness. */
  async searchBatch(vecs: number[][], k: number, minScore?: number, ef?: number, limit?: number, hubnessK?: number): Promise<BatchNeighbor[]> {
    const merged = mergeByImage(await Promise.all(vecs.map((v) => this.search(v, k, minScore, ef))), limit);
    if (hubnessK === undefined) return merged;
    const hub = await this.hubness(merged.map((n) => n.relative_path), hubnessK, ef);
    return merged.map((n, i) => (hub[i] === undefined ? n : { ...n, hubness: hub[i] }));
  }

  /**
   * Mean score of each image's k nearest other images (its whole vector against the others'
   * whole vectors), from the collection as it is now. Undefined for an image deleted meanwhile.
   */
  async hubness(paths: string[], k: number, ef?: number): Promise<Array<number | undefined>> {
    const key = (p: string) => `${k}${REGION_SEPARATOR}${p}`;
    const cached = paths.map((p) => this.hubCache.get(key(p)));
    const missing = paths.filter((_, i) => cached[i] === undefined);
    if (missing.length === 0) return cached;
    const stored = await this.images.lookup(missing);
    const fresh = new Map(await Promise.all(stored.map(async (s, i): Promise<[string, number | undefined]> => {
      if (!s) return [missing[i]!, undefined];
      const v = s.vec_features;
      const others = (await this.images.search(v, k + 1, 0, ef)).filter((n) => n.relative_path !== missing[i]).slice(0, k);
      return [missing[i]!, others.length === 0 ? 0 : others.reduce((a, n) => a + n.score, 0) / others.length];
    })));
    for (const [p, h] of fresh) if (h !== undefined) this.hubCache.set(key(p), h);
    return paths.map((p, i) => cached[i] ?? fresh.get(p));
  }

  /** The stored whole-image vectors (not regions) of these paths, with their metadata. */
  async lookup(paths: string[]): Promise<LookupResponse['response']> {
    const stored = await this.images.lookup(paths);
    const items: LookupResponse['response']['items'] = [];
    const notFound: string[] = [];
    stored.forEach((s, i) => (s ? items.push({ relative_path: paths[i]!, ...s }) : notFound.push(paths[i]!)));
    return { items, not_found: notFound };
  }

  async stats(): Promise<StatsResponse['response']> {
    const [images, regions] = await Promise.all([this.images.stats(), this.regions.stats()]);
    return { ...images, region_vectors: regions.count };
  }
}
