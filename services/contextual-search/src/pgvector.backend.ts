import { setTimeout as sleep } from 'node:timers/promises';
import type { DeleteResponse, DistanceType, ListResponse, Neighbor, StatsResponse, UpsertResponse, VectorItem } from '@doppel/schemas';
import { AppError, type Logger } from '@doppel/service-kit';
import { scoreOf, type HnswParams } from './hnsw.index.js';
import { PgDatabase, isUnavailable } from './pg.database.js';
import type { Readiness, StoredVector, VectorBackend } from './vector.backend.js';

export interface PgvectorOptions {
  url: string;
  table: string;
  poolSize: number;
  dimension: number;
  distance: DistanceType;
  /** M and efConstruction of the HNSW index when it is created; efSearch is the default ef. */
  params: HnswParams;
  log: Logger;
}

/** pgvector's HNSW index holds `vector` columns up to this many dimensions. */
export const PGVECTOR_HNSW_MAX_DIMENSION = 2000;
/** pgvector's bounds of hnsw.ef_search. */
const EF_MIN = 1;
const EF_MAX = 1000;

/** Operator class of the index and the operator that uses it, per DISTANCE_TYPE. */
const OPS: Record<DistanceType, { opclass: string; op: string }> = {
  Cosine: { opclass: 'vector_cosine_ops', op: '<=>' },
  L2: { opclass: 'vector_l2_ops', op: '<->' },
  InnerProduct: { opclass: 'vector_ip_ops', op: '<#>' },
};

/**
 * pgvector's distance -> the hnswlib convention scoreOf() takes, so both backends score alike:
 * `<=>` is 1 - cos already; `<->` is the euclidean distance (hnswlib: its square);
 * `<#>` is -a.b (hnswlib: 1 - a.b).
 */
export function pgScore(distance: DistanceType, d: number): number {
  if (distance === 'L2') return scoreOf('L2', d * d);
  if (distance === 'InnerProduct') return scoreOf('InnerProduct', 1 + d);
  return scoreOf('Cosine', d);
}

/** Vectors are checked finite numbers, so the literal cannot carry anything but numbers. */
const literal = (v: readonly number[]): string => `[${v.join(',')}]`;

/** hnswlib stores Cosine vectors unit-normalised; so does this backend, so include_vectors agrees. */
function stored(distance: DistanceType, v: readonly number[]): number[] {
  if (distance !== 'Cosine') return [...v];
  let n = 0;
  for (const x of v) n += x * x;
  const inv = 1 / Math.sqrt(n);
  return v.map((x) => x * inv);
}

/** PostgreSQL text and jsonb cannot hold U+0000; refused as a 400 like any other bad value. */
const NUL = '\u0000';
function nulProblem(items: readonly VectorItem[]): string | undefined {
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    if (it.relative_path.includes(NUL)) return `items[${i}].relative_path: must not contain a NUL character`;
    if (it.metadata && JSON.stringify(it.metadata).includes('\\u0000')) return `items[${i}].metadata: must not contain a NUL character`;
  }
  return undefined;
}

type Row = { relative_path: string; metadata: Record<string, unknown> | null };

/**
 * The PostgreSQL + pgvector backend: one table (path primary key, vector(dim), jsonb
 * metadata, updated time, an insertion sequence for stable paging) with an HNSW index of
 * DISTANCE_TYPE's operator class. This process keeps no state: every replica on the same
 * table sees every committed write at once. Each call is one statement (one transaction).
 */
export class PgvectorBackend implements VectorBackend {
  readonly name = 'pgvector';
  private readonly db: PgDatabase;
  private readonly t: string;
  private readonly ops: { opclass: string; op: string };
  private status: 'connecting' | 'ready' | 'failed' | 'closed' = 'connecting';
  private closed = false;

  constructor(private readonly opts: PgvectorOptions) {
    if (!opts.url) throw new Error('SEARCH_BACKEND=pgvector needs DATABASE_URL');
    this.db = new PgDatabase({ url: opts.url, poolSize: opts.poolSize, log: opts.log });
    // DATABASE_TABLE is checked against ^[a-z_][a-z0-9_]{0,62}$ by the config schema.
    this.t = `"${opts.table}"`;
    this.ops = OPS[opts.distance];
  }

  /** Creates what is missing; retries while the database is unreachable, throws on a mismatch. */
  async open(): Promise<void> {
    const { dimension, log } = this.opts;
    if (dimension > PGVECTOR_HNSW_MAX_DIMENSION) {
      throw new Error(`DIMENSION=${dimension}: pgvector's HNSW index holds at most ${PGVECTOR_HNSW_MAX_DIMENSION} dimensions; use SEARCH_BACKEND=hnswlib`);
    }
    for (let attempt = 1; !this.closed; attempt++) {
      try {
        await this.setUp();
        this.status = 'ready';
        log.info({ table: this.opts.table, dimension, distance: this.opts.distance }, 'pgvector table ready');
        return;
      } catch (err) {
        const cause = err instanceof AppError ? err.cause : err;
        if (!isUnavailable(cause) && !isUnavailable(err)) {
          this.status = 'failed';
          throw err;
        }
        log.warn({ attempt, err: (cause as Error).message }, 'database unreachable at start; retrying');
        await sleep(Math.min(5000, 250 * attempt));
      }
    }
  }

