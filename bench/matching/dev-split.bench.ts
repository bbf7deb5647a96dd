/**
 * The fixed split of the dev set into a calibration half and a held-back half. Originals
 * are sorted by name; even positions calibrate, odd positions are held back. The indexed
 * originals (index/) and the never-indexed ones (named by their null queries) are split
 * apart, so each half has its own real negatives. Every constant is chosen on the
 * calibration half; the held-back half only reports.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { originalOfQuery } from '@doppel/cli';

export type Half = 'calibration' | 'held-back';

export function devSplit(index: string[], truth: Record<string, string | null>): (query: string) => Half {
  const stem = (f: string) => f.replace(/\.[^.]+$/, '');
  const indexed = [...index].map(stem).sort();
  const unindexed = [...new Set(Object.keys(truth).filter((q) => truth[q] === null).map(originalOfQuery))].sort();
  const half = new Map<string, Half>();
  for (const list of [indexed, unindexed]) list.forEach((o, i) => half.set(o, i % 2 === 0 ? 'calibration' : 'held-back'));
  return (query) => {
    const t = truth[query];
    const original = t ? stem(t) : originalOfQuery(query);
    const h = half.get(original);
    if (!h) throw new Error(`${query}: original ${original} is in neither half`);
    return h;
  };
}

/** The 12 mild transforms of dev v2; the other 14 were added in v3 (see the dev README). */
export const V2_TRANSFORMS = new Set([
  'jpeg30_scale50', 'crop_center70', 'crop_offset60', 'rot90ccw', 'rot180', 'hflip', 'rot10', 'bright_contrast', 'gray', 'border_text', 'blur3', 'thumb200',
]);

/** The queries a dev-eval run (`dev-eval.bench.ts --json`) did not verify against their original (file names). */
export async function missedQueries(evalJson: string): Promise<Set<string>> {
  const run = JSON.parse(await readFile(evalJson, 'utf8')) as { outcomes: Array<{ query: string; expected: string | null; declared: string[] }> };
  return new Set(run.outcomes.filter((o) => o.expected && !o.declared.includes(o.expected)).map((o) => path.basename(o.query)));
}

/**
 * About `sample` distractor file names, every n-th in pixel-hash order (the builder names a
 * file `package__hash__name`), so a sample does not follow one package's naming.
 */
export async function sampledDistractors(dir: string, sample: number): Promise<string[]> {
  const byHash = (f: string) => f.split('__')[1] ?? f;
  const all = (await readdir(dir)).sort((a, b) => (byHash(a) < byHash(b) ? -1 : byHash(a) > byHash(b) ? 1 : 0));
  const step = Math.max(1, Math.floor(all.length / sample));
  return all.filter((_, i) => i % step === 0);
}

/** The dev set's truth (query -> original or null), its index files sorted, and each query's half. */
export async function devSet(dev: string): Promise<{ truth: Record<string, string | null>; index: string[]; halfOf: (query: string) => Half }> {
  const truth = (JSON.parse(await readFile(path.join(dev, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
  const index = (await readdir(path.join(dev, 'index'))).sort();
  return { truth, index, halfOf: devSplit(index, truth) };
}

/** Rows kept by earlier runs of a bench (`FROM_PAIRS=a.json,b.json`), merged. */
export async function keptRows<T>(files: string): Promise<T[]> {
  return (await Promise.all(files.split(',').map(async (f) => JSON.parse(await readFile(f, 'utf8')) as T[]))).flat();
}

export interface PairSweep<D, R> {
  dev: string;
  distractorDir: string;
  /** Distractors read (sampledDistractors); `keep` says which of them become targets. */
  sample: number;
  describe: (file: string) => Promise<D>;
  keep?: (d: D) => boolean;
  /** Only this query's pairs are measured (a query with nothing to prove is skipped). */
  queryWanted?: (q: D) => boolean;
  /** A pair's row, or undefined when the pair is not one the bench measures. */
  row: (pair: { query: string; target: string; distractor: boolean; q: D; t: D }) => R | undefined;
}

/**
 * Every dev query (`SHARD=i/n`: every n-th from the i-th) against every indexed original
 * and sampled distractor, described once each: the rows `row` makes, saved to `CACHE` when set.
 */
export async function sweepDevPairs<D, R>(s: PairSweep<D, R>): Promise<R[]> {
  const { truth, index } = await devSet(s.dev);
  const t0 = performance.now();
  const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(0)} s`;
  const targets = new Map<string, D>();
  for (const f of index) targets.set(`index/${f}`, await s.describe(path.join(s.dev, 'index', f)));
  const sample = await sampledDistractors(s.distractorDir, s.sample);
  for (const f of sample) {
    try {
      const d = await s.describe(path.join(s.distractorDir, f));
      if (!s.keep || s.keep(d)) targets.set(`distractors/${f}`, d);
    } catch { /* undecodable: not a target */ }
  }
  process.stderr.write(`${targets.size - index.length} distractors of ${sample.length} read kept as targets, ${elapsed()}\n`);
  const rows: R[] = [];
  const [shard, shards] = (process.env.SHARD ?? '0/1').split('/').map(Number) as [number, number];
  const queries = Object.keys(truth).sort().filter((_, i) => i % shards === shard);
  for (const [qi, query] of queries.entries()) {
    const q = await s.describe(path.join(s.dev, 'queries', query));
    if (!s.queryWanted || s.queryWanted(q)) {
      for (const [target, t] of targets) {
        const r = s.row({ query, target, distractor: target.startsWith('distractors/'), q, t });
        if (r !== undefined) rows.push(r);
      }
    }
    if (qi % 200 === 0) process.stderr.write(`${qi}/${queries.length} queries, ${rows.length} rows, ${elapsed()}\n`);
  }
  if (process.env.CACHE) await writeFile(process.env.CACHE, JSON.stringify(rows));
  return rows;
}
