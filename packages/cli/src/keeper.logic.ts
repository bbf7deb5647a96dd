import type { ImageFacts } from './image-facts.fs.js';
import { overlap, type Quad } from './region.geometry.js';
import type { ScanGroup, ScanPair } from './scan-groups.logic.js';

/** Key of an (outer, inner) containment link whose margin is only decoration. */
export const framedKey = (outer: string, inner: string): string => `${outer}\u0000${inner}`;

/**
 * Criteria of the keeper rule, tried in order; each keeps the members tied for best and
 * the next one breaks the tie:
 * - `contains`: the member whose picture holds the others' (a crop lies inside its original;
 *   a captioned or framed copy holds its original only with plain bars, so the original wins);
 * - `pixels`: the most pixels;
 * - `quality`: the least compression (lossless formats first, then JPEG quality estimated
 *   from the quantisation tables);
 * - `format`: the earliest in the format preference;
 * - `oldest` / `newest`: modified time;
 * - `bytes`: the largest file (what simpler tools do; a re-encoded copy can be larger).
 */
export const KEEP_CRITERIA = ['contains', 'pixels', 'quality', 'format', 'oldest', 'newest', 'bytes'] as const;
export type KeepCriterion = (typeof KEEP_CRITERIA)[number];
export const DEFAULT_KEEP_RULE: KeepCriterion[] = ['contains', 'pixels', 'quality', 'format', 'oldest'];
// Camera and export formats first; GIF last (palette: it has lost colour).
export const DEFAULT_FORMAT_PREFERENCE = ['jpeg', 'heif', 'png', 'tiff', 'webp', 'avif', 'gif'];

export interface KeepRule {
  criteria: KeepCriterion[];
  formats: string[];
}
export const DEFAULT_RULE: KeepRule = { criteria: DEFAULT_KEEP_RULE, formats: DEFAULT_FORMAT_PREFERENCE };

export function parseKeepRule(criteria: string | undefined, formats: string | undefined): KeepRule {
  const list = (s: string) => s.split(',').map((x) => x.trim().toLowerCase()).filter(Boolean);
  const c = criteria ? list(criteria) : DEFAULT_KEEP_RULE;
  for (const x of c) {
    if (!(KEEP_CRITERIA as readonly string[]).includes(x)) throw new Error(`--keep: unknown criterion ${JSON.stringify(x)} (one of ${KEEP_CRITERIA.join(', ')})`);
  }
  const f = formats ? list(formats).map((x) => (x === 'jpg' ? 'jpeg' : x)) : DEFAULT_FORMAT_PREFERENCE;
  return { criteria: c as KeepCriterion[], formats: f };
}

// RANSAC corners are good to a few percent of the side: a member "holds all" of another
// when at least 90% of its area maps inside, and "holds more" when at most 85% of its
// own area is covered by the other (so a 70% crop is clearly inside its original,
// while two full-frame copies never contain each other).
const HOLDS_ALL = 0.9;
const HOLDS_MORE = 0.85;

/** Does the link say that `a`'s picture contains `b`'s (and more)? */
export function linkSaysContains(p: Pick<ScanPair, 'query' | 'match' | 'region'>, a: string, b: string): boolean {
  if (!p.region) return false;
  const o = overlap(p.region as Quad);
  // region = the query's corners in the match.
  if (p.query === b && p.match === a) return o.queryInside >= HOLDS_ALL && o.matchCovered <= HOLDS_MORE;
  if (p.query === a && p.match === b) return o.matchCovered >= HOLDS_ALL && o.queryInside <= HOLDS_MORE;
  return false;
}

/** Does the link say both pictures show the same frame (two full-frame copies)? */
export function linkSaysSameFrame(p: Pick<ScanPair, 'region'>): boolean {
  if (!p.region) return false;
  const o = overlap(p.region as Quad);
  return o.queryInside >= HOLDS_ALL && o.matchCovered >= HOLDS_ALL;
}

/**
 * For each member, the other members whose content it holds. Read from the verified links
 * and closed over them: containment is transitive, and two full-frame copies hold what
 * either holds (a crop that happened to be verified against the meme copy lies inside the
 * original just as well), so the criterion does not depend on which link the grouping kept.
 * A link in `framed` (see framedLinks) turns round: the containing copy only adds bars or a
 * frame, so the contained picture is the content and holds the framed copy.
 */
export function containment(group: Pick<ScanGroup, 'members' | 'pairs'>, framed: ReadonlySet<string> = new Set()): { holds: Map<string, Set<string>>; framedBy: Map<string, Set<string>> } {
  const edges = new Map(group.members.map((m) => [m, new Set<string>()]));
  const framedDirect = new Map(group.members.map((m) => [m, new Set<string>()]));
  // A copy framed around another holds nothing by itself: whatever lies inside its picture
  // lies inside the picture it frames (one noisy link from it would otherwise, closed over,
  // give it everything).
  const decorated = new Set(group.members.filter((m) => group.members.some((n) => framed.has(framedKey(m, n)))));
  const add = (outer: string, inner: string) => {
    if (framed.has(framedKey(outer, inner))) {
      edges.get(inner)?.add(outer);
      framedDirect.get(inner)?.add(outer);
    } else if (!decorated.has(outer)) {
      edges.get(outer)?.add(inner);
    }
  };
  for (const p of group.pairs) {
    if (linkSaysContains(p, p.match, p.query)) add(p.match, p.query);
    if (linkSaysContains(p, p.query, p.match)) add(p.query, p.match);
    if (linkSaysSameFrame(p)) {
      if (!decorated.has(p.query)) edges.get(p.query)?.add(p.match);
      if (!decorated.has(p.match)) edges.get(p.match)?.add(p.query);
    }
  }
  const holds = new Map<string, Set<string>>();
  const framedBy = new Map<string, Set<string>>();
  for (const m of group.members) {
    const seen = new Set<string>([m]);
    const todo = [m];
    while (todo.length) for (const n of edges.get(todo.pop()!) ?? []) if (!seen.has(n)) { seen.add(n); todo.push(n); }
    seen.delete(m);
    holds.set(m, seen);
    // The framed copies it holds: framed around it or around a picture it holds.
    framedBy.set(m, new Set([...seen].filter((x) => [m, ...seen].some((y) => framedDirect.get(y)?.has(x)))));
  }
  return { holds, framedBy };
}

