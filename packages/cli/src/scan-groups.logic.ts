import type { ConfirmedDuplicate } from '@doppel/schemas';

/** One verified edge: `match` was declared a duplicate of the query `query`. */
export interface ScanPair {
  query: string;
  match: string;
  score: number;
  inliers: number;
  method?: ConfirmedDuplicate['method'];
  /** The query's corners in `match`'s normalised coordinates. */
  region?: ConfirmedDuplicate['region'];
}

// Chosen on the dev set (bench/pipeline/rescore-scan.bench.ts): with 'all', 31 false links out of
// 3,639 chained unrelated groups (pair precision 21 %); this keeps 93 % pair recall at 78 % precision.
export const DEFAULT_GROUPING: GroupingPolicy = 'reciprocal-attach';

export interface ScanGroup {
  id: number;
  /** The member with the most verified links: the others are shown against it. */
  anchor: string;
  members: string[];
  pairs: ScanPair[];
}

/**
 * Which verified links may join two groups:
 * - `all`: every link (one false link merges two unrelated groups);
 * - `reciprocal`: only pairs verified in both directions (A found B and B found A);
 * - `sift-or-reciprocal`: SIFT links always, dense (low-texture) links only when reciprocal;
 * - `reciprocal-attach`: reciprocal links first, then a one-way link (best score first)
 *   only when it attaches a file still alone, never when it would merge two groups.
 */
export const GROUPING_POLICIES = ['all', 'reciprocal', 'sift-or-reciprocal', 'reciprocal-attach'] as const;
export type GroupingPolicy = (typeof GROUPING_POLICIES)[number];

function joiningLinks(pairs: ScanPair[], policy: GroupingPolicy): ScanPair[] {
  if (policy === 'all') return pairs;
  const directed = new Set(pairs.map((p) => `${p.query}\n${p.match}`));
  const reciprocal = (p: ScanPair) => directed.has(`${p.match}\n${p.query}`);
  const kept = pairs.filter((p) => reciprocal(p) || (policy === 'sift-or-reciprocal' && p.method !== 'dense'));
  if (policy !== 'reciprocal-attach') return kept;
  const grouped = new Set(kept.flatMap((p) => [p.query, p.match]));
  for (const p of pairs.filter((x) => !reciprocal(x)).sort((a, b) => b.score - a.score)) {
    if (grouped.has(p.query) && grouped.has(p.match)) continue;
    kept.push(p);
    grouped.add(p.query).add(p.match);
  }
  return kept;
}

/**
 * Connected components of the "verified duplicate" graph. Each query sees its
 * neighbours, so A~B and B~C put A, B and C in one group even if A and C were never
 * compared directly (a crop and a rotation of the same original).
 */
export function groupPairs(allPairs: ScanPair[], policy: GroupingPolicy = DEFAULT_GROUPING): ScanGroup[] {
  const pairs = joiningLinks(allPairs, policy);
  const parent = new Map<string, string>();
  const find = (x: string): string => {
    let r = x;
    while (parent.get(r) !== r) r = parent.get(r) ?? r;
    parent.set(x, r);
    return r;
  };
  const add = (x: string) => { if (!parent.has(x)) parent.set(x, x); };
  for (const p of pairs) {
    add(p.query);
    add(p.match);
    const a = find(p.query);
    const b = find(p.match);
    if (a !== b) parent.set(a < b ? b : a, a < b ? a : b);
  }
  const byRoot = new Map<string, { members: Set<string>; pairs: ScanPair[] }>();
  for (const p of pairs) {
    const root = find(p.query);
    const g = byRoot.get(root) ?? { members: new Set<string>(), pairs: [] };
    g.members.add(p.query).add(p.match);
    g.pairs.push(p);
    byRoot.set(root, g);
  }
  const groups = [...byRoot.values()].map((g) => {
    const degree = new Map<string, number>();
    for (const p of g.pairs) for (const m of [p.query, p.match]) degree.set(m, (degree.get(m) ?? 0) + 1);
    const members = [...g.members].sort();
    const anchor = members.reduce((best, m) => ((degree.get(m) ?? 0) > (degree.get(best) ?? 0) ? m : best), members[0]!);
    return { anchor, members: [anchor, ...members.filter((m) => m !== anchor)], pairs: g.pairs };
  });
  groups.sort((a, b) => b.members.length - a.members.length || a.anchor.localeCompare(b.anchor));
  return groups.map((g, i) => ({ id: i + 1, ...g }));
}

/** The strongest verified link between two members, in either direction. */
export function linkBetween(group: ScanGroup, a: string, b: string): ScanPair | undefined {
  let best: ScanPair | undefined;
  for (const p of group.pairs) {
    if ((p.query === a && p.match === b) || (p.query === b && p.match === a)) {
      if (!best || p.score > best.score) best = p;
    }
  }
  return best;
}
