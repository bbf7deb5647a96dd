/**
 * onnxruntime's intra-op spinning on and off, with the real model and the encoder's own
 * session options, alternated round by round (the machine is shared):
 *   node --conditions=source --import tsx bench/encoder/spinning.bench.ts
 * Per setting and batch size: wall ms per image and CPU ms per image of this process
 * (process.cpuUsage: the spinning threads' time counts). Each run is followed by a short
 * pause, as between a service's requests: that is where idle threads spin.
 * Env: MODEL_PATH (models/resnet18.onnx), BENCH_ROUNDS (3), BENCH_PAUSE_MS (3).
 */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus, loadavg } from 'node:os';
import * as ort from 'onnxruntime-node';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const modelPath = resolve(process.env.MODEL_PATH ?? join(repo, 'models', 'resnet18.onnx'));
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const pauseMs = Number(process.env.BENCH_PAUSE_MS ?? 3);
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(`${modelPath}\n${cpus().length} cores; load average at start ${load()}`);
const sessions = Object.fromEntries(await Promise.all(['on', 'off'].map(async (k) => [k, await ort.InferenceSession.create(modelPath, {
  intraOpNumThreads: 2, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
  extra: { session: { intra_op: { allow_spinning: k === 'on' ? '1' : '0' } } },
})]))) as Record<'on' | 'off', ort.InferenceSession>;
const input = sessions.on.inputNames[0]!;
const figures: Record<string, { wall: number[]; cpu: number[] }> = {};
for (let r = 0; r < rounds; r++) {
  for (const batch of [1, 8, 16]) {
    const x = new ort.Tensor('float32', Float32Array.from({ length: batch * 3 * 224 * 224 }, (_, i) => Math.sin(i) * 1.5), [batch, 3, 224, 224]);
    for (const k of ['on', 'off'] as const) {
      const s = sessions[k];
      await s.run({ [input]: x });
      const n = batch === 1 ? 20 : 3;
      const u0 = process.cpuUsage();
      let wall = 0;
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await s.run({ [input]: x });
        wall += performance.now() - t0;
        await new Promise((ok) => setTimeout(ok, pauseMs));
      }
      const u = process.cpuUsage(u0);
      const f = (figures[`${k} ${batch}`] ??= { wall: [], cpu: [] });
      f.wall.push(wall / n / batch);
      f.cpu.push((u.user + u.system) / 1000 / n / batch);
    }
  }
}
console.log('| spinning | batch | wall ms/img (median of rounds) | CPU ms/img |\n| --- | ---: | ---: | ---: |');
for (const [key, f] of Object.entries(figures)) {
  const [k, batch] = key.split(' ');
  console.log(`| ${k} | ${batch} | ${median(f.wall).toFixed(1)} | ${median(f.cpu).toFixed(1)} |`);
}
console.log(`load average at end ${load()}`);
