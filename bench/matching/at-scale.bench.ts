/**
 * Verification precision at scale, matcher level (not a test; prints figures). For each dev
 * query, its 10 nearest neighbours by fingerprint are taken from two collections: the 44
 * dev originals alone, and the 44 originals plus DISTRACTOR_N Debian distractors
 * (bench/distractors/build.ts). Every neighbour is then verified by the real matcher (HTTP,
 * port 0, threshold=1 so every score comes back), and the dev-set scoring is applied to the
 * neighbours each collection would have sent: precision, recall and the false-positive rate
 * on never-indexed queries, per half (bench/matching/dev-split.bench.ts), v2 / v3 apart, and
 * recall per transform.
 *
 * Fingerprints: the default encoder's (centre crop, GAP), as bench/encoder/candidates.bench.ts
 * caches them (`encode` with PREPS=index:cc,queries:cc:8,distractors:cc into CACHE; the
 * never-indexed queries into NULL_CACHE, e.g. with BENCH_DIR set to a copy of the dev set
 * whose truth.json names only them). Neighbours: brute force, an image's score is its best
 * cosine over the query's 8 orientations (what the pipeline's merged batch search returns),
 * without the pipeline's re-ranking.
 *
 *   CACHE=/tmp/cand-final NULL_CACHE=/tmp/verify3/nullcache DISTRACTOR_N=10000 RAW=/tmp/scale.json \
 *     node --conditions=source --import tsx bench/matching/at-scale.bench.ts [/work/shared/bench/dev] [/work/distractors]
 *
 * FROM=file re-scores rows kept by RAW=file; NEIGHBOURS=file verifies the neighbour lists of
 * such a file again (no fingerprints needed), e.g. under another matcher config; matcher env (THRESHOLD, OVERLAP_MIN_AGREEMENT, ...)
 * goes to the service config as in calibrate.ts.
 */
