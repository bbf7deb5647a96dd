// PGlite (PostgreSQL compiled to WASM) with the pgvector extension, served over the
// PostgreSQL wire protocol by @electric-sql/pglite-socket, for tests and benchmarks that
// need a real pgvector without a PostgreSQL installation. Prints one JSON line
// {"port": N, "url": "postgres://..."} once it listens; stops cleanly on SIGTERM/SIGINT
// (closing the database so its files are consistent).
// Usage: node --conditions=source --import tsx services/contextual-search/scripts/pglite-server.ts [--port 0] [--db DIR] [--max-connections 16]
import { parseArgs } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    db: { type: 'string', default: 'memory://' },
    'max-connections': { type: 'string', default: '16' },
  },
});

const db = await PGlite.create(values.db, { extensions: { vector } });
const server = new PGLiteSocketServer({ db, port: Number(values.port), host: values.host, maxConnections: Number(values['max-connections']) });
server.addEventListener('listening', (e) => {
  const { port } = (e as CustomEvent<{ port: number }>).detail;
  process.stdout.write(`${JSON.stringify({ port, url: `postgres://postgres:postgres@${values.host}:${port}/postgres` })}\n`);
});
await server.start();

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await server.stop();
  await db.close();
  process.exit(0);
}
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
