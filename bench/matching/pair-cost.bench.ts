/**
 * Average verification cost per candidate pair, as the service spends it (not a test;
 * prints figures). The real service (HTTP, port 0, NB_WORKERS=1 so pairs run one after
 * another) verifies a sample of dev queries against all 44 index images. Each query is
 * prepared first (POST /prepare: decode and SIFT of the query, the one-time cost excluded
 * here), then POST /match runs with its handle; the sample is run twice and only the second
 * round is timed, so every target's features (and fine features) are cached and the time is
 * the pairs' own: SIFT matching both passes, RANSAC, the fine pass, the dense and overlap
 * checks, and the round trips to the worker process.
 *
 *   node --conditions=source --import tsx bench/matching/pair-cost.bench.ts [/work/shared/bench/dev]
 *
 * Env: EVERY=k keeps every k-th query (default 15); matcher env (OVERLAP_BELOW_KEYPOINTS=0,
 * ...) goes to the service config. The load average is printed: the machine is shared.
 */
import { loadavg } from 'node:os';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { MatchingConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { listen } from '@doppel/service-kit/testing';
import { buildService } from '@doppel/instance-matching';
import { postJson } from './post-json.http.js';

const dev = process.argv[2] ?? '/work/shared/bench/dev';
const every = Number(process.env.EVERY ?? 15);
const config = loadConfig(MatchingConfig, { ...process.env, LOG_LEVEL: 'silent', NB_WORKERS: '1', SOURCE_DIR: path.join(dev, 'queries'), TARGET_DIR: path.join(dev, 'index') });
const truth = (JSON.parse(await readFile(path.join(dev, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
const index = (await readdir(path.join(dev, 'index'))).filter((f) => !f.startsWith('.')).sort();
const queries = Object.keys(truth).sort().filter((_, i) => i % every === 0);
const load = () => loadavg().map((v) => v.toFixed(2)).join(' ');

const { base, close } = await listen(buildService(config));
const loadBefore = load();
let timed = 0;
let pairs = 0;
let duplicates = 0;
const perMatch: number[] = [];
for (const round of [0, 1]) {
  for (const q of queries) {
    const p = await postJson(base, '/prepare', { candidate: q });
    if (p.status !== 200) throw new Error(`${q}: ${p.status} ${p.error}`);
    const handle = (p.response as { candidate_handle: string }).candidate_handle;
    const t0 = performance.now();
    const r = await postJson(base, '/match', { candidate_handle: handle, neighbors: index });
    const ms = performance.now() - t0;
    if (r.status !== 200) throw new Error(`${q}: ${r.status} ${r.error}`);
    if (round === 1) {
      timed += ms;
      pairs += index.length;
      perMatch.push(ms);
      duplicates += (r.response as { duplicated: unknown[] }).duplicated.length;
    }
  }
}
await close();
perMatch.sort((a, b) => a - b);
console.log(`config: OVERLAP_BELOW_KEYPOINTS=${config.OVERLAP_BELOW_KEYPOINTS} DENSE_MIN_KEYPOINTS=${config.DENSE_MIN_KEYPOINTS} FINE_SIDE=${config.FINE_SIDE} RANSAC_MODEL=${config.RANSAC_MODEL} NB_WORKERS=1`);
console.log(`${queries.length} queries x ${index.length} index images = ${pairs} pairs (${duplicates} declared), second round, features cached, query extraction excluded`);
console.log(`average per pair: ${(timed / pairs).toFixed(2)} ms; per /match of ${index.length} neighbours: p50 ${perMatch[perMatch.length >> 1]!.toFixed(1)} ms`);
console.log(`load average before ${loadBefore}, after ${load()}`);
