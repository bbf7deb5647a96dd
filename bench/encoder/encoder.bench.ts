/**
 * Encoder throughput on the dev benchmark images with the real model. Prints figures.
 *   node --conditions=source --import tsx bench/encoder/encoder.bench.ts
 * Env: BENCH_DIR (../shared/bench/dev), MODEL_PATH (models/resnet18.onnx), BENCH_N (images, 320),
 * INTRA_OP_THREADS (2), SKIP_OPENCV=1.
 * Other work on the machine skews every figure: run it more than once.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { decodeImage, imageTensors, inspectModel } from '@doppel/image-encoder';
import pLimit from 'p-limit';
import { figure } from '../figures.record.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const dir = resolve(process.env.BENCH_DIR ?? join(repo, '..', 'shared', 'bench', 'dev'));
const modelPath = resolve(process.env.MODEL_PATH ?? join(repo, 'models', 'resnet18.onnx'));
const N = Number(process.env.BENCH_N ?? 320);
const threads = Number(process.env.INTRA_OP_THREADS ?? 2);

const all = [
  ...readdirSync(join(dir, 'index')).sort().map((f) => `index/${f}`),
  ...readdirSync(join(dir, 'queries')).sort().map((f) => `queries/${f}`),
];
// Spread over the whole set (originals and every transform), not the first N files.
const files = Array.from({ length: Math.min(N, all.length) }, (_, i) => all[Math.floor((i * all.length) / Math.min(N, all.length))]!);
const buffers = files.map((f) => readFileSync(join(dir, f)));
const rate = (n: number, ms: number) => (n / (ms / 1000)).toFixed(1);
/**
 * Wall-clock rates swing with whatever else runs on the machine, so every stage also
 * reports its CPU cost per image (all threads of the process), which contention barely moves.
 */
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const procCpuMs = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime, USER_HZ = 100
};
const perImg = (ms: number, n: number) => `${(ms / n).toFixed(1)} CPU-ms/img`;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;


figure('encoder.images', 'images (spread over index/ and queries/)', files.length);
console.log(`images: ${files.length} from ${dir}; model ${modelPath}; intra-op threads ${threads}`);

// 1. sharp only: decode + EXIF + resize + normalise, as the service does it (4 at a time).
const layout = inspectModel(readFileSync(modelPath));
const pre = { size: layout.inputSize ?? 224, mode: (process.env.RESIZE_MODE === 'whole' ? 'whole' : 'center-crop') as 'whole' | 'center-crop', maxPixels: 50_000_000 };
await pLimit(4).map(buffers.slice(0, 16), (b) => decodeImage(b, pre));
let t = performance.now();
const elu0 = performance.eventLoopUtilization();
let c0 = cpuMs();
const decoded = await pLimit(4).map(buffers, (b) => decodeImage(b, pre));
const decodeRate = files.length / ((performance.now() - t) / 1000);
const decodeCpu = (cpuMs() - c0) / files.length;
// How much of the main thread decoding takes: sharp works on libuv threads.
const elu = performance.eventLoopUtilization(elu0).utilization;
// Per-pixel JS (normalise, 8 orientations) runs in the inference worker; its cost:
t = performance.now();
const tensors = decoded.map((rgb) => imageTensors(rgb, pre.size, false));
const normMs = (performance.now() - t) / decoded.length;
t = performance.now();
for (const rgb of decoded.slice(0, 50)) imageTensors(rgb, pre.size, true);
const orientMs = (performance.now() - t) / 50;
figure('encoder.decode.img_per_s', 'sharp decode + EXIF + resize, 4 at a time', decodeRate, 'img/s');
console.log(`sharp decode+resize: ${decodeRate.toFixed(1)} img/s, ${decodeCpu.toFixed(1)} CPU-ms/img (event loop busy ${(100 * elu).toFixed(0)}% meanwhile)`);
console.log(`worker-side JS per image: normalise ${normMs.toFixed(2)} ms, normalise + 8 orientations ${orientMs.toFixed(2)} ms`);

