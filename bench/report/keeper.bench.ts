/**
 * How often `doppel scan` suggests the original as the keeper of its group, on the dev set.
 * Every copy in the dev set was made from its original, so the original is what a person
 * cleaning the folder keeps; a copy suggested instead is counted against its transform.
 *
 * Usage (from the repo root):
 *   node --conditions=source --import tsx bench/report/keeper.bench.ts [--half calibration|held-back|all]
 *     [--transforms a,b,...] [--keep]   (--keep leaves the folder and report in the temp dir)
 *   ... --from DIR   re-chooses the keepers of a kept run's groups with the current rule, without re-scanning
 * Env: BENCH_DIR (default <repo>/../shared/bench/dev), MODEL_PATH (default the shared ImageNet model).
 * Everything it writes goes to a temp dir, never into the repository.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chooseKeeper, collectFacts, framedLinks, type ScanReport } from '@doppel/cli';
import { freePorts } from '@doppel/service-kit/testing';
import { devSplit } from '../matching/dev-split.bench.js';

// The transforms where the keeper question is hard: one picture holds the other (crops,
// zooms, captions, frames, rotated canvases) or has more pixels (thumbnails).
const DEFAULT_TRANSFORMS = ['border_text', 'screenshot', 'crop_center70', 'crop_offset60', 'crop_corner45', 'zoom_center40', 'crop_strip', 'rot10', 'rot20', 'thumb200', 'meme', 'sticker'];

const repo = fileURLToPath(new URL('../..', import.meta.url));
const { values: flags } = parseArgs({ options: { half: { type: 'string', default: 'all' }, transforms: { type: 'string' }, keep: { type: 'boolean' }, from: { type: 'string' } } });
const dev = process.env.BENCH_DIR ?? join(repo, '..', 'shared', 'bench', 'dev');
const modelPath = process.env.MODEL_PATH ?? join(repo, '..', 'shared', 'models', 'resnet18-imagenet-layer3.onnx');
if (!existsSync(modelPath)) throw new Error(`no model at ${modelPath} (set MODEL_PATH)`);
const transforms = flags.transforms ? flags.transforms.split(',') : DEFAULT_TRANSFORMS;
const truth = (JSON.parse(readFileSync(join(dev, 'truth.json'), 'utf8')) as { truth: Record<string, string | null> }).truth;
const index = readdirSync(join(dev, 'index'));
const halfOf = devSplit(index, truth);
const transformOf = (q: string) => q.replace(/\.[^.]+$/, '').split('__').pop()!;

const tmp = flags.from ?? mkdtempSync(join(tmpdir(), 'doppel-keeper-bench-'));
const folder = join(tmp, 'folder');
const originalOf = new Map<string, string>();
for (const [q, o] of Object.entries(truth)) {
  if (!o || !transforms.includes(transformOf(q))) continue;
  if (flags.half !== 'all' && halfOf(q) !== flags.half) continue;
  originalOf.set(q, o);
}
const t0 = performance.now();
let report: ScanReport;
if (flags.from) {
  report = JSON.parse(readFileSync(join(tmp, 'out', 'report.json'), 'utf8')) as ScanReport;
  const [{ facts }, framed] = await Promise.all([collectFacts(report.root, Object.keys(report.images)), framedLinks(report.root, report.groups)]);
  for (const g of report.groups) {
    const { keeper, reason } = chooseKeeper(g, facts, report.keep_rule, framed);
    g.keeper = keeper;
    g.keeper_reason = reason;
  }
} else {
  mkdirSync(folder, { recursive: true });
  for (const [q, o] of originalOf) {
    copyFileSync(join(dev, 'queries', q), join(folder, q));
    if (!existsSync(join(folder, o))) copyFileSync(join(dev, 'index', o), join(folder, o));
  }
  const [pipeline, encoder, search, matching] = (await freePorts(4)).map(String);
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, [join(repo, 'packages', 'cli', 'bin', 'doppel.mjs'), 'scan', folder, '--out', join(tmp, 'out', 'report.html'),
      '--port', pipeline!, '--encoder-port', encoder!, '--search-port', search!, '--matching-port', matching!],
    { env: { ...process.env, DOPPEL_HOME: join(tmp, 'home'), MODEL_PATH: modelPath }, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('exit', resolve);
  });
  if (code !== 0) throw new Error(`doppel scan exited with ${code}`);
  report = JSON.parse(readFileSync(join(tmp, 'out', 'report.json'), 'utf8')) as ScanReport;
}

const originals = new Set(originalOf.values());
let withOriginal = 0;
let keptOriginal = 0;
const wrong = new Map<string, number>();
const present = new Map<string, number>();
const reasons = new Map<string, number>();
const misses: string[] = [];
for (const g of report.groups) {
  const orig = g.members.filter((m) => originals.has(m));
  if (orig.length !== 1) continue; // no original, or two originals chained: not a keeper question
  withOriginal++;
  for (const m of g.members) if (m !== orig[0]) present.set(transformOf(m), (present.get(transformOf(m)) ?? 0) + 1);
  if (g.keeper === orig[0]) {
    keptOriginal++;
    const why = g.keeper_reason.split(';')[0]!.replace(/\(.*/, '').replace(/\d+/g, 'N').trim();
    reasons.set(why, (reasons.get(why) ?? 0) + 1);
  } else {
    const t = transformOf(g.keeper);
    wrong.set(t, (wrong.get(t) ?? 0) + 1);
    misses.push(`${g.keeper} kept over ${orig[0]}: ${g.keeper_reason}`);
  }
}
const pct = (a: number, b: number) => (b ? `${((a / b) * 100).toFixed(1)}%` : '-');
console.log(`keeper bench: half ${flags.half}, ${originals.size} originals, ${originalOf.size} copies (${transforms.length} transforms), ${flags.from ? 're-chosen' : 'scan'} ${((performance.now() - t0) / 1000).toFixed(0)} s`);
console.log(`groups with their original: ${withOriginal} of ${report.groups.length}; original suggested as keeper: ${keptOriginal} (${pct(keptOriginal, withOriginal)})`);
console.log('| transform | copies grouped with their original | suggested as keeper instead |');
console.log('| --- | ---: | ---: |');
for (const t of transforms) console.log(`| ${t} | ${present.get(t) ?? 0} | ${wrong.get(t) ?? 0} |`);
console.log('first reason given when the original was kept:');
const missLines = () => { console.log('copies suggested instead of their original:'); for (const m of misses) console.log(`  ${m}`); };
for (const [why, n] of [...reasons].sort((a, b) => b[1] - a[1])) console.log(`  ${n}  ${why}`);
missLines();
if (flags.keep || flags.from) console.log(`kept: ${tmp}`);
else rmSync(tmp, { recursive: true, force: true });
