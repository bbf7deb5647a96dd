/**
 * Threshold calibration on the dev benchmark (not a test; prints figures).
 *
 *   node --conditions=source --import tsx bench/matching/calibrate.ts [/work/shared/bench/dev]
 *
 * Every query is verified by the real service (HTTP, port 0) against ALL index images
 * (its true original and 43 hard negatives), with threshold=1 so every score comes back.
 * Env overrides (WIDTH, HEIGHT, MAX_KEYPOINTS, RANSAC_MODEL, RATIO_TEST, ...) are passed to
 * the service config, so alternatives can be measured with the same command.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { MatchingConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { listen } from '@doppel/service-kit/testing';
import { postJson } from './post-json.http.js';
import { buildService, extractFeatures } from '@doppel/instance-matching';
import { originalOfQuery, scoreQueries, transformOf } from '../pipeline/metrics.bench.js';

const dev = process.argv[2] ?? '/work/shared/bench/dev';
const config = loadConfig(MatchingConfig, {
  ...process.env,
  LOG_LEVEL: 'silent',
  SOURCE_DIR: path.join(dev, 'queries'),
  TARGET_DIR: path.join(dev, 'index'),
  QUEUE_LIMIT: '100000',
});
const truth = (JSON.parse(await readFile(path.join(dev, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
const index = (await readdir(path.join(dev, 'index'))).filter((f) => !f.startsWith('.')).sort();
const queries = Object.keys(truth).sort();
const step = Number(process.env.STEP ?? 1);

const { base, close } = await listen(buildService(config));

interface Checked { relative_path: string; score: number; inliers: number; method: 'sift' | 'dense' }
interface Row { query: string; original: string; transform: string; truth: string | null; checked: Checked[] }

const t0 = performance.now();
const rows: Row[] = [];
let next = 0;
const todo = queries.filter((_, i) => i % step === 0);
await Promise.all(
  Array.from({ length: 4 }, async () => {
    while (next < todo.length) {
      const q = todo[next++]!;
      const r = await postJson(base, '/match', { candidate: q, neighbors: index, threshold: 1 });
      if (r.status !== 200) throw new Error(`${q}: ${r.status} ${r.error}`);
      rows.push({ query: q, original: originalOfQuery(q), transform: transformOf(q), truth: truth[q] ?? null, checked: (r.response as { checked: Checked[] }).checked });
    }
  }),
);
const elapsed = (performance.now() - t0) / 1000;
await close();

// Low-texture originals: under 40 keypoints at 512 px, measured on each group's grey copy.
const lowTexture = new Set<string>();
for (const original of new Set(rows.map((r) => r.original))) {
  const q = rows.find((r) => r.original === original && r.transform === 'gray') ?? rows.find((r) => r.original === original)!;
  const { data, info } = await sharp(path.join(dev, 'queries', q.query)).greyscale().resize({ width: 512, height: 512, fit: 'inside', withoutEnlargement: true }).raw().toBuffer({ resolveWithObject: true });
  const f = extractFeatures({ width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) }, 5000);
  if (f.count < 40) lowTexture.add(original);
}

/** The dev-set scoring of the pipeline bench, with every score >= t declared a duplicate. */
function evaluate(t: number, subset: Row[] = rows) {
  const s = scoreQueries(subset.map((r) => ({
    query: r.query,
    expected: r.truth,
    declared: r.checked.filter((c) => c.score >= t).map((c) => c.relative_path),
  })));
  return { t, declared: s.declared, precision: s.precision, recall: s.recall, fp: s.wrong, nullFpRate: s.null_false_positive_rate };
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
console.log(`config: WIDTH=${config.WIDTH} HEIGHT=${config.HEIGHT} MAX_KEYPOINTS=${config.MAX_KEYPOINTS} RANSAC_MODEL=${config.RANSAC_MODEL} RATIO_TEST=${config.RATIO_TEST} RANSAC_REPROJ_PX=${config.RANSAC_REPROJ_PX} DENSE_MIN_KEYPOINTS=${config.DENSE_MIN_KEYPOINTS} DENSE_MIN_CORRELATION=${config.DENSE_MIN_CORRELATION} THRESHOLD=${config.THRESHOLD} NB_WORKERS=${config.NB_WORKERS}`);
console.log(`${rows.length} queries x ${index.length} index images = ${rows.length * index.length} pairs in ${elapsed.toFixed(1)} s (${((1000 * elapsed) / (rows.length * index.length)).toFixed(2)} ms/pair wall)`);
console.log(`low-texture originals (<40 keypoints at 512 px): ${lowTexture.size}: ${[...lowTexture].join(', ')}`);

console.log('\nthreshold  declared  false+  precision  recall  null-FP-rate');
const thresholds = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9];
for (const t of thresholds) {
  const e = evaluate(t);
  console.log(`${t.toFixed(2).padStart(9)}  ${String(e.declared).padStart(8)}  ${String(e.fp).padStart(6)}  ${pct(e.precision).padStart(9)}  ${pct(e.recall).padStart(6)}  ${pct(e.nullFpRate).padStart(12)}`);
}
// Lowest threshold on the grid with precision >= 0.99.
const chosen = thresholds.map((t) => evaluate(t)).find((e) => e.precision >= 0.99);
console.log(`\nlowest grid threshold with precision >= 0.99: ${chosen ? chosen.t : 'none'}`);
const at = Number(process.env.AT ?? config.THRESHOLD);
const e = evaluate(at);
console.log(`at THRESHOLD=${at}: precision ${pct(e.precision)}, recall ${pct(e.recall)}, false positives ${e.fp}, null-query FP rate ${pct(e.nullFpRate)}`);

console.log('\nrecall per transform at', at);
for (const tr of [...new Set(rows.map((r) => r.transform))].sort()) {
  const sub = rows.filter((r) => r.transform === tr);
  const x = evaluate(at, sub);
  console.log(`  ${tr.padEnd(16)} recall ${pct(x.recall).padStart(6)}  false+ ${x.fp}`);
}
const lowRows = rows.filter((r) => lowTexture.has(r.original));
const lx = evaluate(at, lowRows);
const denseHits = lowRows.filter((r) => r.truth && r.checked.some((c) => c.relative_path === r.truth && c.score >= at && c.method === 'dense')).length;
console.log(`\nlow-texture queries: ${lowRows.length} (${lowRows.filter((r) => r.truth).length} with an original): recall ${pct(lx.recall)}, precision ${pct(lx.precision)}, false+ ${lx.fp}, null-FP-rate ${pct(lx.nullFpRate)}, found by dense: ${denseHits}`);
const siftOnly = lowRows.filter((r) => r.truth && r.checked.some((c) => c.relative_path === r.truth && c.method === 'sift' && c.score >= at)).length;
console.log(`  of which SIFT alone: ${siftOnly}`);

// Which false positives, for inspection.
for (const r of rows) {
  for (const c of r.checked) if (c.score >= at && c.relative_path !== r.truth) console.log(`  FP ${r.query} -> ${c.relative_path} score ${c.score} inliers ${c.inliers} ${c.method}`);
}
// Score distribution helpers: the best wrong score per query and the true score.
if (process.env.DUMP) {
  for (const r of rows) {
    const tru = r.checked.find((c) => c.relative_path === r.truth);
    const wrong = r.checked.filter((c) => c.relative_path !== r.truth).sort((a, b) => b.score - a.score)[0];
    console.log(`DUMP ${r.query} true=${tru ? `${tru.score}/${tru.inliers}/${tru.method}` : '-'} bestWrong=${wrong ? `${wrong.score}/${wrong.inliers}/${wrong.method}` : '-'}`);
  }
}