import { link, mkdir, mkdtemp, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MatchingConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { listen } from '@doppel/service-kit/testing';
import { buildService } from '@doppel/instance-matching';
import { scoreQueries, transformOf } from '@doppel/cli';
import pLimit from 'p-limit';
import { postJson } from './post-json.http.js';
import { devSplit, V2_TRANSFORMS, type Half } from './dev-split.bench.js';

const dev = process.argv[2] ?? '/work/shared/bench/dev';
const distractorDir = process.argv[3] ?? '/work/distractors';
const cache = process.env.CACHE ?? '/tmp/cand-final';
const nullCache = process.env.NULL_CACHE ?? cache;
const nDist = Number(process.env.DISTRACTOR_N ?? 10000);
const K = 10;
const DIM = 256;
const truth = (JSON.parse(await readFile(path.join(dev, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;

interface Loaded { files: string[]; orient: number; perRow: number; data: Float32Array }
async function load(dir: string, name: string): Promise<Loaded> {
  const meta = JSON.parse(await readFile(path.join(dir, `${name}.json`), 'utf8')) as Omit<Loaded, 'data'>;
  const buf = await readFile(path.join(dir, `${name}.f32`));
  return { ...meta, data: new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4) };
}
/** The whole-image GAP vector (slot 0 of each cached row). */
const vec = (l: Loaded, row: number) => l.data.subarray(row * l.perRow * DIM, row * l.perRow * DIM + DIM);

interface Checked { relative_path: string; score: number; inliers: number; method: string; reason?: string }
interface Row { query: string; truth: string | null; half: Half; transform: string; alone: string[]; scaled: string[]; checked: Checked[] }

let rows: Row[];
let elapsed = 0;
let config = loadConfig(MatchingConfig, { ...process.env, LOG_LEVEL: 'silent' });
if (process.env.FROM) ({ rows, elapsed } = JSON.parse(await readFile(process.env.FROM, 'utf8')) as { rows: Row[]; elapsed: number });
else if (process.env.NEIGHBOURS) {
  // The neighbour lists of an earlier run (RAW=...), verified again under this config.
  rows = (JSON.parse(await readFile(process.env.NEIGHBOURS, 'utf8')) as { rows: Row[] }).rows.map((r) => ({ ...r, checked: [] }));
  elapsed = await verifyAll(rows);
} else {
  const [idx, dis, qs, nulls] = await Promise.all([load(cache, 'index-cc-o1'), load(cache, 'distractors-cc-o1'), load(cache, 'queries-cc-o8'), load(nullCache, 'queries-cc-o8')]);
  if (dis.files.length < nDist) throw new Error(`the cache holds ${dis.files.length} distractors, fewer than DISTRACTOR_N=${nDist}`);
  const images = [...idx.files.map((f, i) => ({ rel: `index/${f}`, v: vec(idx, i) })), ...dis.files.slice(0, nDist).map((f, i) => ({ rel: `distractors/${f}`, v: vec(dis, i) }))];
  const queries = [...qs.files.map((q, i) => ({ q, l: qs, i })), ...nulls.files.filter((q) => truth[q] === null).map((q) => ({ q, l: nulls, i: nulls.files.indexOf(q) }))];
  const missing = Object.keys(truth).filter((q) => !queries.some((x) => x.q === q));
  if (missing.length) throw new Error(`${missing.length} dev queries have no cached fingerprint (e.g. ${missing[0]}): encode them into NULL_CACHE`);
  const t0 = performance.now();
  /** Top k of `pool` by the best cosine over the query's orientations. */
  const topK = (l: Loaded, row: number, pool: typeof images) => {
    const best = new Float32Array(pool.length).fill(-2);
    for (let o = 0; o < l.orient; o++) {
      const q = vec(l, row * l.orient + o);
      for (let j = 0; j < pool.length; j++) {
        const v = pool[j]!.v;
        let s = 0;
        for (let d = 0; d < DIM; d++) s += q[d]! * v[d]!;
        if (s > best[j]!) best[j] = s;
      }
    }
    return [...best.keys()].sort((a, b) => best[b]! - best[a]!).slice(0, K).map((j) => pool[j]!.rel);
  };
  const halfOf = devSplit(idx.files, truth);
  rows = queries.map(({ q, l, i }) => ({
    query: q, truth: truth[q] ? `index/${truth[q]}` : null, half: halfOf(q), transform: transformOf(q),
    alone: topK(l, i, images.slice(0, idx.files.length)), scaled: topK(l, i, images), checked: [],
  }));
  process.stderr.write(`neighbours of ${rows.length} queries among ${images.length} images in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  elapsed = await verifyAll(rows);
}
if (process.env.RAW && !process.env.FROM) await writeFile(process.env.RAW, JSON.stringify({ rows, elapsed, distractors: nDist }));

/** Verifies every row's neighbours through the real service; returns the seconds it took. */
async function verifyAll(rows: Row[]): Promise<number> {
  // One target root holding the dev originals and the distractors that some query reaches
  // (hard links, or copies across file systems): the matcher resolves neighbours under it.
  const root = await mkdtemp(path.join(tmpdir(), 'doppel-scale-'));
  await mkdir(path.join(root, 'index'));
  await mkdir(path.join(root, 'distractors'));
  const needed = new Set(rows.flatMap((r) => [...r.alone, ...r.scaled]));
  for (const rel of needed) {
    const from = rel.startsWith('index/') ? path.join(dev, rel) : path.join(distractorDir, rel.slice('distractors/'.length));
    await link(from, path.join(root, rel)).catch(() => copyFile(from, path.join(root, rel)));
  }
  config = loadConfig(MatchingConfig, { ...process.env, LOG_LEVEL: 'silent', SOURCE_DIR: path.join(dev, 'queries'), TARGET_DIR: root, QUEUE_LIMIT: '100000' });
  const { base, close } = await listen(buildService(config));
  const t1 = performance.now();
  let done = 0;
  await pLimit(4).map(rows, async (r) => {
    const res = await postJson(base, '/match', { candidate: r.query, neighbors: [...new Set([...r.alone, ...r.scaled])], threshold: 1 });
    if (res.status !== 200) throw new Error(`${r.query}: ${res.status} ${res.error}`);
    r.checked = (res.response as { checked: Checked[] }).checked;
    if (++done % 200 === 0) process.stderr.write(`${done}/${rows.length} queries verified, ${((performance.now() - t1) / 1000).toFixed(0)} s\n`);
  });
  const seconds = (performance.now() - t1) / 1000;
  await close();
  await rm(root, { recursive: true, force: true });
  return seconds;
}

const threshold = Number(process.env.AT ?? config.THRESHOLD);
const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
const pairs = rows.reduce((n, r) => n + r.checked.length, 0);
console.log(`${rows.length} queries, ${pairs} pairs verified in ${elapsed.toFixed(0)} s (${((1000 * elapsed) / Math.max(1, pairs)).toFixed(2)} ms/pair wall, NB_WORKERS=${config.NB_WORKERS}); top ${K} among the 44 originals alone, or with ${nDist} distractors; THRESHOLD=${threshold}`);
const evaluate = (subset: Row[], mode: 'alone' | 'scaled') => scoreQueries(subset.map((r) => {
  const sent = new Set(r[mode]);
  return { query: r.query, expected: r.truth, declared: r.checked.filter((c) => sent.has(c.relative_path) && c.score >= threshold).map((c) => c.relative_path) };
}));
console.log('\n  set                  queries | 44 originals: precision  recall  null-FP | + distractors: precision  recall  null-FP  candidate-recall@10  false+ (on distractors)');
for (const half of ['calibration', 'held-back', 'both'] as const) {
  const set = rows.filter((r) => half === 'both' || r.half === half);
  for (const part of ['v2', 'v3', 'all'] as const) {
    const sub = set.filter((r) => part === 'all' || V2_TRANSFORMS.has(r.transform) === (part === 'v2'));
    const a = evaluate(sub, 'alone');
    const s = evaluate(sub, 'scaled');
    const withTruth = sub.filter((r) => r.truth);
    const candRecall = withTruth.filter((r) => r.scaled.includes(r.truth!)).length / Math.max(1, withTruth.length);
    const wrong = sub.flatMap((r) => r.checked.filter((c) => r.scaled.includes(c.relative_path) && c.score >= threshold && c.relative_path !== r.truth));
    console.log(`  ${`${half} ${part}`.padEnd(18)} ${String(sub.length).padStart(8)} | ${pct(a.precision).padStart(22)}  ${pct(a.recall).padStart(6)}  ${pct(a.null_false_positive_rate).padStart(7)} | ${pct(s.precision).padStart(24)}  ${pct(s.recall).padStart(6)}  ${pct(s.null_false_positive_rate).padStart(7)}  ${pct(candRecall).padStart(19)}  ${wrong.length} (${wrong.filter((c) => c.relative_path.startsWith('distractors/')).length})`);
  }
}
console.log('\n  recall per transform, calibration / held-back / both: 44 originals -> with distractors');
for (const tr of [...new Set(rows.map((r) => r.transform))].sort((a, b) => Number(V2_TRANSFORMS.has(b)) - Number(V2_TRANSFORMS.has(a)) || a.localeCompare(b))) {
  const cells = (['calibration', 'held-back', 'both'] as const).map((h) => {
    const sub = rows.filter((r) => r.transform === tr && r.truth && (h === 'both' || r.half === h));
    return `${pct(evaluate(sub, 'alone').recall)} -> ${pct(evaluate(sub, 'scaled').recall)}`.padStart(16);
  });
  console.log(`  ${V2_TRANSFORMS.has(tr) ? 'v2' : 'v3'} ${tr.padEnd(16)} ${cells.join('  ')}`);
}
for (const r of rows) for (const c of r.checked) {
  if (c.score >= threshold && c.relative_path !== r.truth && r.scaled.includes(c.relative_path)) console.log(`  FP [${r.half}] ${r.query} -> ${c.relative_path} score ${c.score} inliers ${c.inliers} ${c.method}`);
}
