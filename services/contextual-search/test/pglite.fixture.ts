import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { sharedDatabase } from './shared-database.fixture.js';

const root = process.env.DOPPEL_REPO_ROOT ?? fileURLToPath(new URL('../../..', import.meta.url));
const script = 'services/contextual-search/scripts/pglite-server.ts';

export interface PgliteServer {
  url: string;
  port: number;
  child: ChildProcess;
  /** SIGTERM, then waits for the exit (the database files are closed cleanly). */
  stop(): Promise<void>;
}

/**
 * PGlite + pgvector over the PostgreSQL wire protocol, as its own process on a loopback
 * port (0 = any free one). `db` is a directory to keep the data across restarts, or
 * memory:// for a throw-away database.
 */
export async function startPglite(opts: { port?: number; db?: string } = {}): Promise<PgliteServer> {
  const child = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', script, '--port', String(opts.port ?? 0), '--db', opts.db ?? 'memory://', '--max-connections', '32'],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const stderr: string[] = [];
  child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const { port, url } = await new Promise<{ port: number; url: string }>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`PGlite did not listen within 180 s: ${stderr.join('')}`)), 180_000);
    createInterface({ input: child.stdout! }).on('line', (l) => {
      if (!l.startsWith('{')) return;
      clearTimeout(deadline);
      resolve(JSON.parse(l) as { port: number; url: string });
    });
    child.once('exit', (code) => {
      clearTimeout(deadline);
      reject(new Error(`PGlite exited with ${code}: ${stderr.join('')}`));
    });
  });
  return {
    url,
    port,
    child,
    stop: async () => {
      process.removeListener('exit', killOnExit);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}

const shared = sharedDatabase(() => startPglite());
/** The shared PGlite of this test process, and a table of the caller's own on it. */
export const pgvectorEnv = shared.env;
export const stopSharedPglite = shared.stop;
