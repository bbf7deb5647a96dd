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
 *
 * CANDIDATES=EVAL.json (a `dev-eval.bench.ts --json` run): each query is matched against the
 * neighbours the pipeline verified for it in that run, in its order, instead of all 44 index
 * images in name order: the pairs the pipeline really pays for (its first neighbour is most
 * often the original, the rest the unrelated pictures closest to the query). A run with
 * distractors names them `distractor-<file>`: they are hard-linked from DISTRACTORS
 * (default /work/distractors) into a folder beside the index under the repo's `.doppel/`,
 * removed at the end.
 */
import { loadavg } from 'node:os';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { MatchingConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { listen } from '@doppel/service-kit/testing';
import { buildService } from '@doppel/instance-matching';
import { postJson } from './post-json.http.js';
import { DISTRACTOR_PREFIX, placeFile } from '../distractors/placed.files.js';

const dev = process.argv[2] ?? '/work/shared/bench/dev';
const every = Number(process.env.EVERY ?? 15);
const truth = (JSON.parse(await readFile(path.join(dev, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
const index = (await readdir(path.join(dev, 'index'))).filter((f) => !f.startsWith('.')).sort();
const queries = Object.keys(truth).sort().filter((_, i) => i % every === 0);

/** Each query's neighbours: the pipeline's verified ones of a recorded run, or every index image. */
const lists = new Map<string, string[]>();
let targetDir = path.join(dev, 'index');
let linked: string | undefined;
if (process.env.CANDIDATES) {
  const run = JSON.parse(await readFile(process.env.CANDIDATES, 'utf8')) as { outcomes: Array<{ query: string; verified?: Array<{ path: string }> }> };
  for (const o of run.outcomes) if (o.verified?.length) lists.set(o.query, o.verified.map((v) => v.path));
  const extra = [...new Set([...lists.values()].flat())].filter((p) => p.startsWith(DISTRACTOR_PREFIX));
  if (extra.length > 0) {
    const from = process.env.DISTRACTORS ?? '/work/distractors';
    // Under the repo, as dev-eval.bench.ts does: hard links need the distractors' file system.
    mkdirSync(path.resolve('.doppel'), { recursive: true });
    linked = mkdtempSync(path.resolve('.doppel', 'pair-cost-'));
    for (const f of readdirSync(path.join(dev, 'index'))) placeFile(path.join(dev, 'index', f), path.join(linked, f));
    for (const p of extra) {
      const file = path.join(from, p.slice(DISTRACTOR_PREFIX.length));
      if (!existsSync(file)) throw new Error(`${p}: ${file} is missing (DISTRACTORS names the folder the run indexed)`);
      placeFile(file, path.join(linked, p));
    }
    targetDir = linked;
  }
}
const neighboursOf = (q: string) => (process.env.CANDIDATES ? lists.get(q) ?? [] : index);
const config = loadConfig(MatchingConfig, { ...process.env, LOG_LEVEL: 'silent', NB_WORKERS: '1', SOURCE_DIR: path.join(dev, 'queries'), TARGET_DIR: targetDir });
const load = () => loadavg().map((v) => v.toFixed(2)).join(' ');

const { base, close } = await listen(buildService(config));
const loadBefore = load();
let timed = 0;
let pairs = 0;
let duplicates = 0;
const perMatch: number[] = [];
for (const round of [0, 1]) {
  for (const q of queries) {
    const neighbors = neighboursOf(q);
    if (neighbors.length === 0) continue;
    const p = await postJson(base, '/prepare', { candidate: q });
    if (p.status !== 200) throw new Error(`${q}: ${p.status} ${p.error}`);
    const handle = (p.response as { candidate_handle: string }).candidate_handle;
    const t0 = performance.now();
    const r = await postJson(base, '/match', { candidate_handle: handle, neighbors });
    const ms = performance.now() - t0;
    if (r.status !== 200) throw new Error(`${q}: ${r.status} ${r.error}`);
    if (round === 1) {
      timed += ms;
      pairs += neighbors.length;
      perMatch.push(ms);
      duplicates += (r.response as { duplicated: unknown[] }).duplicated.length;
    }
  }
}
await close();
if (linked) rmSync(linked, { recursive: true, force: true });
perMatch.sort((a, b) => a - b);
console.log(`config: OVERLAP_BELOW_KEYPOINTS=${config.OVERLAP_BELOW_KEYPOINTS} DENSE_MIN_KEYPOINTS=${config.DENSE_MIN_KEYPOINTS} FINE_SIDE=${config.FINE_SIDE} RANSAC_MODEL=${config.RANSAC_MODEL} NB_WORKERS=1`);
const what = process.env.CANDIDATES ? `their verified neighbours in ${path.basename(process.env.CANDIDATES)}` : `${index.length} index images`;
console.log(`${perMatch.length} queries x ${what} = ${pairs} pairs (${duplicates} declared), second round, features cached, query extraction excluded`);
console.log(`average per pair: ${(timed / pairs).toFixed(2)} ms; per /match of ${(pairs / perMatch.length).toFixed(1)} neighbours on average: p50 ${perMatch[perMatch.length >> 1]!.toFixed(1)} ms`);
console.log(`load average before ${loadBefore}, after ${load()}`);
