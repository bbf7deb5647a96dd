import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '@doppel/service-kit/testing';
import { sharedDatabase } from './shared-database.fixture.js';

/**
 * A real PostgreSQL server with the real pgvector extension, beside PGlite: the backend's
 * contract runs on both, since PGlite (single-threaded WASM, one session at a time behind
 * pglite-socket) cannot show what a server with many backends and its own locking does.
 * `bash scripts/setup.sh` installs PostgreSQL 15 and builds pgvector; without them the
 * suites that need a server say so and skip.
 */
const BIN = '/usr/lib/postgresql/15/bin';
const SHARE = '/usr/share/postgresql/15/extension';

/** Why a server cannot be started here, or undefined when it can. */
export const postgresMissing: string | undefined = !existsSync(join(BIN, 'initdb'))
  ? `PostgreSQL 15 is not installed (${BIN}/initdb): bash scripts/setup.sh installs it`
  : !existsSync(join(SHARE, 'vector.control'))
    ? `pgvector is not installed for PostgreSQL 15 (${SHARE}/vector.control): bash scripts/setup.sh --pgvector builds it`
    : undefined;

export interface PostgresServer {
  url: string;
  port: number;
  /** The data directory: start again on it (same port) to restart the same database. */
  dir: string;
  /** Fast shutdown: sessions are cut, committed data stays on disk. */
  stop(): Promise<void>;
  /** stop(), then the data directory goes. */
  destroy(): Promise<void>;
}

// PostgreSQL refuses to run as root: as root, its commands run as the postgres user that
// Debian's package creates, and the data directory is made theirs.
const asRoot = process.getuid?.() === 0;
const run = (cmd: string, args: string[]): void => {
  const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', join(BIN, cmd), ...args]] : [join(BIN, cmd), args];
  execFileSync(file, argv, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 120_000 });
};

/** A cluster on a loopback port (a free one unless given), created on first start. */
export async function startPostgres(opts: { port?: number; dir?: string } = {}): Promise<PostgresServer> {
  if (postgresMissing) throw new Error(postgresMissing);
  const port = opts.port ?? (await freePorts(1))[0]!;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'doppel-postgres-'));
  if (asRoot) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString().trim()), Number(execFileSync('id', ['-g', 'postgres']).toString().trim()));
  const data = join(dir, 'data');
  if (!existsSync(join(data, 'PG_VERSION'))) run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  // Sockets in the test's own folder; fsync off: a test cluster, thrown away after.
  run('pg_ctl', ['-D', data, '-w', '-l', join(dir, 'log'), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100`, 'start']);
  // A test process that dies leaves no server behind (exit handlers must be synchronous).
  const kill = () => {
    if (existsSync(join(data, 'postmaster.pid'))) run('pg_ctl', ['-D', data, '-w', '-m', 'immediate', 'stop']);
  };
  process.once('exit', kill);
  const stop = async () => {
    process.removeListener('exit', kill);
    if (existsSync(join(data, 'postmaster.pid'))) run('pg_ctl', ['-D', data, '-w', '-m', 'fast', 'stop']);
  };
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    stop,
    destroy: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const shared = sharedDatabase(() => startPostgres().then((s) => ({ url: s.url, stop: s.destroy })));
/** The shared server of this test process, and a table of the caller's own on it. */
export const postgresEnv = shared.env;
export const stopSharedPostgres = shared.stop;
