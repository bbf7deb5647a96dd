/**
 * Where the inliers of a fit fall, for true matches and for captioned copies of
 * different originals (not a test; prints figures). Calibrates MIN_SPREAD_CELLS.
 *
 *   node --conditions=source --import tsx bench/matching/spread.bench.ts [/work/shared/bench/dev]
 *
 * In-process, with the spread rule off (minSpreadCells 0), so every fit reports its cells:
 * 1. every query with an original against that original;
 * 2. every ordered pair of `border_text` queries of different originals (the added frame
 *    and caption are the same on all of them).
 * Only fits with at least 10 inliers (the SIFT score of THRESHOLD 0.5) are counted. The last
 * line counts the fits that pass MIN_SPREAD_CELLS with every inlier in the outer ring of cells
 * on both images, which the matcher also rejects (sift.verify.ts). Matcher env
 * (DESCRIPTOR_KERNEL, RATIO_TEST, ...) goes to the config; kernel-ratio.bench.ts runs it so.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { MatchingConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import {
  decodeImage, extractAdaptive, extractCandidateFeatures, extractionOf, MIN_SPREAD_CELLS, verifySift, type CandidateFeatures, type Features, verifyOptionsOf,
} from '@doppel/instance-matching';

const dev = process.argv[2] ?? '/work/shared/bench/dev';
const config = loadConfig(MatchingConfig, { ...process.env, LOG_LEVEL: 'silent' });
const truth = (JSON.parse(await readFile(path.join(dev, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
const limits = { maxPixels: config.MAX_PIXELS, maxBytes: config.MAX_IMAGE_BYTES, width: config.WIDTH, height: config.HEIGHT, thumbSize: 32 };
const grey = async (file: string) => (await decodeImage(await readFile(file), limits)).grey;
const opts = { ...verifyOptionsOf(config), minSpreadCells: 0 };
const MIN_INLIERS = 10;

const index = new Map<string, Features>();
for (const f of (await readdir(path.join(dev, 'index'))).filter((f) => !f.startsWith('.')).sort()) {
  index.set(f, extractAdaptive(await grey(path.join(dev, 'index', f)), extractionOf(config)));
}
const queries = Object.keys(truth).sort();
const cand = new Map<string, CandidateFeatures>();
for (const q of queries) cand.set(q, extractCandidateFeatures(await grey(path.join(dev, 'queries', q)), extractionOf(config)));

/** cells -> inlier counts of the fits that reached MIN_INLIERS. */
type Histogram = Map<number, number[]>;
const add = (h: Histogram, cells: number, inliers: number) => h.set(cells, [...(h.get(cells) ?? []), inliers]);

const truePairs: Histogram = new Map();
/** Fits that pass the cell count with every inlier in the outer ring of cells on both images. */
const ringed = { true: 0, wrong: 0, trueMax: 0, wrongMax: 0 };
const ring = (kind: 'true' | 'wrong', v: { cells?: number; onRing?: boolean; inliers: number }) => {
  if ((v.cells ?? 0) < MIN_SPREAD_CELLS || !v.onRing) return;
  ringed[kind]++;
  ringed[`${kind}Max`] = Math.max(ringed[`${kind}Max`], v.inliers);
};
for (const q of queries) {
  const t = truth[q];
  if (!t) continue;
  const v = verifySift(cand.get(q)!, index.get(t)!, opts, MIN_INLIERS);
  if (v.inliers >= MIN_INLIERS) {
    add(truePairs, v.cells ?? 0, v.inliers);
    ring('true', v);
  }
}

const captioned = queries.filter((q) => q.includes('__border_text'));
const asTarget = new Map<string, Features>();
for (const q of captioned) asTarget.set(q, extractAdaptive(await grey(path.join(dev, 'queries', q)), extractionOf(config)));
const wrongPairs: Histogram = new Map();
let tried = 0;
for (const a of captioned) {
  for (const b of captioned) {
    if (a === b || (truth[a] && truth[a] === truth[b])) continue;
    tried++;
    const v = verifySift(cand.get(a)!, asTarget.get(b)!, opts, MIN_INLIERS);
    if (v.inliers >= MIN_INLIERS) {
      add(wrongPairs, v.cells ?? 0, v.inliers);
      ring('wrong', v);
    }
  }
}

const count = (h: Histogram, keep: (cells: number) => boolean) => [...h].filter(([c]) => keep(c)).reduce((s, [, xs]) => s + xs.length, 0);
console.log(`fits with >= ${MIN_INLIERS} inliers: cells (of a 4x4 grid, the more spread image) -> fits (max inliers)`);
console.log('cells  true pairs        captioned copies of different originals');
for (let c = 1; c <= 16; c++) {
  const t = truePairs.get(c) ?? [];
  const w = wrongPairs.get(c) ?? [];
  console.log(`${String(c).padStart(5)}  ${`${t.length} (${Math.max(0, ...t)})`.padEnd(16)}  ${w.length} (${Math.max(0, ...w)})`);
}
const below = (c: number) => c < MIN_SPREAD_CELLS;
console.log(`\nMIN_SPREAD_CELLS=${MIN_SPREAD_CELLS}: rejects ${count(wrongPairs, below)} of ${count(wrongPairs, () => true)} captioned wrong fits (of ${tried} ordered pairs tried) and ${count(truePairs, below)} of ${count(truePairs, () => true)} true fits`);
console.log(`on the ring (every inlier in the outer 12 cells on both images), among the fits MIN_SPREAD_CELLS keeps: ${ringed.wrong} captioned wrong fits (max ${ringed.wrongMax} inliers) and ${ringed.true} true fits (max ${ringed.trueMax} inliers), rejected too`);
