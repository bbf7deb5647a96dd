import type { BatchNeighbor } from '@doppel/schemas';

/** Nearest images an image's hubness is the mean score of (bench/encoder/rerank.bench.ts uses the same). */
export const HUBNESS_K = 10;

/**
 * Orders search neighbours by score - weight x hubness, best first (ties by path). In a
 * large collection the neighbours that push a hard copy's original out of the top k are
 * mostly hubs: flat, plain or generic pictures close to much of the collection and so to
 * any query. Discounting an image by how close it sits to its own nearest images is the
 * usual hubness correction (cross-domain similarity local scaling without the query term,
 * which is the same for every candidate of one query). A neighbour without a hubness (it
 * was deleted after the search found it) counts 1, the most: it goes last.
 */
export function rerankByHubness<T extends Pick<BatchNeighbor, 'relative_path' | 'score' | 'hubness'>>(neighbors: T[], weight: number): T[] {
  if (weight === 0) return neighbors;
  const key = (n: T) => n.score - weight * (n.hubness ?? 1);
  return [...neighbors].sort((a, b) => key(b) - key(a) || (a.relative_path < b.relative_path ? -1 : a.relative_path > b.relative_path ? 1 : 0));
}
