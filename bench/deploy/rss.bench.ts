// Resident memory of each service under load, for the k8s memory requests and limits.
// Usage (from the repo root, after `pnpm build`):
//   node --conditions=source --import tsx bench/deploy/rss.bench.ts
// Starts the four services from dist/ (node dist/main.js, as the images run them) with the
// settings of their k8s ConfigMaps, and samples the RSS of each service's whole process tree
// (the matcher's verification child processes included: a container's memory limit counts
// them all) every SAMPLE_MS while it
//   1. indexes the dev set's 44 originals plus every QUERY_STRIDE-th query copy,
//   2. adds VECTORS random fingerprints to the index (a collection of that size),
//   3. answers /duplicates for the query copies at CONCURRENCY for DURATION_S (target features
//      fill the matcher's caches),
//   4. answers BIG concurrent /duplicates with a 35-megapixel JPEG of about 13 MiB sent as
//      base64 (under the 20 MiB MAX_IMAGE_BYTES and 50 M MAX_PIXELS; decoding it is the peak).
// Prints one row per service: RSS when ready, peak, and the limit = peak x HEADROOM rounded up
// to 64 MiB. Env: BENCH_DIR, MODEL_PATH, QUERY_STRIDE (8), VECTORS (20000), CONCURRENCY (4),
// DURATION_S (60), BIG (2), HEADROOM (1.5), SAMPLE_MS (100).
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { parseAllDocuments } from 'yaml';
import { createPipelineClient, createSearchClient } from '@doppel/clients';
import { SERVICES, startStack, type ServiceName } from '@doppel/cli';
import { freePorts } from '@doppel/service-kit/testing';
import { envNumber } from '../bench.env.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const env = process.env;
const dev = env.BENCH_DIR ?? join(repo, '..', 'shared', 'bench', 'dev');
const sharedModel = join(repo, '..', 'shared', 'models', 'resnet18-imagenet-layer3.onnx');
const modelPath = env.MODEL_PATH ?? (existsSync(sharedModel) ? sharedModel : join(repo, 'models', 'resnet18.onnx'));
const num = envNumber;
const QUERY_STRIDE = num('QUERY_STRIDE', 8);
const VECTORS = num('VECTORS', 20_000);
const CONCURRENCY = num('CONCURRENCY', 4);
const DURATION_S = num('DURATION_S', 60);
const BIG = num('BIG', 2);
const HEADROOM = num('HEADROOM', 1.5);
const SAMPLE_MS = num('SAMPLE_MS', 100);
const log = (s: string) => process.stderr.write(`${s}\n`);

for (const svc of SERVICES) {
  if (!existsSync(join(repo, 'services', svc, 'dist', 'main.js'))) {
    log(`services/${svc}/dist/main.js is missing: run \`pnpm build\` first`);
    process.exit(2);
  }
}

/** The k8s ConfigMap of a service, less what the bench sets itself (ports, paths, URLs). */
function configMapEnv(svc: ServiceName): Record<string, string> {
  const docs = parseAllDocuments(readFileSync(join(repo, 'k8s', `${svc}.yaml`), 'utf8')).map((d) => d.toJS() as { kind?: string; data?: Record<string, string> });
  const data = docs.find((d) => d.kind === 'ConfigMap')?.data ?? {};
  const own = /^(SERVER_PORT|SERVER_HOST|IMAGES_ROOT|MODELS_DIR|MODELS_NAME|MODEL_PATH|LOCATION|DATA_DIR|SOURCE_DIR|TARGET_DIR|\w+_URL)$/;
  return Object.fromEntries(Object.entries(data).filter(([k]) => !own.test(k)));
}

/** RSS of a process and all its descendants, in bytes (Linux /proc). */
function treeRss(pid: number): number {
  let total = 0;
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    try {
      const status = readFileSync(`/proc/${p}/status`, 'utf8');
      total += Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
      for (const tid of readdirSync(`/proc/${p}/task`)) {
        const kids = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').trim();
        if (kids) stack.push(...kids.split(/\s+/).map(Number));
      }
    } catch {
      // The process ended between two reads.
    }
  }
  return total;
}

const tmp = mkdtempSync(join(tmpdir(), 'doppel-rss-'));
const root = join(tmp, 'images');
// Copies, not links: the services refuse paths that resolve outside their root.
cpSync(join(dev, 'index'), join(root, 'index'), { recursive: true });
mkdirSync(join(root, 'queries'));
const queries = readdirSync(join(dev, 'queries')).sort().filter((_, i) => i % QUERY_STRIDE === 0);
for (const q of queries) cpSync(join(dev, 'queries', q), join(root, 'queries', q));