export interface KeeperChoice {
  keeper: string;
  /** Why, in words: the criteria that decided, in order. */
  reason: string;
}

const LOSSLESS = new Set(['png', 'tiff', 'gif']);
/** Higher = less compressed: lossless 101, JPEG its estimated quality, others unknown. */
const compressionScore = (f: ImageFacts): number | undefined => (LOSSLESS.has(f.format) ? 101 : f.jpeg_quality);

const fmtPixels = (f: ImageFacts) => `${f.width}x${f.height}`;
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * The suggested keeper of a group: the criteria of `rule` in order, each keeping the
 * members tied for best (pixels within 1%, JPEG quality within 2 points, mtimes within
 * 2 s: copies of one file are not told apart by rounding).
 */
export function chooseKeeper(group: Pick<ScanGroup, 'members' | 'pairs'>, facts: Map<string, ImageFacts>, rule: KeepRule = DEFAULT_RULE, framed: ReadonlySet<string> = new Set()): KeeperChoice {
  const { holds: contains, framedBy } = containment(group, framed);
  let pool = [...group.members].sort();
  const reasons: string[] = [];
  const others = group.members.length - 1;
  for (const c of rule.criteria) {
    if (pool.length <= 1) break;
    const known = pool.filter((m) => facts.has(m));
    const f = (m: string) => facts.get(m)!;
    let value: (m: string) => number | undefined;
    let tolerance: (best: number) => number = () => 0;
    let say: (m: string) => string;
    switch (c) {
      case 'contains':
        // Strictly: full-frame copies hold each other and count for nobody.
        value = (m) => [...(contains.get(m) ?? [])].filter((x) => !contains.get(x)?.has(m)).length;
        say = (m) => {
          const name = (list: string[]) => (list.length === others ? (others === 1 ? 'the other copy' : `all ${others} other copies`) : list.length <= 2 ? list.join(' and ') : `${list.length} of the other ${others}`);
          const framedOnes = [...framedBy.get(m)!].sort();
          // Full-frame copies hold it back and tie: the next criterion speaks for them.
          const crops = [...contains.get(m)!].filter((x) => !framedBy.get(m)!.has(x) && !contains.get(x)?.has(m)).sort();
          const parts: string[] = [];
          if (crops.length) parts.push(`its picture contains ${name(crops)} (${crops.length === 1 ? 'a crop' : 'crops'} of it)`);
          if (framedOnes.length) parts.push(`${name(framedOnes)} ${framedOnes.length === 1 ? 'is' : 'are'} this picture plus plain bars or a frame`);
          return parts.join('; ');
        };
        break;
      case 'pixels':
        value = (m) => (facts.has(m) ? f(m).width * f(m).height : undefined);
        tolerance = (best) => best * 0.01;
        say = (m) => `most pixels (${fmtPixels(f(m))})`;
        break;
      case 'quality':
        value = (m) => (facts.has(m) ? compressionScore(f(m)) : undefined);
        tolerance = () => 2;
        say = (m) => (LOSSLESS.has(f(m).format) ? `least compressed (lossless ${f(m).format})` : `least compressed (JPEG quality ~${f(m).jpeg_quality})`);
        break;
      case 'format':
        value = (m) => {
          if (!facts.has(m)) return undefined;
          const i = rule.formats.indexOf(f(m).format);
          return i < 0 ? -rule.formats.length : -i;
        };
        say = (m) => `preferred format (${f(m).format})`;
        break;
      case 'oldest':
        value = (m) => (facts.has(m) ? -f(m).mtime_ms : undefined);
        tolerance = () => 2000;
        say = (m) => `oldest (modified ${day(f(m).mtime_ms)})`;
        break;
      case 'newest':
        value = (m) => (facts.has(m) ? f(m).mtime_ms : undefined);
        tolerance = () => 2000;
        say = (m) => `newest (modified ${day(f(m).mtime_ms)})`;
        break;
      case 'bytes':
        value = (m) => (facts.has(m) ? f(m).bytes : undefined);
        say = (m) => `largest file (${f(m).bytes} bytes)`;
        break;
    }
    const scored = (c === 'contains' ? pool : known).map((m) => ({ m, v: value(m) })).filter((x): x is { m: string; v: number } => x.v !== undefined);
    // A criterion nobody has a value for (JPEG quality in a group of WebPs) decides nothing.
    if (scored.length === 0) continue;
    const best = Math.max(...scored.map((x) => x.v));
    const next = scored.filter((x) => x.v >= best - tolerance(best)).map((x) => x.m);
    if (next.length < pool.length) {
      reasons.push(say(next[0]!));
      pool = next;
    }
  }
  const keeper = pool[0]!;
  if (pool.length > 1) reasons.push('first by path (the rule found no difference)');
  return { keeper, reason: reasons.join('; ') || 'only member' };
}