// 2. raw onnxruntime on pre-built tensors, same session options as the worker.
const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
const plane = 3 * pre.size * pre.size;
const rawRun = async (batch: number) => {
  const inputs: Float32Array[] = [];
  for (let i = 0; i + batch <= tensors.length; i += batch) {
    const x = new Float32Array(batch * plane);
    for (let k = 0; k < batch; k++) x.set(tensors[i + k]!, k * plane);
    inputs.push(x);
  }
  await session.run({ [layout.inputName]: new ort.Tensor('float32', inputs[0]!, [batch, 3, pre.size, pre.size]) });
  const t0 = performance.now();
  const k0 = cpuMs();
  for (const x of inputs) await session.run({ [layout.inputName]: new ort.Tensor('float32', x, [batch, 3, pre.size, pre.size]) });
  const n = inputs.length * batch;
  return { rate: n / ((performance.now() - t0) / 1000), cpu: (cpuMs() - k0) / n };
};
const raw16 = await rawRun(16);
const raw1 = await rawRun(1);
await session.release();
figure('encoder.raw.batch16.img_per_s', 'raw onnxruntime session.run, batch 16', raw16.rate, 'img/s');
figure('encoder.raw.batch1.img_per_s', 'raw onnxruntime session.run, batch 1', raw1.rate, 'img/s');
console.log(`raw session.run: batch 16 ${raw16.rate.toFixed(1)} img/s (${raw16.cpu.toFixed(1)} CPU-ms/img), batch 1 ${raw1.rate.toFixed(1)} img/s (${raw1.cpu.toFixed(1)} CPU-ms/img)`);
const serial = 1 / (1 / decodeRate + 1 / raw16.rate);
const serialCpu = decodeCpu + raw16.cpu;
figure('encoder.series.img_per_s', 'decode + inference in series, 1/(1/decode + 1/inference)', serial, 'img/s');
console.log(`decode+inference in series: ${serial.toFixed(1)} img/s; target 0.85x = ${(0.85 * serial).toFixed(1)} img/s; CPU ${serialCpu.toFixed(1)} ms/img, target <= ${(serialCpu / 0.85).toFixed(1)}`);

