import type { ChildProcess } from 'node:child_process';
import { parseArgs } from 'node:util';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { AppError } from '@doppel/service-kit';
import { createSearchClient, type DuplicatesResult, type PipelineClient } from '@doppel/clients';
import { listImages } from '@doppel/image-source';
import { exportCollection, importCollection } from './collection-transfer.logic.js';
import { ProgressBar } from './progress.view.js';
import { groupPairs, type ScanPair } from './scan-groups.logic.js';
import { writeReportPage, type ThumbMode } from './scan-report.html.js';
import { buildReport, summaryLines } from './scan-report.model.js';
import { collectFacts } from './image-facts.fs.js';
import { framedLinks } from './margin.measure.js';
import { parseKeepRule } from './keeper.logic.js';
import { loadDecisions } from './scan-decisions.store.js';
import { cmdApply, cmdUndo } from './apply.command.js';
import { buildDemoFolder } from './demo-folder.fs.js';
import { cmdEval } from './eval.command.js';
import { isInside, openSession, startActive, stopActive, type Session } from './stack-session.js';
import type { ServiceName } from './stack.launcher.js';
import {
  DEFAULT_PORTS, REPO_ROOT, canonical, clearStackRecord, lastRoot, rememberRoot, requireModel, stateDirFor,
  writeStackRecord, type Workspace,
} from './workspace.config.js';
import pLimit from 'p-limit';

const USAGE = `doppel: near-duplicate image search

  doppel index DIR            index every image under DIR (resumable: unchanged files are skipped)
  doppel query IMAGE          list the indexed duplicates of IMAGE   [--json] [--root DIR]
  doppel scan DIR             find every duplicate group inside DIR; writes a JSON and an HTML report
                              [--out FILE.html] (default ./doppel-report.html, JSON next to it)
                              [--keep contains,pixels,quality,format,oldest] keeper rule (also: newest, bytes)
                              [--prefer-formats jpeg,heif,png,tiff,webp,avif,gif] [--thumbs auto|embed|sidecar]
  doppel demo [DIR]           copy a small folder with duplicates from ../shared/bench/dev to DIR
                              (default ./doppel-demo) and scan it   [--from DEVSET]
  doppel apply FILE.json      act on a scan report or on actions exported from the page:
                              --move-to DIR moves the non-keepers there (relative paths kept), or --delete;
                              a dry run unless --yes; files changed since the scan are refused
  doppel eval --index DIR --queries DIR --truth FILE   how well Doppel finds the duplicates of your data:
                              recall@1/@10, precision, recall, F1, false positives on null queries, per
                              transform (text after __ in a query name) and --groups name=t1,t2 (repeatable);
                              latency p50/p99 per stage; [--json OUT.json] [--plot OUT.svg] [--html OUT.html]
  doppel undo MANIFEST        put back what \`apply --yes\` moved (MANIFEST: the *.undo.json it printed) [--dry-run]
  doppel up [--images DIR]    run the four services until Ctrl-C (image root: DIR, default <repo>/images)
  doppel export --out FILE.jsonl   write every vector of a running contextual-search (path, vector, metadata)
  doppel import FILE.jsonl         upsert such a file into a running contextual-search (any backend)
                              [--search-url URL] (default http://127.0.0.1:<--search-port>)

index and scan start the services themselves when no pipeline answers on --port, and stop them after.
State lives in <repo>/.doppel/roots/<folder>-<hash>/ (one index per image root; --home DIR to move it).

options: --port 8000 --encoder-port 8500 --search-port 8800 --matching-port 8300 --model FILE
         --force (re-index unchanged files)  --threshold X  --neighbors N  --concurrency N`;

const options = {
  port: { type: 'string' }, 'encoder-port': { type: 'string' }, 'search-port': { type: 'string' }, 'matching-port': { type: 'string' },
  model: { type: 'string' }, home: { type: 'string' }, root: { type: 'string' }, images: { type: 'string' },
  json: { type: 'boolean' }, force: { type: 'boolean' }, out: { type: 'string' }, threshold: { type: 'string' },
  neighbors: { type: 'string' }, concurrency: { type: 'string' }, 'search-url': { type: 'string' }, help: { type: 'boolean', short: 'h' },
  keep: { type: 'string' }, 'prefer-formats': { type: 'string' }, thumbs: { type: 'string' }, from: { type: 'string' },
  'move-to': { type: 'string' }, delete: { type: 'boolean' }, yes: { type: 'boolean' }, 'dry-run': { type: 'boolean' },
} as const;
type Flags = ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>['values'];

