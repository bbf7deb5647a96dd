/**
 * What one WAL record holds: the JSON array of the operations of one commit round.
 * Vectors travel as base64 float32 (what hnswlib stores, and 4 bytes per element),
 * paths and metadata as JSON.
 */

export type Metadata = Record<string, unknown>;

export type WalOp =
  | { op: 'u'; items: Array<{ p: string; v: string; m?: Metadata }> }
  | { op: 'd'; paths: string[] };

export interface StoredItem {
  relative_path: string;
  vec_features: number[];
  metadata?: Metadata | undefined;
}

const encodeVector = (v: readonly number[]): string => Buffer.from(Float32Array.from(v).buffer).toString('base64');

function decodeVector(b64: string): number[] {
  const buf = Buffer.from(b64, 'base64');
  return Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4));
}

/** One operation as JSON text (a record joins several with commas inside `[...]`). */
export function encodeUpsertOp(items: readonly StoredItem[]): string {
  const op: WalOp = { op: 'u', items: items.map((it) => ({ p: it.relative_path, v: encodeVector(it.vec_features), ...(it.metadata ? { m: it.metadata } : {}) })) };
  return JSON.stringify(op);
}

export const encodeDeleteOp = (paths: readonly string[]): string => JSON.stringify({ op: 'd', paths: [...paths] } satisfies WalOp);

export const joinOps = (ops: readonly string[]): Buffer => Buffer.from(`[${ops.join(',')}]`);

export type DecodedOp = { op: 'u'; items: StoredItem[] } | { op: 'd'; paths: string[] };

export function decodeRecord(payload: Buffer): DecodedOp[] {
  return (JSON.parse(payload.toString('utf8')) as WalOp[]).map((op) =>
    op.op === 'u' ? { op: 'u', items: op.items.map((it) => ({ relative_path: it.p, vec_features: decodeVector(it.v), metadata: it.m })) } : op,
  );
}