// 3. the service over HTTP, in its own process like in production.
const port = await new Promise<number>((res) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = (s.address() as { port: number }).port;
    s.close(() => res(p));
  });
});
const server = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', join(repo, 'services/image-encoder/src/main.ts')], {
  env: { ...process.env, SERVER_PORT: String(port), SERVER_HOST: '127.0.0.1', IMAGES_ROOT: dir, MODEL_PATH: modelPath, LOG_LEVEL: 'warn', QUEUE_LIMIT: '4096',
    // Throughput, not admission, is measured here: on a loaded machine 16 clients must wait, not get 429.
    ADMIT_WAIT_MS: '120000', ADMIT_QUEUE: '1024', INTRA_OP_THREADS: String(threads) },
  stdio: ['ignore', 'inherit', 'inherit'],
});
// The server is ours: never leave it behind, even when the benchmark is interrupted.
process.on('exit', () => server.kill('SIGTERM'));
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
const base = `http://127.0.0.1:${port}`;
try {
  for (;;) {
    const ok = await fetch(`${base}/readyz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (server.exitCode !== null) throw new Error('encoder exited');
    await new Promise((r) => setTimeout(r, 200));
  }
  const post = async (path: string, body: unknown) => {
    const r = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const j = (await r.json()) as { global_status: number; response: { results?: Array<{ error_code?: string }> } };
    if (r.status !== 200 || j.response.results?.some((x) => x.error_code)) throw new Error(`${path}: ${r.status} ${JSON.stringify(j).slice(0, 200)}`);
  };
  await pLimit(8).map(files.slice(0, 32), (f) => post('/encode', { relative_path: f }));

  for (const [size, inflight] of [[32, 2], [64, 1]] as const) {
    const batches: string[][] = [];
    for (let i = 0; i < files.length; i += size) batches.push(files.slice(i, i + size));
    t = performance.now();
    c0 = procCpuMs(server.pid!);
    await pLimit(inflight).map(batches, (b) => post('/encode/batch', { items: b.map((f) => ({ relative_path: f })) }));
    figure(`encoder.http.batch${size}.img_per_s`, `HTTP /encode/batch, ${size} items, ${inflight} in flight`, files.length / ((performance.now() - t) / 1000), 'img/s');
    console.log(`HTTP /encode/batch (${size} items, ${inflight} in flight): ${rate(files.length, performance.now() - t)} img/s, server ${perImg(procCpuMs(server.pid!) - c0, files.length)}`);
  }
  for (const conc of [8, 16]) {
    t = performance.now();
    c0 = procCpuMs(server.pid!);
    await pLimit(conc).map(files, (f) => post('/encode', { relative_path: f }));
    figure(`encoder.http.c${conc}.img_per_s`, `HTTP /encode, ${conc} concurrent clients`, files.length / ((performance.now() - t) / 1000), 'img/s');
    console.log(`HTTP /encode, ${conc} concurrent: ${rate(files.length, performance.now() - t)} img/s, server ${perImg(procCpuMs(server.pid!) - c0, files.length)}`);
  }
  const lat: number[] = [];
  for (const f of files.slice(0, 100)) {
    const t0 = performance.now();
    await post('/encode', { relative_path: f });
    lat.push(performance.now() - t0);
  }
  figure('encoder.single.p50_ms', 'single /encode (no orientations): p50', pct(lat, 50), 'ms');
  figure('encoder.single.p99_ms', 'single /encode (no orientations): p99', pct(lat, 99), 'ms');
  console.log(`single /encode, sequential (${lat.length}): p50 ${pct(lat, 50).toFixed(1)} ms, p99 ${pct(lat, 99).toFixed(1)} ms`);
  const latO: number[] = [];
  for (const f of files.slice(0, 50)) {
    const t0 = performance.now();
    await post('/encode', { relative_path: f, orientations: 'all' });
    latO.push(performance.now() - t0);
  }
  figure('encoder.single_all.p50_ms', 'single /encode, all 8 orientations: p50', pct(latO, 50), 'ms');
  figure('encoder.single_all.p99_ms', 'single /encode, all 8 orientations: p99', pct(latO, 99), 'ms');
  console.log(`single /encode orientations=all (${latO.length}): p50 ${pct(latO, 50).toFixed(1)} ms, p99 ${pct(latO, 99).toFixed(1)} ms`);
} finally {
  server.kill('SIGTERM');
}

// 4. OpenCV dnn on the same model file and images.
if (process.env.SKIP_OPENCV !== '1') {
  const list = join(mkdtempSync(join(tmpdir(), 'doppel-bench-')), 'images.txt');
  writeFileSync(list, files.map((f) => join(dir, f)).join('\n'));
  const r = spawnSync('/usr/bin/python3', [join(repo, 'bench/encoder/opencv-dnn.bench.py'), modelPath, list, String(threads), '16'], { encoding: 'utf8' });
  if (r.status === 0) {
    console.log(`OpenCV dnn: ${r.stdout.trim()}`);
    const o = JSON.parse(r.stdout) as { full_img_s: number; inference_only_img_s: number };
    figure('encoder.opencv_dnn.img_per_s', 'OpenCV dnn (python3-opencv), decode + inference, same model and images', o.full_img_s, 'img/s');
    figure('encoder.opencv_dnn.inference_img_per_s', 'OpenCV dnn, inference only', o.inference_only_img_s, 'img/s');
  }
  else console.log(`OpenCV dnn failed: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`);
}
