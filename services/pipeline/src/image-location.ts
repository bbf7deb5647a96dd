/**
 * Ids added through POST /images may keep their bytes somewhere other than at a path equal
 * to the id (a kept blob, or a file under another name). contextual-search stores that
 * path in the id's metadata under this key, so a neighbour tells where the matcher must
 * read it without another lookup. Its presence also marks the entry as managed by the
 * API (folder indexing neither re-encodes nor prunes it).
 */
export const SOURCE_PATH_KEY = 'source_path';

export interface NeighbourLike {
  relative_path: string;
  metadata?: Record<string, unknown> | undefined;
}

export const sourcePathOf = (n: NeighbourLike): string => {
  const p = n.metadata?.[SOURCE_PATH_KEY];
  return typeof p === 'string' ? p : n.relative_path;
};

export const isApiManaged = (metadata: Record<string, unknown> | undefined): boolean =>
  typeof metadata?.[SOURCE_PATH_KEY] === 'string';

/**
 * The paths the matcher must read for a list of candidate ids, once each (two ids can
 * share one kept blob), and the way back from a verified path to its ids.
 */
export function matcherTargets(ids: string[], seen: NeighbourLike[]): { neighbors: string[]; idsOf: (path: string) => string[] } {
  const where = new Map(seen.map((n) => [n.relative_path, sourcePathOf(n)]));
  const back = new Map<string, string[]>();
  for (const id of ids) {
    const p = where.get(id) ?? id;
    back.set(p, [...(back.get(p) ?? []), id]);
  }
  return { neighbors: [...back.keys()], idsOf: (p) => back.get(p) ?? [p] };
}
