import pg from 'pg';
import { AppError, type Logger } from '@doppel/service-kit';

/**
 * The PostgreSQL runtime behind one small typed module: a pg Pool, every statement a
 * single pool.query (no client is held between statements, so a dying connection can only
 * fail the statement on it), and the mapping of "the database cannot be reached" to 503
 * UNAVAILABLE with Retry-After. Other database errors stay errors (500, logged).
 */

export interface PgOptions {
  url: string;
  poolSize: number;
  log: Logger;
}

/** SQLSTATE classes and codes that mean "the database is not there right now". */
const UNAVAILABLE_SQLSTATE = /^(08|57P0[1-3]|53300)/;
const UNAVAILABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

export function isUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e?.code === 'string' && (UNAVAILABLE_SQLSTATE.test(e.code) || UNAVAILABLE_ERRNO.has(e.code))) return true;
  const msg = typeof e?.message === 'string' ? e.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout|connection is not open/i.test(msg);
}

export class PgDatabase {
  private readonly pool: pg.Pool;

  constructor(private readonly opts: PgOptions) {
    this.pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize,
      connectionTimeoutMillis: 3000,
      idleTimeoutMillis: 10_000,
      // A statement stuck on a half-open connection fails instead of hanging the request.
      query_timeout: 30_000,
    });
    // An idle client whose server went away emits 'error': without a listener the process would exit.
    this.pool.on('error', (err) => opts.log.warn({ err: err.message }, 'idle database connection closed'));
  }

  /** Runs one statement (or a multi-statement string without parameters, in one round trip). */
  async query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> {
    try {
      return (await this.pool.query<R>(text, values)).rows;
    } catch (err) {
      throw this.mapError(err);
    }
  }

  /** Each result of a multi-statement string, in order. */
  async queryAll(text: string): Promise<pg.QueryResult[]> {
    try {
      const r = (await this.pool.query(text)) as unknown as pg.QueryResult | pg.QueryResult[];
      return Array.isArray(r) ? r : [r];
    } catch (err) {
      throw this.mapError(err);
    }
  }

  private mapError(err: unknown): unknown {
    if (!isUnavailable(err)) return err;
    this.opts.log.warn({ err: (err as Error).message }, 'database unreachable');
    return new AppError('UNAVAILABLE', 'the database is unreachable; retry shortly', { retryAfter: 1, cause: err });
  }

  /** Resolves when the database answers a trivial statement. */
  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