const [p, e, s, m] = await freePorts(4);
log(`starting the stack from dist/ (model ${modelPath}) ...`);
const stack = await startStack({
  repoRoot: repo, imagesRoot: root, stateDir: join(tmp, 'state'), modelPath,
  ports: { pipeline: p!, encoder: e!, search: s!, matching: m! },
  fromDist: true, logLevel: 'warn',
  env: Object.fromEntries(SERVICES.map((svc) => [svc, configMapEnv(svc)])),
});
const MiB = 2 ** 20;
const ready = Object.fromEntries(SERVICES.map((svc) => [svc, treeRss(stack.children[svc].pid!)])) as Record<ServiceName, number>;
const peak = { ...ready };
const phasePeak: Record<string, Record<ServiceName, number>> = {};
let phase = 'ready';
const sampler = setInterval(() => {
  for (const svc of SERVICES) {
    const r = treeRss(stack.children[svc].pid!);
    if (r > peak[svc]) peak[svc] = r;
    const pp = (phasePeak[phase] ??= { ...ready });
    if (r > pp[svc]) pp[svc] = r;
  }
}, SAMPLE_MS);

try {
  const pipeline = createPipelineClient({ baseUrl: stack.urls.pipeline, timeoutMs: 10 * 60_000, retries: 0 });
  phase = 'index';
  let t = performance.now();
  const idx = await pipeline.index({ relative_path: '.' });
  log(`indexed ${idx.indexed}/${idx.total} in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  phase = 'vectors';
  const search = createSearchClient({ baseUrl: stack.urls['contextual-search'], timeoutMs: 120_000 });
  const dim = stack.dimension;
  for (let done = 0; done < VECTORS;) {
    const n = Math.min(500, VECTORS - done);
    const items = Array.from({ length: n }, (_, i) => {
      const v = Array.from({ length: dim }, () => Math.random() - 0.5);
      const norm = Math.hypot(...v);
      return { relative_path: `synthetic/${done + i}.jpg`, vec_features: v.map((x) => x / norm) };
    });
    await search.upsert({ items });
    done += n;
  }
  log(`added ${VECTORS} random vectors (dimension ${dim})`);

  phase = 'queries';
  let served = 0;
  let failed = 0;
  const end = Date.now() + DURATION_S * 1000;
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (Date.now() < end) {
      const q = queries[next++ % queries.length]!;
      try {
        await pipeline.duplicates({ relative_path: `queries/${q}` });
        served++;
      } catch {
        failed++;
      }
    }
  }));
  log(`${served} /duplicates answered (${failed} failed) in ${DURATION_S} s at concurrency ${CONCURRENCY}`);

  phase = 'big';
  // A 7000x5000 JPEG of a dev image under noise (noise keeps the JPEG large: about 13 MiB).
  const first = readdirSync(join(root, 'index')).sort()[0]!;
  const big = await sharp(join(root, 'index', first)).resize(7000, 5000, { fit: 'fill' })
    .composite([{ input: await sharp({ create: { width: 7000, height: 5000, channels: 3, background: { r: 128, g: 128, b: 128 }, noise: { type: 'gaussian', mean: 128, sigma: 40 } } }).png().toBuffer(), blend: 'overlay' }])
    .jpeg({ quality: 88 }).toBuffer();
  const b64 = big.toString('base64');
  t = performance.now();
  const bigResults = await Promise.allSettled(Array.from({ length: BIG }, () => pipeline.duplicates({ image_base64: b64 })));
  const bigFailed = bigResults.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason as Error);
  log(`${BIG} concurrent /duplicates of a ${(big.length / MiB).toFixed(1)} MiB 7000x5000 JPEG in ${((performance.now() - t) / 1000).toFixed(1)} s`
    + (bigFailed.length ? ` (${bigFailed.length} failed: ${bigFailed[0]!.message})` : ''));
} finally {
  clearInterval(sampler);
  await stack.stop();
  rmSync(tmp, { recursive: true, force: true });
}

const mib = (b: number) => Math.round(b / MiB);
const phases = Object.keys(phasePeak);
console.log(`RSS of each service's process tree (MiB), sampled every ${SAMPLE_MS} ms; ${cpus().length} cpus; model ${modelPath}`);
console.log(`| service | ready | ${phases.map((ph) => `peak in ${ph}`).join(' | ')} | peak | limit = peak x ${HEADROOM} (64 MiB steps) |`);
console.log(`| --- | --- | ${phases.map(() => '---').join(' | ')} | --- | --- |`);
for (const svc of SERVICES) {
  const limit = Math.ceil((peak[svc] * HEADROOM) / MiB / 64) * 64;
  console.log(`| ${svc} | ${mib(ready[svc])} | ${phases.map((ph) => mib(phasePeak[ph]![svc])).join(' | ')} | ${mib(peak[svc])} | ${limit}Mi |`);
}
