import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { createEncoderClient } from '@doppel/clients';

export const SERVICES = ['image-encoder', 'contextual-search', 'instance-matching', 'pipeline'] as const;
export type ServiceName = (typeof SERVICES)[number];

export interface StackPorts { pipeline: number; encoder: number; search: number; matching: number }

export interface StackOptions {
  repoRoot: string;
  imagesRoot: string;
  /** Holds embeddings/ (contextual-search LOCATION) and logs/. */
  stateDir: string;
  modelPath: string;
  ports: StackPorts;
  host?: string;
  logLevel?: string;
  /** Extra env per service (tests tune thresholds or worker counts). */
  env?: Partial<Record<ServiceName, Record<string, string>>>;
  readyTimeoutMs?: number;
  /**
   * Run each service's compiled `dist/main.js` with plain node, as its image does (after
   * `pnpm build`), instead of its TypeScript source through tsx.
   */
  fromDist?: boolean;
  /** With fromDist: the folder holding each service's dist/ (a `pnpm deploy` output); services/<name> by default. */
  serviceDirs?: Partial<Record<ServiceName, string>>;
}

export interface Stack {
  urls: Record<ServiceName, string>;
  children: Record<ServiceName, ChildProcess>;
  dimension: number;
  /** SIGTERM to each child (pipeline first), SIGKILL after the grace period. */
  stop(): Promise<void>;
  /** Starts one service again with the env it had (after it died); resolves once it is ready. */
  restart(svc: ServiceName): Promise<ChildProcess>;
}

export class StackError extends Error {}

/** The node arguments that start a service: its source through tsx, or its build output. */
/**
 * The variables the OpenCV binding reads when it loads (opencv4nodejs links the system
 * OpenCV; without them it looks for a private build), from setup.sh, the one place that
 * knows the build. A user's own values win.
 */
export function opencvRuntimeEnv(repoRoot: string): Record<string, string> {
  const r = spawnSync('bash', [join(repoRoot, 'scripts', 'setup.sh'), '--print-env'], { encoding: 'utf8' });
  if (r.status !== 0) throw new StackError(`scripts/setup.sh --print-env failed: ${r.stderr || r.error?.message}`);
  const fromSetup = JSON.parse(r.stdout) as Record<string, string>;
  return Object.fromEntries(Object.entries(fromSetup).map(([k, v]) => [k, process.env[k] ?? v]));
}

export function entryArgs(repoRoot: string, svc: ServiceName, fromDist = false, dir = join(repoRoot, 'services', svc)): string[] {
  return fromDist
    ? [join(dir, 'dist', 'main.js')]
    : ['--conditions=source', '--import', 'tsx', join(repoRoot, 'services', svc, 'src', 'main.ts')];
}

function tailOf(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Waits for GET /readyz to answer 200, failing early if the process dies. */
export async function waitReady(url: string, child: ChildProcess | undefined, deadlineMs: number, logFile?: string): Promise<void> {
  const end = Date.now() + deadlineMs;
  let last = 'no answer';
  for (;;) {
    if (child && child.exitCode !== null) {
      throw new StackError(`${url} exited with code ${child.exitCode} before it was ready${logFile ? `:\n${tailOf(logFile)}` : ''}`);
    }
    try {
      const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) });
      if (r.ok) return;
      last = `HTTP ${r.status}: ${(await r.text()).slice(0, 300)}`;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > end) throw new StackError(`${url} not ready after ${deadlineMs} ms (${last})${logFile ? `:\n${tailOf(logFile)}` : ''}`);
    // Poll interval of a readiness wait, not a sleep standing in for synchronisation.
    await new Promise<void>((r) => setTimeout(r, 150));
  }
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** The fingerprint size follows the model: ask the encoder once, before search starts. */
async function probeDimension(encoderUrl: string): Promise<number> {
  const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 120, g: 60, b: 30 } } }).png().toBuffer();
  const r = await createEncoderClient({ baseUrl: encoderUrl, timeoutMs: 60_000 }).encode({ image_base64: png.toString('base64') });
  return r.dimension;
}

