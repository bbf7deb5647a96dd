/**
 * The fixed split of the dev set into a calibration half and a held-back half. Originals
 * are sorted by name; even positions calibrate, odd positions are held back. The indexed
 * originals (index/) and the never-indexed ones (named by their null queries) are split
 * apart, so each half has its own real negatives. Every constant is chosen on the
 * calibration half; the held-back half only reports.
 */
import { readdir, readFile } from 'node:fs/promises';
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
