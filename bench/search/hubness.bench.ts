/**
 * The candidate stage through the real contextual-search app over HTTP (hnswlib, default
 * settings), on the dev-set fingerprints cached by bench/encoder/candidates.bench.ts:
 * the 44 originals + DISTRACTOR_N distractors are upserted, then every dev copy's 8
 * orientations are searched three ways: k=10, k=100, and k=100 with hubness re-ranked as
 * the pipeline does (SEARCH_K=100, HUBNESS_WEIGHT=0.75), each at the service's default ef. Prints upsert
 * vectors/s, p50/p99 per /search/batch call and recall@10 of the true original (the real
 * ANN index, not brute force).
 *   CACHE=/tmp/cand-final DISTRACTOR_N=10000 node --conditions=source --import tsx bench/search/hubness.bench.ts
 * Env: WHITENING_PATH (a fit-whitening file: applied to every cached vector first), EVERY (1: every query),
 * EF (comma-separated: one more k=100 + hubness mode per ef given; default: the service's ef for k),
 * ORIENTS (8; 1: the upright fingerprint only, as the pipeline's first search), MODES (names of the modes to run, separated by ;).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SearchConfig, type BatchNeighbor } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { call, listen } from '@doppel/service-kit/testing';
import { buildService } from '@doppel/contextual-search';
import { originalOfQuery, transformOf } from '@doppel/cli';
import { whiteningFrom, type WhiteningFile } from '../../services/image-encoder/src/pca-whitening.transform.js';
import { rerankByHubness, HUBNESS_K } from '../../services/pipeline/src/candidate-rerank.logic.js';
import { V2_TRANSFORMS } from '../matching/dev-split.bench.js';

const cache = process.env.CACHE ?? '/tmp/doppel-candidates';
const nDist = Number(process.env.DISTRACTOR_N ?? 10000);
const every = Number(process.env.EVERY ?? 1);
/** ORIENTS=1: only the upright fingerprint is searched (the pipeline's first, cascade stage); 8: all. */
const orients = Number(process.env.ORIENTS ?? 8);
const DIM = 256;

async function load(name: string) {
  const meta = JSON.parse(await readFile(join(cache, `${name}.json`), 'utf8')) as { files: string[]; orient: number; perRow: number };
  const buf = await readFile(join(cache, `${name}.f32`));
  return { ...meta, data: new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4) };
}
const [idx, dis, qs] = await Promise.all([load('index-cc-o1'), load('distractors-cc-o1'), load('queries-cc-o8')]);
// GREY=1: each image is indexed with its greyscale fingerprint as its one other entry (GREY_ENTRY;
// cached as index-cc-grey-o1 / distractors-cc-grey-o1), unless it has no colour (grey = itself).
// GREY=both: two services side by side, without and with grey entries, their modes interleaved.
const greySets = process.env.GREY === '1' || process.env.GREY === 'both' ? await Promise.all([load('index-cc-grey-o1'), load('distractors-cc-grey-o1')]) : undefined;
const w = process.env.WHITENING_PATH ? whiteningFrom(JSON.parse(await readFile(process.env.WHITENING_PATH, 'utf8')) as WhiteningFile) : undefined;
const vecOf = (l: typeof idx, row: number) => {
  const v = l.data.subarray(row * l.perRow * DIM, row * l.perRow * DIM + DIM);
  return w ? w.apply(v) : Array.from(v);
};

