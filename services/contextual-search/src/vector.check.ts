import { MAX_METADATA_BYTES, MAX_METADATA_DEPTH, type DistanceType } from '@doppel/schemas';

/** Largest finite float32: beyond it hnswlib would store Infinity. */
const F32_MAX = 3.4028234663852886e38;

/**
 * The checks the JSON schema cannot express (the dimension is configuration). Returns
 * a sentence naming the field, or undefined when the vector is acceptable.
 */
export function vectorProblem(v: readonly unknown[], dimension: number, distance: DistanceType, field: string): string | undefined {
  if (v.length !== dimension) return `${field}: must have exactly ${dimension} elements (got ${v.length})`;
  let norm = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) return `${field}[${i}]: must be a finite number`;
    if (Math.abs(x) > F32_MAX) return `${field}[${i}]: out of float32 range`;
    norm += x * x;
  }
  // A zero vector has no direction: every cosine score would be arbitrary.
  if (distance === 'Cosine' && norm === 0) return `${field}: must not be the zero vector with Cosine distance`;
  return undefined;
}

/**
 * Nesting depth of a parsed JSON value, walked without recursion and given up once past
 * `max`: JSON.parse accepts nesting that JSON.stringify then cannot serialise (it recurses
 * and overflows the stack), so depth is checked before anything serialises it.
 */
function depthExceeds(root: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[root, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (child !== null && typeof child === 'object') stack.push([child, d + 1]);
  }
  return false;
}

export function metadataProblem(m: Record<string, unknown> | undefined, field: string): string | undefined {
  if (m === undefined) return undefined;
  if (depthExceeds(m, MAX_METADATA_DEPTH)) return `${field}: must not nest objects or arrays more than ${MAX_METADATA_DEPTH} levels deep`;
  const bytes = Buffer.byteLength(JSON.stringify(m));
  if (bytes > MAX_METADATA_BYTES) return `${field}: must serialise to at most ${MAX_METADATA_BYTES} bytes (got ${bytes})`;
  return undefined;
}
