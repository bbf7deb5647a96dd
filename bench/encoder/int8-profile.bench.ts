/**
 * Where the time of the fp32 and int8 encoders goes, per node, from onnxruntime's own profiler:
 *   node --conditions=source --import tsx bench/encoder/int8-profile.bench.ts
 * Prints, per model, the kernel time per image of each op type and of the stem (the first
 * Conv) beside the other convolutions, and their fp32/int8 ratio. Profiling adds a little
 * time to every node, so read the shares and ratios, not the absolute times (int8.bench.ts
 * measures the speed). Env: MODEL_PATH (models/resnet18.onnx; int8 beside it), BENCH_BATCH
 * (16), BENCH_RUNS (4), BENCH_THREADS (1: one core, the figure the other load moves least).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { int8PathFor } from '@doppel/image-encoder';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const fp32Path = resolve(process.env.MODEL_PATH ?? join(repo, 'models', 'resnet18.onnx'));
const batch = Number(process.env.BENCH_BATCH ?? 16);
const runs = Number(process.env.BENCH_RUNS ?? 4);
const threads = Number(process.env.BENCH_THREADS ?? 1);
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

interface ProfileEvent { cat: string; name: string; dur: number; args?: { op_name?: string } }

/** Kernel microseconds per image: by op type, and the first Conv (the 7x7 stem on the 3 input channels) apart. */
async function profile(path: string): Promise<{ byOp: Map<string, number>; stem: number; total: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'doppel-ort-profile-'));
  try {
    const s = await ort.InferenceSession.create(path, {
      intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
      enableProfiling: true, profileFilePrefix: join(dir, 'p'),
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    const x = new ort.Tensor('float32', Float32Array.from({ length: batch * 3 * 224 * 224 }, (_, i) => Math.sin(i) * 1.5), [batch, 3, 224, 224]);
    for (let i = 0; i < runs + 1; i++) await s.run({ [s.inputNames[0]!]: x });
    s.endProfiling();
    await s.release();
    const file = readdirSync(dir).find((f) => f.endsWith('.json'));
    if (!file) throw new Error(`onnxruntime wrote no profile under ${dir}`);
    const events = (JSON.parse(readFileSync(join(dir, file), 'utf8')) as ProfileEvent[]).filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
    const per = (runs + 1) * batch;
    const byOp = new Map<string, number>();
    let first: string | undefined;
    let stem = 0;
    let total = 0;
    for (const e of events) {
      const op = e.args?.op_name ?? '?';
      byOp.set(op, (byOp.get(op) ?? 0) + e.dur / per);
      total += e.dur / per;
      if (/Conv$/.test(op)) first ??= e.name;
      if (e.name === first) stem += e.dur / per;
    }
    return { byOp, stem, total };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`batch ${batch}, ${threads} intra-op thread(s), ${runs + 1} runs profiled; load ${load()}`);
const p = { fp32: await profile(fp32Path), int8: await profile(int8PathFor(fp32Path)) };
const ms = (us: number) => (us / 1000).toFixed(2);
for (const [name, r] of Object.entries(p)) {
  const ops = [...r.byOp].sort((a, b) => b[1] - a[1]).map(([op, us]) => `${op} ${ms(us)} (${((100 * us) / r.total).toFixed(1)}%)`);
  console.log(`${name}: ${ms(r.total)} ms/img of kernels: ${ops.join(', ')}; stem (first Conv) ${ms(r.stem)} ms/img (${((100 * r.stem) / r.total).toFixed(1)}%)`);
}
const convs = (r: typeof p.fp32) => [...r.byOp].filter(([op]) => /Conv$/.test(op)).reduce((s, [, us]) => s + us, 0);
const other = (r: typeof p.fp32) => r.total - convs(r);
console.log(`fp32/int8 kernel time: all ${(p.fp32.total / p.int8.total).toFixed(2)}x; stem ${(p.fp32.stem / p.int8.stem).toFixed(2)}x; `
  + `the other convolutions ${((convs(p.fp32) - p.fp32.stem) / (convs(p.int8) - p.int8.stem)).toFixed(2)}x; everything but convolutions ${ms(other(p.fp32))} vs ${ms(other(p.int8))} ms/img; load ${load()}`);
