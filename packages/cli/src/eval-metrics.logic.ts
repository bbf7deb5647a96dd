/**
 * The one place where duplicate search is scored: `doppel eval`, bench/pipeline/dev-set,
 * bench/matching/calibrate and the rescoring scripts all use these functions.
 */
export interface QueryOutcome {
  query: string;
  /** The index file it was made from, or null when its original is not indexed. */
  expected: string | null;
  declared: string[];
  /** Search candidates, best first (for recall@k). */
  candidates?: string[];
  /** Verification score of every verified candidate, kept or rejected (for the threshold curve). */
  verified?: Array<{ path: string; score: number }>;
  /** The pipeline's stage times of this query and the whole round trip, ms (so runs over parts of a query set can be merged). */
  timings_ms?: { encode: number; search: number; match: number; total: number };
}

const stem = (file: string) => file.replace(/^.*\//, '').replace(/\.[^.]+$/, '');
// Original names may themselves contain `__` (`..._by__herobrine7ga`): the transform is
// the last `__` segment of a query name, the original everything before it.
export const transformOf = (q: string) => (stem(q).includes('__') ? stem(q).split('__').at(-1)! : '(none)');
export const originalOfQuery = (q: string) => stem(q).slice(0, Math.max(0, stem(q).lastIndexOf('__')));

/**
 * Precision counts declarations: every declared file other than the true original
 * (and every file declared for a null query) is a false positive.
 */
export function scoreQueries(outcomes: QueryOutcome[]) {
  let declared = 0;
  let correct = 0;
  let positives = 0;
  let found = 0;
  let nulls = 0;
  let nullsWithDeclaration = 0;
  let queriesWithWrong = 0;
  const perTransform = new Map<string, { n: number; found: number }>();
  for (const o of outcomes) {
    declared += o.declared.length;
    const ok = o.expected !== null && o.declared.includes(o.expected);
    if (ok) correct += 1;
    if (o.declared.some((d) => d !== o.expected)) queriesWithWrong += 1;
    if (o.expected === null) {
      nulls += 1;
      if (o.declared.length > 0) nullsWithDeclaration += 1;
    } else {
      positives += 1;
      if (ok) found += 1;
      const t = perTransform.get(transformOf(o.query)) ?? { n: 0, found: 0 };
      t.n += 1;
      if (ok) t.found += 1;
      perTransform.set(transformOf(o.query), t);
    }
  }
  const precision = declared === 0 ? 1 : correct / declared;
  const recall = positives === 0 ? 0 : found / positives;
  return {
    precision,
    f1: precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall),
    recall,
    null_false_positive_rate: nulls === 0 ? 0 : nullsWithDeclaration / nulls,
    declared, correct, wrong: declared - correct, queries_with_a_wrong_declaration: queriesWithWrong,
    positives, found, nulls, nulls_with_declaration: nullsWithDeclaration,
    recall_per_transform: Object.fromEntries([...perTransform].sort().map(([k, v]) => [k, v.n ? v.found / v.n : 0])),
  };
}

/**
 * Scan quality over pairs of files: two files are true duplicates when they come from
 * the same original (a query and its index file, or two copies of one original). The
 * scan's predicted pairs are its verified links, and, more strictly, every pair inside a group.
 */