const dirs: string[] = [];
const kinds = process.env.GREY === 'both' ? ['plain', 'grey'] as const : [process.env.GREY === '1' ? 'grey' as const : 'plain' as const];
const services = await Promise.all(kinds.map(async (kind) => {
  const dir = await mkdtemp(join(tmpdir(), 'doppel-hub-bench-'));
  dirs.push(dir);
  return { kind, ...(await listen(buildService(loadConfig(SearchConfig, { LOCATION: dir, DIMENSION: String(DIM), SNAPSHOT_INTERVAL_MS: '0', LOG_LEVEL: 'warn' })))) };
}));
try {
  const entry = (l: typeof idx, g: typeof idx | undefined, i: number, path: string) => {
    const v = vecOf(l, i);
    if (!g) return { relative_path: path, vec_features: v };
    const gv = vecOf(g, i);
    const cos = v.reduce((a, x, d) => a + x * gv[d]!, 0) / Math.sqrt(v.reduce((a, x) => a + x * x, 0) * gv.reduce((a, x) => a + x * x, 0));
    return { relative_path: path, vec_features: v, ...(cos < 0.999 ? { regions: [gv] } : {}) };
  };
  let t = 0;
  for (const svc of services) {
    const g = svc.kind === 'grey' ? greySets : undefined;
    const items = [
      ...idx.files.map((f, i) => entry(idx, g?.[0], i, `index/${f}`)),
      ...dis.files.slice(0, nDist).map((f, i) => entry(dis, g?.[1], i, `distractors/${f}`)),
    ];
    t = performance.now();
    for (let i = 0; i < items.length; i += 1000) {
      const r = await call(svc.base, 'POST', '/vectors', { items: items.slice(i, i + 1000) });
      if (r.status !== 200) throw new Error(JSON.stringify(r.body).slice(0, 300));
    }
    const upsertS = (performance.now() - t) / 1000;
    console.log(`${svc.kind}: upserted ${items.length} images in ${upsertS.toFixed(1)} s (${(items.length / upsertS).toFixed(0)} images/s, WAL + fsync per 1000)${w ? ', whitened' : ''}`);
  }

  const modes = {
    'k=10 (before)': { nb_neighbors: 10, limit: 10 },
    'k=100': { nb_neighbors: 100, limit: 100 },
    'k=100 + hubness': { nb_neighbors: 100, limit: 100, hubness_k: HUBNESS_K },
    ...Object.fromEntries((process.env.EF ? process.env.EF.split(',') : []).map((ef) => [`k=100 + hubness, ef ${ef}`, { nb_neighbors: 100, limit: 100, hubness_k: HUBNESS_K, ef: Number(ef) }])),
  };
  const only = process.env.MODES?.split(';');
  const stem = (f: string) => f.replace(/\.[^.]+$/, '');
  // The modes take turns query by query, the first of each turn rotating, so the machine's
  // load drifts over all alike and each mode is as often the one that fills the hubness cache.
  const entries = services.flatMap((svc) => Object.entries(modes).filter(([name]) => !only || only.includes(name))
    .map(([name, opts]) => [services.length > 1 ? `${svc.kind}: ${name}` : name, { ...opts, base: svc.base }] as const));
  const stat = entries.map(() => ({ ms: [] as number[], hit: { all: [0, 0], v2: [0, 0], v3: [0, 0] } }));
  for (let q = 0; q < qs.files.length; q += every) {
    const queries = Array.from({ length: orients }, (_, o) => ({ vec_features: vecOf(qs, q * 8 + o) }));
    for (let turn = 0; turn < entries.length; turn++) {
      const m = (q / every + turn) % entries.length;
      const { base, ...opts } = entries[m]![1];
      t = performance.now();
      const r = await call(base, 'POST', '/search/batch', { queries, ...opts });
      stat[m]!.ms.push(performance.now() - t);
      const neighbors = r.body.response.neighbors as BatchNeighbor[];
      const top = ('hubness_k' in opts ? rerankByHubness(neighbors, 0.75) : neighbors).slice(0, 10);
      const found = top.some((n) => stem(n.relative_path) === `index/${originalOfQuery(qs.files[q]!)}`) ? 1 : 0;
      const g = V2_TRANSFORMS.has(transformOf(qs.files[q]!)) ? 'v2' : 'v3';
      for (const k of ['all', g] as const) { stat[m]!.hit[k][0]! += found; stat[m]!.hit[k][1]! += 1; }
    }
  }
  entries.forEach(([name], m) => {
    const { ms, hit } = stat[m]!;
    ms.sort((a, b) => a - b);
    const at = (p: number) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))]!.toFixed(1);
    const rec = (k: keyof typeof hit) => (hit[k][0]! / hit[k][1]!).toFixed(3);
    console.log(`${name.padEnd(24)} p50 ${at(0.5)} ms  p99 ${at(0.99)} ms  recall@10 all ${rec('all')}  v2 ${rec('v2')}  v3 ${rec('v3')}  (${ms.length} queries)`);
  });
} finally {
  for (const svc of services) await svc.close();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
}
