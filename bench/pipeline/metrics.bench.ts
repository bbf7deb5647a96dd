/** Scoring of the dev set, kept apart from the runner so it can be read (and reused) alone. */
export interface QueryOutcome {
  query: string;
  /** The index file it was made from, or null when its original is not indexed. */
  expected: string | null;
  declared: string[];
}

const stem = (file: string) => file.replace(/^.*\//, '').replace(/\.[^.]+$/, '');
// Original names may themselves contain `__` (`..._by__herobrine7ga`): the transform is
// the last `__` segment of a query name, the original everything before it.
export const transformOf = (q: string) => stem(q).split('__').at(-1) ?? 'unknown';
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
  return {
    precision: declared === 0 ? 1 : correct / declared,
    recall: positives === 0 ? 0 : found / positives,
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
