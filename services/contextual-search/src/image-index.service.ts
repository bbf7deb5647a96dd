import { AppError } from '@doppel/service-kit';
import type { BatchNeighbor, DeleteResponse, Neighbor, StatsResponse, UpsertResponse, VectorItem } from '@doppel/schemas';
import type { Collection } from './collection.service.js';
import { mergeByImage } from './neighbour-merge.logic.js';
import { vectorProblem } from './vector.check.js';

/** Keys of region entries are `<image path><SEP><region index>`; image paths may not contain it. */
export const REGION_SEPARATOR = '\u001f';
/**
 * Region neighbours fetched per wanted image: an original's regions crowd the top of the
 * list (a crop matches its own window and the overlapping ones), so k region hits can name
 * far fewer than k images.
 */
export const REGION_FANOUT = 4;

const regionKey = (path: string, i: number) => `${path}${REGION_SEPARATOR}${i}`;
function imageOfKey(key: string): { path: string; region: number } {
  const at = key.lastIndexOf(REGION_SEPARATOR);
  return { path: key.slice(0, at), region: Number(key.slice(at + 1)) };
}

/** The part of a vector store this layer needs: both backends of a collection offer it. */
export type VectorStore = Pick<Collection, 'open' | 'close' | 'upsert' | 'delete' | 'search' | 'list' | 'stats' | 'readiness' | 'size'>;

export interface ImageIndexOptions {
  dimension: number;
  distance: StatsResponse['response']['distance'];
}

/**
 * Images with optional regional fingerprints, over two vector stores: `images` holds one
 * vector per image (keyed by its path, with its metadata: what /vectors lists and counts),
 * `regions` one entry per region. Regions are added, replaced and deleted with their image,
 * and a search returns images, each once, with the best score of the whole image or any
 * region. Region changes are applied before the image's: after a crash in between, the
 * image still carries its old stamp, so the pipeline re-indexes it.
 */
export class ImageIndex {
  /** Regions stored per image path, derived from the regions store at open. */
  private readonly counts = new Map<string, number>();

  constructor(readonly images: VectorStore, readonly regions: VectorStore, private readonly opts: ImageIndexOptions) {}

  async open(): Promise<void> {
    await Promise.all([this.images.open(), this.regions.open()]);
    const page = 1000;
    for (let offset = 0; ; offset += page) {
      const { items, total } = this.regions.list(offset, page, false);
      for (const { relative_path } of items) {
        const { path, region } = imageOfKey(relative_path);
        this.counts.set(path, Math.max(this.counts.get(path) ?? 0, region + 1));
      }
      if (items.length < page || offset + items.length >= total) break;
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.images.close(), this.regions.close()]);
  }

  readiness(): { ok: boolean; detail?: string } {
    const a = this.images.readiness();
    const b = this.regions.readiness();
    return a.ok && b.ok ? { ok: true } : { ok: false, detail: a.ok ? `regions: ${b.detail ?? 'not ready'}` : a.detail ?? 'not ready' };
  }

  async upsert(items: VectorItem[]): Promise<UpsertResponse['response']> {
    // Everything is checked before anything changes, as a single store does.
    items.forEach((it, i) => {
      if (it.relative_path.includes(REGION_SEPARATOR)) throw new AppError('INVALID_REQUEST', `items[${i}].relative_path: must not contain the control character U+001F`);
      it.regions?.forEach((v, j) => {
        const problem = vectorProblem(v, this.opts.dimension, this.opts.distance, `items[${i}].regions[${j}]`);
        if (problem) throw new AppError('INVALID_REQUEST', problem);
      });
    });
    // The last item of a path wins, as in the store.
    const last = new Map(items.map((it) => [it.relative_path, it]));
    const add: VectorItem[] = [];
    const drop: string[] = [];
    for (const [path, it] of last) {
      const n = it.regions?.length ?? 0;
      it.regions?.forEach((v, j) => add.push({ relative_path: regionKey(path, j), vec_features: v }));
      for (let j = n; j < (this.counts.get(path) ?? 0); j++) drop.push(regionKey(path, j));
    }
    const plain = items.map(({ regions: _regions, ...rest }) => rest);
    if (add.length > 0 || drop.length > 0) {
      // The image vectors are validated by the store; check them first so a bad one
      // leaves the regions untouched too.
      plain.forEach((it, i) => {
        const problem = vectorProblem(it.vec_features, this.opts.dimension, this.opts.distance, `items[${i}].vec_features`);
        if (problem) throw new AppError('INVALID_REQUEST', problem);
      });
      if (drop.length > 0) await this.regions.delete(drop);
      if (add.length > 0) await this.regions.upsert(add);
      for (const [path, it] of last) {
        const n = it.regions?.length ?? 0;
        if (n > 0) this.counts.set(path, n);
        else this.counts.delete(path);
      }
    }
    return this.images.upsert(plain);
  }

  async delete(paths: string[]): Promise<DeleteResponse['response']> {
    const drop = paths.flatMap((p) => Array.from({ length: this.counts.get(p) ?? 0 }, (_, j) => regionKey(p, j)));
    if (drop.length > 0) {
      await this.regions.delete(drop);
      for (const p of paths) this.counts.delete(p);
    }
    return this.images.delete(paths);
  }

  /** The k best images for one vector: whole-image and region hits merged per image. */
  search(vec: number[], k: number, minScore?: number, ef?: number): Array<Neighbor & { region?: number }> {
    const whole = this.images.search(vec, k, minScore, ef);
    if (this.regions.size === 0) return whole;
    const regional = this.regions.search(vec, k * REGION_FANOUT, minScore, ef).map((n) => {
      const { path, region } = imageOfKey(n.relative_path);
      return { relative_path: path, score: n.score, region };
    });
    return mergeByImage([whole, regional], k).map(({ query: _query, ...n }) => n);
  }

  /** Several vectors (a query's orientations), merged per image. */
  searchBatch(vecs: number[][], k: number, minScore?: number, ef?: number, limit?: number): BatchNeighbor[] {
    return mergeByImage(vecs.map((v) => this.search(v, k, minScore, ef)), limit);
  }

  stats(): StatsResponse['response'] {
    return { ...this.images.stats(), region_vectors: this.regions.size };
  }
}