  private async setUp(): Promise<void> {
    const { table, dimension, params } = this.opts;
    const index = `${table}_embedding_hnsw`;
    // One session at a time sets up any Doppel table: IF NOT EXISTS still races on the
    // catalogue, for the table and for the extension, which every table's set-up creates (a
    // service sets up its vectors and regions tables at once, replicas start together). A
    // real server shows it (duplicate key in pg_extension_name_index); PGlite serialises
    // sessions and does not. The lock is held for the set-up transaction only.
    await this.db.queryAll(
      `BEGIN; SELECT pg_advisory_xact_lock(hashtext('doppel:schema'));
       CREATE EXTENSION IF NOT EXISTS vector;
       CREATE TABLE IF NOT EXISTS ${this.t} (
         relative_path text PRIMARY KEY,
         embedding vector(${dimension}) NOT NULL,
         metadata jsonb,
         updated_at timestamptz NOT NULL DEFAULT now(),
         seq bigint GENERATED ALWAYS AS IDENTITY
       );
       CREATE INDEX IF NOT EXISTS "${table}_seq" ON ${this.t} (seq);
       CREATE INDEX IF NOT EXISTS "${index}" ON ${this.t} USING hnsw (embedding ${this.ops.opclass}) WITH (m = ${params.M}, ef_construction = ${params.efConstruction});
       COMMIT;`,
    );
    const [col] = await this.db.query<{ type: string }>(
      `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'embedding' AND NOT attisdropped`,
      [this.t],
    );
    if (col?.type !== `vector(${dimension})`) {
      throw new Error(`table ${table} stores embedding as ${col?.type ?? 'nothing'}, the configuration says DIMENSION=${dimension} (vector(${dimension})); use another DATABASE_TABLE or re-index`);
    }
    const [idx] = await this.db.query<{ indexdef: string }>(`SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = $1`, [index]);
    if (!idx?.indexdef.includes(this.ops.opclass)) {
      throw new Error(`index ${index} on ${table} is "${idx?.indexdef ?? 'missing'}", DISTANCE_TYPE=${this.opts.distance} needs ${this.ops.opclass}; use another DATABASE_TABLE or drop the index`);
    }
  }

  async readiness(): Promise<Readiness> {
    if (this.status !== 'ready') return { ok: false, detail: this.status === 'connecting' ? 'connecting to the database' : this.status };
    try {
      await this.db.ping();
      return { ok: true };
    } catch (err) {
      return { ok: false, detail: `database unreachable: ${((err as AppError).cause as Error | undefined)?.message ?? (err as Error).message}` };
    }
  }

  private assertReady(): void {
    if (this.status !== 'ready') throw new AppError('UNAVAILABLE', `the pgvector backend is ${this.status === 'connecting' ? 'connecting to the database' : this.status}`, { retryAfter: 1 });
  }

  async upsert(items: VectorItem[]): Promise<UpsertResponse['response']> {
    this.assertReady();
    const problem = nulProblem(items);
    if (problem) throw new AppError('INVALID_REQUEST', problem);
    // ON CONFLICT cannot touch a row twice in one statement: keep each path's last item and
    // count the earlier ones as replaced, as the hnswlib backend applies them in order.
    const last = new Map<string, VectorItem>();
    for (const it of items) last.set(it.relative_path, it);
    const unique = [...last.values()];
    const [r] = await this.db.query<{ inserted: string; total_before: string }>(
      `WITH up AS (
         INSERT INTO ${this.t} (relative_path, embedding, metadata)
         SELECT p, e::vector, m FROM unnest($1::text[], $2::text[], $3::jsonb[]) AS u(p, e, m)
         ON CONFLICT (relative_path) DO UPDATE SET embedding = EXCLUDED.embedding, metadata = EXCLUDED.metadata, updated_at = now()
         RETURNING (xmax = 0) AS inserted
       )
       SELECT count(*) FILTER (WHERE inserted) AS inserted, (SELECT count(*) FROM ${this.t}) AS total_before FROM up`,
      [
        unique.map((it) => it.relative_path),
        unique.map((it) => literal(stored(this.opts.distance, it.vec_features))),
        unique.map((it) => (it.metadata === undefined ? null : JSON.stringify(it.metadata))),
      ],
    );
    const inserted = Number(r!.inserted);
    // The subquery sees the table as the statement started, before these rows.
    return { inserted, replaced: items.length - inserted, count: Number(r!.total_before) + inserted };
  }

