import { MAX_METADATA_BYTES, type DistanceType } from '@doppel/schemas';

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

export function metadataProblem(m: Record<string, unknown> | undefined, field: string): string | undefined {
  if (m === undefined) return undefined;
  const bytes = Buffer.byteLength(JSON.stringify(m));
  if (bytes > MAX_METADATA_BYTES) return `${field}: must serialise to at most ${MAX_METADATA_BYTES} bytes (got ${bytes})`;
  return undefined;
}