const say = (s: string) => process.stderr.write(`${s}\n`);

function intFlag(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: expected a whole number, got ${JSON.stringify(raw)}`);
  return n;
}

function workspace(f: Flags): Workspace {
  const env = process.env;
  return {
    repoRoot: REPO_ROOT,
    home: resolve(f.home ?? env.DOPPEL_HOME ?? join(REPO_ROOT, '.doppel')),
    modelPath: resolve(f.model ?? env.MODEL_PATH ?? join(REPO_ROOT, 'models', 'resnet18.onnx')),
    ports: {
      pipeline: intFlag('port', f.port ?? env.DOPPEL_PORT, DEFAULT_PORTS.pipeline),
      encoder: intFlag('encoder-port', f['encoder-port'] ?? env.DOPPEL_ENCODER_PORT, DEFAULT_PORTS.encoder),
      search: intFlag('search-port', f['search-port'] ?? env.DOPPEL_SEARCH_PORT, DEFAULT_PORTS.search),
      matching: intFlag('matching-port', f['matching-port'] ?? env.DOPPEL_MATCHING_PORT, DEFAULT_PORTS.matching),
    },
  };
}

function existingDir(p: string | undefined, what: string): string {
  if (!p) throw new Error(`${what}: a folder is required\n\n${USAGE}`);
  if (!existsSync(p) || !statSync(p).isDirectory()) throw new Error(`${what}: ${p} is not a folder`);
  return canonical(p);
}

const CHUNK = 32;

/** Indexes DIR chunk by chunk so the bar moves; the pipeline skips files it already holds. */
async function indexFolder(s: Session, dir: string, force: boolean) {
  const rel = relative(s.root, dir) || '.';
  const files = await listImages(s.root, rel, true);
  const bar = new ProgressBar('index', files.length);
  const totals = { total: 0, indexed: 0, skipped: 0, removed: 0, failed: [] as Array<{ relative_path: string; error_message: string }> };
  for (let i = 0; i < files.length; i += CHUNK) {
    const chunk = files.slice(i, i + CHUNK);
    const r = await s.pipeline.index({ relative_paths: chunk, ...(force ? { force } : {}) });
    totals.total += r.total;
    totals.indexed += r.indexed;
    totals.skipped += r.skipped;
    totals.failed.push(...r.failed);
    bar.tick(chunk.length);
  }
  // The index belongs to this folder (one state dir per root): files deleted from it since
  // the last run leave the index too. This pass skips everything the chunks just indexed,
  // and retries only what failed (not reported twice).
  const last = await s.pipeline.index({ relative_path: rel, prune: true });
  totals.indexed += last.indexed;
  totals.removed = last.removed;
  const reported = new Set(totals.failed.map((f) => f.relative_path));
  totals.failed.push(...last.failed.filter((f) => !reported.has(f.relative_path)));
  const removed = totals.removed ? `, ${totals.removed} removed (no longer in the folder)` : '';
  bar.finish(`${totals.indexed} indexed, ${totals.skipped} already indexed${removed}, ${totals.failed.length} failed`);
  for (const f of totals.failed.slice(0, 20)) say(`  failed: ${f.relative_path}: ${f.error_message}`);
  if (totals.failed.length > 20) say(`  ... and ${totals.failed.length - 20} more`);
  return totals;
}

async function withSession<T>(ws: Workspace, root: string, rootGiven: boolean, fn: (s: Session) => Promise<T>): Promise<T> {
  const s = await openSession(ws, root, say, { rootGiven });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

function rootAndTarget(f: Flags, dir: string): { root: string; rootGiven: boolean } {
  const root = f.root ? existingDir(f.root, '--root') : dir;
  if (!isInside(root, dir)) throw new Error(`${dir} is not inside the image root ${root}`);
  return { root, rootGiven: Boolean(f.root) };
}

async function cmdIndex(ws: Workspace, f: Flags, arg: string | undefined) {
  const dir = existingDir(arg, 'index');
  const { root, rootGiven } = rootAndTarget(f, dir);
  await withSession(ws, root, rootGiven, async (s) => {
    if (!isInside(s.root, dir)) throw new Error(`the running pipeline serves ${s.root}; ${dir} is outside it (stop it, or use --port)`);
    const t = await indexFolder(s, dir, Boolean(f.force));
    rememberRoot(ws.home, s.root);
    if (f.json) process.stdout.write(`${JSON.stringify(t)}\n`);
  });
}

function printDuplicates(image: string, r: DuplicatesResult) {
  const out = process.stdout;
  out.write(r.duplicated.length === 0 ? `${image}: no duplicate found\n` : `${image}: ${r.duplicated.length} duplicate${r.duplicated.length > 1 ? 's' : ''}\n`);
  for (const d of r.duplicated) out.write(`  ${d.score.toFixed(3)}  ${String(d.inliers).padStart(4)} inliers  ${d.method ?? ''}\t${d.relative_path}\n`);
  const others = r.candidates.filter((c) => !r.duplicated.some((d) => d.relative_path === c.relative_path));
  if (others.length) out.write(`  (${others.length} similar-looking candidate${others.length > 1 ? 's' : ''} rejected by verification)\n`);
  out.write(`  timings: encode ${r.timings_ms.encode} ms, search ${r.timings_ms.search} ms, match ${r.timings_ms.match} ms\n`);
}

async function cmdQuery(ws: Workspace, f: Flags, arg: string | undefined) {
  if (!arg || !existsSync(arg) || !statSync(arg).isFile()) throw new Error(`query: ${arg ?? '(none)'} is not a file\n\n${USAGE}`);
  const image = canonical(arg);
  const root = f.root ? existingDir(f.root, '--root') : lastRoot(ws.home);
  if (!root) throw new Error('query: no index yet: run `doppel index DIR` first (or pass --root DIR)');
  await withSession(ws, root, Boolean(f.root), async (s) => {
    const source = isInside(s.root, image)
      ? { relative_path: relative(s.root, image).split('\\').join('/') }
      : { image_base64: readFileSync(image).toString('base64') };
    const r = await s.pipeline.duplicates({
      ...source,
      ...(f.threshold ? { threshold: Number(f.threshold) } : {}),
      ...(f.neighbors ? { nb_neighbors: intFlag('neighbors', f.neighbors, 10) } : {}),
    });
    if (f.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    else printDuplicates(image, r);
  });
}

async function queryAll(pipeline: PipelineClient, files: string[], concurrency: number, f: Flags, inScope: (p: string) => boolean) {
  const pairs: ScanPair[] = [];
  const failed: Array<{ relative_path: string; error: string }> = [];
  const bar = new ProgressBar('scan ', files.length);
  await pLimit(Math.max(1, concurrency)).map(files, async (q) => {
    try {
      const r = await pipeline.duplicates({ relative_path: q, ...(f.threshold ? { threshold: Number(f.threshold) } : {}) });
      for (const d of r.duplicated) {
        if (!inScope(d.relative_path)) continue;
        pairs.push({ query: q, match: d.relative_path, score: d.score, inliers: d.inliers, ...(d.method ? { method: d.method } : {}), ...(d.region ? { region: d.region } : {}) });
      }
    } catch (e) {
      // An outage ends the scan; a bad file is only noted.
      if (e instanceof AppError && e.status >= 500) throw e;
      failed.push({ relative_path: q, error: (e as Error).message });
    }
    bar.tick();
  });
  bar.finish(`${files.length} images queried, ${pairs.length} verified links`);
  return { pairs, failed };
}

const THUMB_MODES: ThumbMode[] = ['auto', 'embed', 'sidecar'];

async function cmdScan(ws: Workspace, f: Flags, arg: string | undefined) {
  const dir = existingDir(arg, 'scan');
  const { root, rootGiven } = rootAndTarget(f, dir);
  const outHtml = resolve(f.out ?? 'doppel-report.html');
  const outJson = outHtml.replace(/\.html?$/i, '') + '.json';
  const rule = parseKeepRule(f.keep, f['prefer-formats']);
  const thumbs = (f.thumbs ?? 'auto') as ThumbMode;
  if (!THUMB_MODES.includes(thumbs)) throw new Error(`--thumbs: one of ${THUMB_MODES.join(', ')}`);
  await withSession(ws, root, rootGiven, async (s) => {
    if (!isInside(s.root, dir)) throw new Error(`the running pipeline serves ${s.root}; ${dir} is outside it (stop it, or use --port)`);
    await indexFolder(s, dir, Boolean(f.force));
    rememberRoot(ws.home, s.root);
    const rel = relative(s.root, dir);
    const files = await listImages(s.root, rel || '.', true);
    const prefix = rel ? `${rel.split('\\').join('/')}/` : '';
    const { pairs, failed } = await queryAll(s.pipeline, files, intFlag('concurrency', f.concurrency, 2), f, (p) => p.startsWith(prefix));
    const groups = groupPairs(pairs);
    const [{ facts }, framed] = await Promise.all([collectFacts(s.root, [...new Set(groups.flatMap((g) => g.members))]), framedLinks(s.root, groups)]);
    const report = buildReport({
      root: s.root, folder: dir, generatedAt: new Date().toISOString(), filesScanned: files.length, groups, facts, rule, framed,
      decisions: loadDecisions(stateDirFor(ws.home, s.root)), failed,
    });
    mkdirSync(dirname(outHtml), { recursive: true });
    writeFileSync(outJson, `${JSON.stringify(report, null, 2)}\n`);
    const page = await writeReportPage(report, { htmlPath: outHtml, thumbs });
    for (const line of summaryLines(report)) say(line);
    say(`report: ${outHtml}${page.sidecar ? ` (thumbnails in ${page.sidecar})` : ''}\njson:   ${outJson}`);
    if (report.groups.length) say(`next:   open the report, or move the copies away with: doppel apply ${outJson} --move-to DIR   (a dry run until --yes)`);
    if (f.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  });
}

async function cmdDemo(ws: Workspace, f: Flags, arg: string | undefined) {
  const from = resolve(f.from ?? process.env.DOPPEL_DEMO_FROM ?? join(ws.repoRoot, '..', 'shared', 'bench', 'dev'));
  const dir = resolve(arg ?? 'doppel-demo');
  const made = buildDemoFolder(from, dir);
  say(made.created ? `demo folder ${dir}: ${made.files} images copied from ${from} (${made.originals} originals, ${made.copies} of their copies)` : `demo folder ${dir} exists: scanning it as it is`);
  await cmdScan(ws, f, dir);
}

/** `doppel up` restarts a dead service at most this many times per window. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;

async function cmdUp(ws: Workspace, f: Flags) {
  const images = resolve(f.images ?? process.env.DOPPEL_IMAGES ?? join(ws.repoRoot, 'images'));
  mkdirSync(images, { recursive: true });
  const root = canonical(images);
  requireModel(ws.modelPath);
  const stateDir = stateDirFor(ws.home, root);
  say(`starting image-encoder, contextual-search, instance-matching and pipeline for ${root} ...`);
  const stack = await startActive({ repoRoot: ws.repoRoot, imagesRoot: root, stateDir, modelPath: ws.modelPath, ports: ws.ports });
  writeStackRecord(ws.home, { pid: process.pid, imagesRoot: root, stateDir, ports: ws.ports });
  rememberRoot(ws.home, root);
  for (const [name, url] of Object.entries(stack.urls)) say(`  ${name.padEnd(18)} ${url} (pid ${stack.children[name as ServiceName].pid})`);
  say(`state: ${stateDir} (logs in logs/)\nready; Ctrl-C to stop`);
  await new Promise<void>((resolveDone) => {
    let stopping = false;
    const shutdown = (why: string) => {
      if (stopping) return;
      stopping = true;
      say(`\n${why}: stopping ...`);
      void stack.stop().then(() => { clearStackRecord(ws.home, process.pid); resolveDone(); });
    };
    // Ready: Ctrl-C is now a normal stop (exit 0), not an interruption.
    process.removeAllListeners('SIGINT').removeAllListeners('SIGTERM');
    process.on('SIGINT', () => shutdown('interrupted'));
    process.on('SIGTERM', () => shutdown('terminated'));
    // A service that dies is started again (a few times a minute at most: one that keeps
    // dying stops the stack instead of looping); the others keep running meanwhile.
    const restarts = new Map<ServiceName, number[]>();
    const watch = (name: ServiceName, child: ChildProcess) => child.once('exit', (code, signal) => {
      if (stopping) return;
      const now = Date.now();
      const recent = (restarts.get(name) ?? []).filter((t) => now - t < RESTART_WINDOW_MS);
      const why = `${name} exited (${code ?? signal}; see ${stateDir}/logs/${name}.log)`;
      if (recent.length >= MAX_RESTARTS) {
        shutdown(`${why} ${MAX_RESTARTS} times within ${RESTART_WINDOW_MS / 1000} s`);
        return;
      }
      restarts.set(name, [...recent, now]);
      say(`${why}: restarting it ...`);
      stack.restart(name).then(
        (c) => {
          if (stopping) return;
          say(`${name} restarted (pid ${c.pid})`);
          watch(name, c);
        },
        (e: unknown) => shutdown(`${name} could not be restarted: ${(e as Error).message}`),
      );
    });
    for (const name of Object.keys(stack.children) as ServiceName[]) watch(name, stack.children[name]);
  });
  say('stopped');
}

// eval's --json takes a file name (the other commands' --json is a switch).
const evalOptions = {
  ...options, json: { type: 'string' }, index: { type: 'string' }, queries: { type: 'string' }, truth: { type: 'string' },
  plot: { type: 'string' }, html: { type: 'string' }, groups: { type: 'string', multiple: true },
} as const;

const searchClientOf = (ws: Workspace, f: Flags) =>
  createSearchClient({ baseUrl: f['search-url'] ?? `http://127.0.0.1:${ws.ports.search}`, timeoutMs: 120_000 });

async function cmdExport(ws: Workspace, f: Flags) {
  if (!f.out) throw new Error(`export: --out FILE.jsonl is required\n\n${USAGE}`);
  const out = resolve(f.out);
  const { exported } = await exportCollection(searchClientOf(ws, f), out, (done, total) => process.stderr.write(`\rexport ${done}/${total}`));
  say(`\n${exported} vectors written to ${out}`);
}

async function cmdImport(ws: Workspace, f: Flags, arg: string | undefined) {
  if (!arg || !existsSync(arg)) throw new Error(`import: a JSONL file is required\n\n${USAGE}`);
  const r = await importCollection(searchClientOf(ws, f), resolve(arg), { onProgress: (n) => process.stderr.write(`\rimport ${n}`) });
  say(`\n${r.imported} of ${r.lines} lines imported (${r.inserted} new, ${r.replaced} replaced), ${r.bad.length} bad`);
  for (const b of r.bad.slice(0, 20)) say(`  ${b}`);
  if (f.json) process.stdout.write(`${JSON.stringify(r)}\n`);
}

async function main(argv: string[]) {
  const isEval = argv[0] === 'eval';
  const parsed = isEval ? parseArgs({ args: argv, options: evalOptions, allowPositionals: true }) : undefined;
  const { values: f, positionals } = parsed
    ? { values: { ...parsed.values, json: undefined } as Flags, positionals: parsed.positionals }
    : parseArgs({ args: argv, options, allowPositionals: true });
  const [cmd, arg] = positionals;
  if (f.help || !cmd) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const ws = workspace(f);
  let interrupted = false;
  const interrupt = () => {
    // A second Ctrl-C must not kill the CLI before its services are stopped.
    if (interrupted) return;
    interrupted = true;
    say('\ninterrupted: stopping ...');
    void stopActive().then(() => { clearStackRecord(ws.home, process.pid); process.exit(130); });
  };
  // Until `up` is ready (and for the whole of the other commands), Ctrl-C stops whatever
  // was started and exits 130.
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  switch (cmd) {
    case 'index': return cmdIndex(ws, f, arg);
    case 'query': return cmdQuery(ws, f, arg);
    case 'scan': return cmdScan(ws, f, arg);
    case 'up': return cmdUp(ws, f);
    case 'demo': return cmdDemo(ws, f, arg);
    case 'apply': process.exitCode = await cmdApply(arg, { moveTo: f['move-to'], delete: f.delete, yes: f.yes, home: ws.home }); return;
    case 'undo': process.exitCode = await cmdUndo(arg, Boolean(f['dry-run'])); return;
    case 'eval': {
      const e = parsed!.values;
      await cmdEval(ws, {
        index: e.index, queries: e.queries, truth: e.truth, json: e.json, plot: e.plot, html: e.html, groups: e.groups,
        concurrency: intFlag('concurrency', e.concurrency, 2), threshold: e.threshold ? Number(e.threshold) : 0.5,
      });
      return;
    }
    case 'export': return cmdExport(ws, f);
    case 'import': return cmdImport(ws, f, arg);
    default: throw new Error(`unknown command ${JSON.stringify(cmd)}\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(process.exitCode ?? 0),
  (e: unknown) => {
    say(`doppel: ${e instanceof AppError ? `${e.code}: ${e.message}` : (e as Error).message}`);
    void stopActive().finally(() => process.exit(1));
  },
);