  async delete(paths: string[]): Promise<DeleteResponse['response']> {
    this.assertReady();
    const [r] = await this.db.query<{ deleted: string[] | null; total_before: string }>(
      `WITH del AS (DELETE FROM ${this.t} WHERE relative_path = ANY($1::text[]) RETURNING relative_path)
       SELECT array_agg(relative_path) AS deleted, (SELECT count(*) FROM ${this.t}) AS total_before FROM del`,
      [paths.filter((p) => !p.includes(NUL))],
    );
    const gone = new Set(r!.deleted ?? []);
    const notFound: string[] = [];
    let deleted = 0;
    // A path named twice is deleted once; the second mention is not found, as in hnswlib.
    for (const p of paths) {
      if (gone.delete(p)) deleted++;
      else notFound.push(p);
    }
    return { deleted, not_found: notFound, count: Number(r!.total_before) - deleted };
  }

  async search(query: number[], k: number, ef: number): Promise<Neighbor[]> {
    this.assertReady();
    const efSearch = Math.min(EF_MAX, Math.max(EF_MIN, Math.trunc(ef)));
    const q = literal(stored(this.opts.distance, query));
    // One round trip: SET LOCAL scopes ef_search to this transaction (parameters need the
    // extended protocol, one statement per message; the literal holds only numbers).
    const results = await this.db.queryAll(
      `BEGIN; SET LOCAL hnsw.ef_search = ${efSearch};
       SELECT relative_path, metadata, embedding ${this.ops.op} '${q}' AS d FROM ${this.t} ORDER BY embedding ${this.ops.op} '${q}' LIMIT ${Math.trunc(k)};
       COMMIT;`,
    );
    const rows = results.find((r) => r.command === 'SELECT')?.rows as Array<Row & { d: number }>;
    return rows.map((row) => {
      const score = pgScore(this.opts.distance, Number(row.d));
      return row.metadata === null ? { relative_path: row.relative_path, score } : { relative_path: row.relative_path, score, metadata: row.metadata };
    });
  }

  async lookup(paths: string[]): Promise<Array<StoredVector | undefined>> {
    this.assertReady();
    if (paths.length === 0) return [];
    const rows = await this.db.query<{ relative_path: string; v: number[]; metadata: Record<string, unknown> | null }>(
      `SELECT relative_path, embedding::real[] AS v, metadata FROM ${this.t} WHERE relative_path = ANY($1)`,
      [paths],
    );
    const byPath = new Map(rows.map((r) => [r.relative_path, { vec_features: r.v.map((x) => Math.fround(x)), ...(r.metadata !== null ? { metadata: r.metadata } : {}) }]));
    return paths.map((p) => byPath.get(p));
  }

  async list(offset: number, limit: number, includeVectors: boolean): Promise<ListResponse['response']> {
    this.assertReady();
    const [r] = await this.db.query<{ total: string; items: Array<Row & { v?: number[] }> }>(
      `SELECT (SELECT count(*) FROM ${this.t}) AS total,
              (SELECT coalesce(json_agg(json_build_object('relative_path', relative_path, 'metadata', metadata${includeVectors ? ", 'v', embedding::real[]" : ''}) ORDER BY seq), '[]')
                 FROM (SELECT * FROM ${this.t} ORDER BY seq OFFSET $1 LIMIT $2) page) AS items`,
      [offset, limit],
    );
    const items = r!.items.map((it) => ({
      relative_path: it.relative_path,
      ...(it.metadata !== null ? { metadata: it.metadata } : {}),
      // float4 printed shortest, read back as the same float32 hnswlib would return.
      ...(it.v ? { vec_features: it.v.map((x) => Math.fround(x)) } : {}),
    }));
    return { total: Number(r!.total), offset, limit, items };
  }

  async stats(): Promise<StatsResponse['response']> {
    const ready = this.status === 'ready';
    let count = 0;
    let last: string | null = null;
    if (ready) {
      const [r] = await this.db.query<{ count: string; last: Date | null }>(`SELECT count(*) AS count, max(updated_at) AS last FROM ${this.t}`);
      count = Number(r!.count);
      last = r!.last ? r!.last.toISOString() : null;
    }
    const p = this.opts.params;
    return {
      count,
      dimension: this.opts.dimension,
      distance: this.opts.distance,
      mode: 'hnsw',
      index: { M: p.M, ef_construction: p.efConstruction, ef_search: p.efSearch, capacity: count },
      // Every acknowledged write is committed: nothing waits for a log or a snapshot here.
      last_persisted: last,
      wal_records: 0,
      deleted_slots: 0,
      tombstones: 0,
      ready,
      backend: this.name,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.status = 'closed';
    await this.db.close();
  }
}
