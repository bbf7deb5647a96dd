/**
 * Matcher-level precision at scale (not a test; prints figures): the queries most likely to
 * be "verified" wrongly, the low-texture and the never-indexed ones of the dev set, are
 * verified by the real service (HTTP, port 0) against unrelated distractor images (built by
 * bench/distractors/build.ts into /work/distractors). Every declaration is a false positive.
 *
 *   node --conditions=source --import tsx bench/matching/distractors.bench.ts [/work/shared/bench/dev] [/work/distractors]
 *
 * Env: EVERY=k keeps every k-th distractor of the sorted list (default 40, so a sample runs
 * in minutes on a shared machine; EVERY=1 is the whole set), HALF=held-back|calibration|all
 * (default held-back), NULLS=n null queries beside the low-texture ones (default 50).
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { MatchingConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { listen } from '@doppel/service-kit/testing';
import { buildService } from '@doppel/instance-matching';
import { postJson } from './post-json.http.js';
import { originalOfQuery } from '@doppel/cli';
import { devSplit } from './dev-split.bench.js';
import pLimit from 'p-limit';

const dev = process.argv[2] ?? '/work/shared/bench/dev';
const distractorDir = process.argv[3] ?? '/work/distractors';
const every = Number(process.env.EVERY ?? 40);
const half = process.env.HALF ?? 'held-back';
const nulls = Number(process.env.NULLS ?? 50);
const config = loadConfig(MatchingConfig, { ...process.env, LOG_LEVEL: 'silent', SOURCE_DIR: path.join(dev, 'queries'), TARGET_DIR: distractorDir, QUEUE_LIMIT: '100000' });
const truth = (JSON.parse(await readFile(path.join(dev, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
const index = (await readdir(path.join(dev, 'index'))).sort();
const halfOf = devSplit(index, truth);
// The dev README's low-texture originals (under 40 SIFT keypoints at 512 px), as calibrate.ts finds them.
const LOW_TEXTURE = new Set(['s000_2004default', 's003_Fossa_by_Jasper_Roks', 's006_Painting-Colors_by__herobrine7ga', 's012_calla', 's013_city', 's014_desert', 's016_fluent-color', 's024_rhythm', 's025_rollpaper', 's027_string', 's030_umang_by_Abhishek_Mudgal']);
const inHalf = Object.keys(truth).sort().filter((q) => half === 'all' || halfOf(q) === half);
const low = inHalf.filter((q) => LOW_TEXTURE.has(originalOfQuery(q)));
const otherNulls = inHalf.filter((q) => truth[q] === null && !LOW_TEXTURE.has(originalOfQuery(q)));
const queries = [...low, ...otherNulls.filter((_, i) => i % Math.max(1, Math.floor(otherNulls.length / nulls)) === 0).slice(0, nulls)];
const all = (await readdir(distractorDir)).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort();
const distractors = all.filter((_, i) => i % every === 0);

const { base, close } = await listen(buildService(config));

interface Checked { relative_path: string; score: number; method: string; inliers: number; reason?: string }
const BATCH = 200;
const t0 = performance.now();
let pairs = 0;
const fps: string[] = [];
const reasons = new Map<string, number>();
let queriesWithFp = 0;
await pLimit(2).map(queries, async (q) => {
  let hit = false;
  for (let i = 0; i < distractors.length; i += BATCH) {
    const r = await postJson(base, '/match', { candidate: q, neighbors: distractors.slice(i, i + BATCH) });
    if (r.status !== 200) throw new Error(`${q}: ${r.status} ${r.error}`);
    const res = r.response as { duplicated: Checked[]; checked: Checked[] };
    pairs += res.checked.length;
    for (const c of res.checked) if (c.reason) reasons.set(c.reason, (reasons.get(c.reason) ?? 0) + 1);
    for (const d of res.duplicated) {
      hit = true;
      fps.push(`${q} -> ${d.relative_path} score ${d.score} inliers ${d.inliers} ${d.method}`);
    }
  }
  if (hit) queriesWithFp++;
});
const elapsed = (performance.now() - t0) / 1000;
await close();

console.log(`config: THRESHOLD=${config.THRESHOLD} RANSAC_MODEL=${config.RANSAC_MODEL} SIFT_LOW_CONTRAST=${config.SIFT_LOW_CONTRAST} DENSE_MIN_CORRELATION=${config.DENSE_MIN_CORRELATION} DENSE_MIN_EDGE_STD=${config.DENSE_MIN_EDGE_STD}`);
console.log(`${queries.length} queries of the ${half} half (${low.length} low-texture, ${queries.length - low.length} other never-indexed) x ${distractors.length} distractors (every ${every}th of ${all.length}) = ${pairs} pairs in ${elapsed.toFixed(0)} s (${((1000 * elapsed) / pairs).toFixed(2)} ms/pair wall, NB_WORKERS=${config.NB_WORKERS}, includes extracting each distractor once)`);
console.log(`false positives: ${fps.length} pairs, ${queriesWithFp} of ${queries.length} queries (${((100 * queriesWithFp) / queries.length).toFixed(2)}%); per pair ${(fps.length / pairs).toExponential(2)}`);
console.log(`reasons given: ${[...reasons].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')}`);
for (const f of fps) console.log(`  FP ${f}`);
