import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = process.env.DOPPEL_REPO_ROOT ?? fileURLToPath(new URL('../../..', import.meta.url));

export interface SearchProcess {
  child: ChildProcess;
  base: string;
  /** stdout lines (pino JSON) so far. */
  lines: string[];
  stop(): Promise<void>;
}

/**
 * Starts the real service (main.ts) on port 0 with `env`; resolves once it logged its port
 * and /readyz is 200 (`ready: false`: once it listens).
 */
export async function launchSearch(env: Record<string, string>, opts: { ready?: boolean } = {}): Promise<SearchProcess> {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', 'services/contextual-search/src/main.ts'], {
    cwd: root,
    env: { ...process.env, SERVER_PORT: '0', SERVER_HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const stderr: string[] = [];
  child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`no "listening" line within 120 s: ${stderr.join('')}`)), 120_000);
    createInterface({ input: child.stdout! }).on('line', (l) => {
      lines.push(l);
      const m = /"port":(\d+).*"msg":"listening"/.exec(l);
      if (m) {
        clearTimeout(deadline);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(deadline);
      reject(new Error(`service exited with ${code}: ${stderr.join('')} ${lines.join('\n')}`));
    });
  });
  const base = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  };
  if (opts.ready === false) return { child, base, lines, stop };
  const until = Date.now() + 120_000;
  for (;;) {
    const r = await fetch(`${base}/readyz`).catch(() => undefined);
    if (r?.status === 200) break;
    if (Date.now() > until) throw new Error('not ready within 120 s');
    await new Promise((res) => setTimeout(res, 50));
  }
  return { child, base, lines, stop };
}
