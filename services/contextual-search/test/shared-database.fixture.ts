/**
 * One database per test process, started on first use, for both pgvector test databases
 * (PGlite, a real server): each caller gets a table of its own on it.
 */
export function sharedDatabase(start: () => Promise<{ url: string; stop(): Promise<void> }>): {
  env(): Promise<Record<string, string>>;
  stop(): Promise<void>;
} {
  let shared: ReturnType<typeof start> | undefined;
  let tables = 0;
  return {
    env: async () => {
      shared ??= start();
      const db = await shared;
      return { SEARCH_BACKEND: 'pgvector', DATABASE_URL: db.url, DATABASE_TABLE: `t_${process.pid}_${++tables}`, DATABASE_POOL_SIZE: '4' };
    },
    stop: async () => {
      if (shared) await (await shared).stop();
      shared = undefined;
    },
  };
}