/**
 * Starts the four services as child processes (the same entry points as production,
 * run from source) and resolves once every /readyz answers.
 */
export async function startStack(opts: StackOptions): Promise<Stack> {
  const host = opts.host ?? '127.0.0.1';
  const logDir = join(opts.stateDir, 'logs');
  const embeddings = join(opts.stateDir, 'embeddings');
  mkdirSync(logDir, { recursive: true });
  mkdirSync(embeddings, { recursive: true });
  const urls: Record<ServiceName, string> = {
    'image-encoder': `http://${host}:${opts.ports.encoder}`,
    'contextual-search': `http://${host}:${opts.ports.search}`,
    'instance-matching': `http://${host}:${opts.ports.matching}`,
    pipeline: `http://${host}:${opts.ports.pipeline}`,
  };
  const children: Partial<Record<ServiceName, ChildProcess>> = {};
  const logs: Partial<Record<ServiceName, string>> = {};
  const base = { SERVER_HOST: host, LOG_LEVEL: opts.logLevel ?? 'warn' };
  const envs: Partial<Record<ServiceName, Record<string, string>>> = {};
  const start = (svc: ServiceName, env: Record<string, string>, flags: 'w' | 'a' = 'w') => {
    const logFile = join(logDir, `${svc}.log`);
    logs[svc] = logFile;
    envs[svc] = env;
    // A restarted service appends, so the log of the run that died is kept.
    const out = createWriteStream(logFile, { flags });
    const child = spawn(process.execPath, entryArgs(opts.repoRoot, svc, opts.fromDist, opts.serviceDirs?.[svc]), {
      cwd: opts.repoRoot,
      env: { ...process.env, ...base, ...env, ...opts.env?.[svc] },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.pipe(out, { end: false });
    child.stderr?.pipe(out, { end: false });
    child.once('exit', () => out.end());
    children[svc] = child;
    return child;
  };
  const stop = async () => {
    for (const svc of [...SERVICES].reverse()) {
      const c = children[svc];
      if (c) await stopChild(c, 10_000);
    }
  };
  const deadline = opts.readyTimeoutMs ?? 90_000;
  try {
    const encoder = start('image-encoder', { SERVER_PORT: String(opts.ports.encoder), IMAGES_ROOT: opts.imagesRoot, MODEL_PATH: opts.modelPath });
    const matcher = start('instance-matching', {
      ...opencvRuntimeEnv(opts.repoRoot),
      SERVER_PORT: String(opts.ports.matching), SOURCE_DIR: opts.imagesRoot, TARGET_DIR: opts.imagesRoot,
    });
    await waitReady(urls['image-encoder'], encoder, deadline, logs['image-encoder']);
    const dimension = await probeDimension(urls['image-encoder']);
    const search = start('contextual-search', { SERVER_PORT: String(opts.ports.search), LOCATION: embeddings, DIMENSION: String(dimension) });
    const pipeline = start('pipeline', {
      SERVER_PORT: String(opts.ports.pipeline), IMAGES_ROOT: opts.imagesRoot,
      ENCODER_URL: urls['image-encoder'], SEARCH_URL: urls['contextual-search'], MATCHING_URL: urls['instance-matching'],
    });
    await Promise.all([
      waitReady(urls['contextual-search'], search, deadline, logs['contextual-search']),
      waitReady(urls['instance-matching'], matcher, deadline, logs['instance-matching']),
    ]);
    await waitReady(urls.pipeline, pipeline, deadline, logs.pipeline);
    const restart = async (svc: ServiceName) => {
      const child = start(svc, envs[svc] ?? {}, 'a');
      await waitReady(urls[svc], child, deadline, logs[svc]);
      return child;
    };
    // `children` is this record itself, so a restarted child is the one stop() stops.
    return { urls, children: children as Record<ServiceName, ChildProcess>, dimension, stop, restart };
  } catch (e) {
    await stop();
    throw e;
  }
}
