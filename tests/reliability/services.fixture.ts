import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { validate, ErrorEnvelope } from '@doppel/schemas';
import { opencvRuntimeEnv } from '@doppel/cli';

/*
 * The real services as processes for the reliability suite: each on port 0 (it logs the
 * port it got), its output kept for the failure message, its RSS read from /proc.
 */
export const REPO_ROOT = process.env.DOPPEL_REPO_ROOT ?? fileURLToPath(new URL('../..', import.meta.url));

/** Long variants (bench/reliability sets it): more runs, longer load, more kill rounds. */
export const LONG = process.env.RELIABILITY_LONG === '1';

export type ServiceName = 'image-encoder' | 'contextual-search' | 'instance-matching' | 'pipeline';

export interface Service {
  name: ServiceName;
  child: ChildProcess;
  base: string;
  port: number;
  /** Last lines of its output, for failure messages. */
  tail(): string;
  alive(): boolean;
  /** Resident memory in MB, from /proc/<pid>/status. */
  rssMb(): number;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const OPENCV_ENV = opencvRuntimeEnv(REPO_ROOT);

export function rssMbOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}

/** Starts one service's production entry point; resolves once /readyz answers 200. */
export async function launchService(name: ServiceName, env: Record<string, string>, readyMs = 120_000): Promise<Service> {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', join('services', name, 'src', 'main.ts')], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...OPENCV_ENV, SERVER_HOST: '127.0.0.1', SERVER_PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const keep = (l: string) => {
    lines.push(l);
    if (lines.length > 200) lines.shift();
  };
  child.stderr!.setEncoding('utf8').on('data', (d: string) => d.split('\n').forEach(keep));
  const tail = () => lines.slice(-25).join('\n');
  const port = await new Promise<number>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`${name}: no "listening" line within ${readyMs} ms:\n${tail()}`)), readyMs);
    createInterface({ input: child.stdout! }).on('line', (l) => {
      keep(l);
      const m = /"port":(\d+).*"msg":"listening"/.exec(l);
      if (m) {
        clearTimeout(deadline);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(deadline);
      reject(new Error(`${name} exited (${code ?? signal}) before listening:\n${tail()}`));
    });
  });
  const base = `http://127.0.0.1:${port}`;
  const until = Date.now() + readyMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited before it was ready:\n${tail()}`);
    const r = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(5000) }).catch(() => undefined);
    if (r?.status === 200) break;
    if (Date.now() > until) throw new Error(`${name} not ready within ${readyMs} ms:\n${tail()}`);
    // Poll interval of a readiness wait.
    await new Promise((res) => setTimeout(res, 100));
  }
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    name, child, base, port, tail, alive,
    rssMb: () => rssMbOf(child.pid),
    async stop(signal = 'SIGTERM') {
      if (!alive()) return;
      const exited = new Promise<void>((res) => child.once('exit', () => res()));
      child.kill(signal);
      const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(force);
    },
  };
}

export interface Stack {
  encoder: Service;
  search: Service;
  matcher: Service;
  pipeline: Service;
  all: Service[];
  stop(): Promise<void>;
}

/** The fingerprint size follows the model: ask the encoder once, before search starts. */
async function probeDimension(encoder: Service): Promise<number> {
  // 2x2 red PNG.
  const png = 'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEElEQVR4nGP4z8AARAwQCgAf7gP9i18U1AAAAABJRU5ErkJggg==';
  const r = await send(encoder.base, 'POST', '/encode', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image_base64: png }) });
  const dim = (r.body as { response?: { dimension?: number } }).response?.dimension;
  if (r.status !== 200 || typeof dim !== 'number') throw new Error(`encoder probe failed: ${r.status} ${JSON.stringify(r.body)}`);
  return dim;
}

/** The four services wired together on an image root, with extra env per service. */
export async function launchStack(opts: {
  imagesRoot: string;
  stateDir: string;
  modelPath: string;
  env?: Partial<Record<ServiceName, Record<string, string>>>;
}): Promise<Stack & { dimension: number }> {
  const started: Service[] = [];
  const stop = async () => {
    for (const s of started.reverse()) await s.stop();
  };
  try {
    const [encoder, matcher] = await Promise.all([
      launchService('image-encoder', { IMAGES_ROOT: opts.imagesRoot, MODEL_PATH: opts.modelPath, ...opts.env?.['image-encoder'] }),
      launchService('instance-matching', { SOURCE_DIR: opts.imagesRoot, TARGET_DIR: opts.imagesRoot, ...opts.env?.['instance-matching'] }),
    ]);
    started.push(encoder, matcher);
    const dimension = await probeDimension(encoder);
    const search = await launchService('contextual-search', { LOCATION: join(opts.stateDir, 'embeddings'), DIMENSION: String(dimension), ...opts.env?.['contextual-search'] });
    started.push(search);
    const pipeline = await launchService('pipeline', {
      IMAGES_ROOT: opts.imagesRoot, ENCODER_URL: encoder.base, SEARCH_URL: search.base, MATCHING_URL: matcher.base, ...opts.env?.pipeline,
    });
    started.push(pipeline);
    return { encoder, search, matcher, pipeline, all: [encoder, search, matcher, pipeline], stop, dimension };
  } catch (e) {
    await stop();
    throw e;
  }
}

export interface Reply {
  status: number;
  retryAfter: string | null;
  body: unknown;
  ms: number;
}

/** One raw request; the reply body parsed as JSON when it is JSON. */
export async function send(base: string, method: string, path: string, init: { headers?: Record<string, string>; body?: string | Uint8Array | FormData; timeoutMs?: number } = {}): Promise<Reply> {
  const t0 = performance.now();
  const r = await fetch(base + path, {
    method, headers: init.headers, body: init.body, signal: AbortSignal.timeout(init.timeoutMs ?? 30_000),
  } as RequestInit);
  const text = await r.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* kept as text: the envelope check below fails on it */ }
  return { status: r.status, retryAfter: r.headers.get('retry-after'), body, ms: performance.now() - t0 };
}

/** Why a reply is not a proper envelope, or undefined when it is one. */
export function envelopeProblem(r: Reply): string | undefined {
  const b = r.body as { global_status?: unknown; error_message?: unknown };
  if (typeof b !== 'object' || b === null) return `not JSON: ${String(r.body).slice(0, 120)}`;
  if (r.status < 400) return b.global_status === 1 && b.error_message === '' ? undefined : `success without the success envelope: ${JSON.stringify(b).slice(0, 200)}`;
  const v = validate(ErrorEnvelope, b);
  return v.ok ? undefined : `error without the error envelope (${v.error.message}): ${JSON.stringify(b).slice(0, 200)}`;
}

/** One row of the reliability table (README): printed, and appended to RELIABILITY_REPORT when set. */
export interface ReportRow {
  check: string;
  tried: number;
  rejected: number;
  errors5xx: number;
  crashes: number;
  lostWrites: number | '';
  rssBeforeMb: number | '';
  rssAfterMb: number | '';
  note?: string;
}

export function report(row: ReportRow): string {
  if (process.env.RELIABILITY_REPORT) appendFileSync(process.env.RELIABILITY_REPORT, `${JSON.stringify(row)}\n`);
  return `${row.check}: tried ${row.tried}, rejected ${row.rejected}, 5xx ${row.errors5xx}, crashes ${row.crashes}, lost writes ${row.lostWrites}, RSS ${row.rssBeforeMb} -> ${row.rssAfterMb} MB${row.note ? ` (${row.note})` : ''}`;
}

/** One endpoint's fuzz counts: printed by bench/reliability as the per-endpoint table. */
export interface FuzzRow {
  endpoint: string;
  runs: number;
  ok2xx: number;
  rejected4xx: number;
  errors5xx: number;
  noAnswer: number;
  crashes: number;
}

export function reportFuzz(row: FuzzRow): void {
  if (process.env.RELIABILITY_REPORT) appendFileSync(process.env.RELIABILITY_REPORT, `${JSON.stringify({ kind: 'fuzz', ...row })}\n`);
}

/** Timings of one overload run: measured by the suite, printed by bench/reliability, never asserted. */
export interface TimingRow {
  target: string;
  load1: number;
  cores: number;
  connections: number;
  seconds: number;
  ok: number;
  refused: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  healthzP50Ms: number;
  healthzP99Ms: number;
  healthzMaxMs: number;
  readyzP50Ms: number;
  readyzP99Ms: number;
  readyzMaxMs: number;
  baselineMs: number;
  /** From the end of the storm until a lone request is about as fast as before; null: not within 10 s. */
  recoveredMs: number | null;
}

export function reportTiming(row: TimingRow): void {
  if (process.env.RELIABILITY_REPORT) appendFileSync(process.env.RELIABILITY_REPORT, `${JSON.stringify({ kind: 'timing', ...row })}\n`);
}

/** One more measured time (a slow body dropped, a frozen downstream's 504, the slowest bomb answer), printed by bench/reliability. */
export function reportFigure(what: string, ms: number, against: string): void {
  if (process.env.RELIABILITY_REPORT) appendFileSync(process.env.RELIABILITY_REPORT, `${JSON.stringify({ kind: 'figure', what, ms: Math.round(ms), against, load1: loadavg()[0] })}\n`);
}
