import type { BatchNeighbor, Neighbor } from '@doppel/schemas';

/**
 * Merges the neighbour lists of several query vectors into one list keyed by image: each
 * path once, with its best score and the index of the vector that gave it (the first on a
 * tie), best first (ties by path, so the order is deterministic). Shared by every search
 * that asks more than one vector, whatever backend answered the single searches.
 */
export function mergeByImage(lists: Neighbor[][], limit = Infinity): BatchNeighbor[] {
  const best = new Map<string, BatchNeighbor>();
  lists.forEach((neighbors, query) => {
    for (const n of neighbors) {
      const prev = best.get(n.relative_path);
      if (!prev || n.score > prev.score) best.set(n.relative_path, { ...n, query });
    }
  });
  return [...best.values()]
    .sort((a, b) => b.score - a.score || (a.relative_path < b.relative_path ? -1 : a.relative_path > b.relative_path ? 1 : 0))
    .slice(0, limit);
}