export function scorePairs(groups: Array<{ members: string[]; pairs: Array<{ query: string; match: string }> }>, truth: Record<string, string | null>) {
  const originalOfFile = (f: string) => {
    const name = f.replace(/^.*\//, '');
    if (!f.startsWith('queries/')) return stem(name);
    const t = truth[name];
    return t ? stem(t) : originalOfQuery(name);
  };
  const key = (a: string, b: string) => (a < b ? `${a}|${b}` : `${b}|${a}`);
  const files = new Set<string>();
  for (const name of Object.keys(truth)) files.add(`queries/${name}`);
  for (const t of Object.values(truth)) if (t) files.add(`index/${t}`);
  const byOriginal = new Map<string, string[]>();
  for (const f of files) byOriginal.set(originalOfFile(f), [...(byOriginal.get(originalOfFile(f)) ?? []), f]);
  let truePairs = 0;
  for (const fs of byOriginal.values()) truePairs += (fs.length * (fs.length - 1)) / 2;
  const evaluate = (pairs: Set<string>) => {
    let tp = 0;
    for (const p of pairs) {
      const [a, b] = p.split('|') as [string, string];
      if (originalOfFile(a) === originalOfFile(b)) tp += 1;
    }
    return { predicted: pairs.size, correct: tp, precision: pairs.size ? tp / pairs.size : 1, recall: truePairs ? tp / truePairs : 0 };
  };
  const links = new Set<string>();
  const grouped = new Set<string>();
  for (const g of groups) {
    for (const p of g.pairs) links.add(key(p.query, p.match));
    for (let i = 0; i < g.members.length; i++) for (let j = i + 1; j < g.members.length; j++) grouped.add(key(g.members[i]!, g.members[j]!));
  }
  const pure = groups.filter((g) => new Set(g.members.map(originalOfFile)).size === 1).length;
  return { true_pairs: truePairs, links: evaluate(links), group_pairs: evaluate(grouped), pure_groups: pure };
}

export type QueryScores = ReturnType<typeof scoreQueries>;

/** Share of the queries with an indexed original whose original is among the first k candidates. */
export function recallAtK(outcomes: QueryOutcome[], k: number): number {
  const pos = outcomes.filter((o) => o.expected !== null && o.candidates);
  return pos.length ? pos.filter((o) => o.candidates!.slice(0, k).includes(o.expected!)).length / pos.length : 0;
}

/**
 * `name=t1,t2` flags into named transform groups. A transform may sit in several groups;
 * an unknown name is only known once the queries are read, so it is checked by the caller.
 */
export function parseGroups(specs: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const spec of specs) {
    const m = /^([\w.-]+)=(.+)$/.exec(spec.trim());
    if (!m) throw new Error(`--groups ${JSON.stringify(spec)}: expected name=transform1,transform2,...`);
    const list = m[2]!.split(',').map((t) => t.trim()).filter(Boolean);
    if (!list.length) throw new Error(`--groups ${m[1]}: no transform named`);
    out[m[1]!] = list;
  }
  return out;
}

/** Scores per transform and per named group of transforms (null queries count in their transform too). */
export function scoreByTransform(outcomes: QueryOutcome[], groups: Record<string, string[]> = {}) {
  const by = new Map<string, QueryOutcome[]>();
  for (const o of outcomes) by.set(transformOf(o.query), [...(by.get(transformOf(o.query)) ?? []), o]);
  const perTransform = Object.fromEntries([...by].sort(([a], [b]) => a.localeCompare(b)).map(([t, os]) => [t, summarise(os)]));
  const perGroup = Object.fromEntries(Object.entries(groups).map(([name, ts]) => [name, summarise(outcomes.filter((o) => ts.includes(transformOf(o.query))))]));
  return { per_transform: perTransform, per_group: perGroup };
}

/** The figures of one set of queries, without the per-transform breakdown. */
export function summarise(os: QueryOutcome[]) {
  const s = scoreQueries(os);
  return {
    queries: os.length, positives: s.positives, nulls: s.nulls, precision: s.precision, recall: s.recall, f1: s.f1,
    null_false_positive_rate: s.null_false_positive_rate, recall_at_1: recallAtK(os, 1), recall_at_10: recallAtK(os, 10),
  };
}

/**
 * Precision and recall if the match threshold were t, from one run: the matcher declares a
 * candidate when its verification score is >= the threshold, so re-deciding every
 * candidate's recorded score reproduces what another threshold would have given.
 */
export function prCurve(outcomes: QueryOutcome[], thresholds: number[] = Array.from({ length: 41 }, (_, i) => i / 40)) {
  return thresholds.map((t) => {
    const s = scoreQueries(outcomes.map((o) => ({ query: o.query, expected: o.expected, declared: (o.verified ?? []).filter((v) => v.score >= t).map((v) => v.path) })));
    return { threshold: t, precision: s.precision, recall: s.recall, null_false_positive_rate: s.null_false_positive_rate, declared: s.declared };
  });
}

/** Nearest-rank quantile. */
export const quantile = (xs: number[], q: number): number => {
  if (!xs.length) return 0;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
};
