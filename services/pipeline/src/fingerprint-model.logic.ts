import type { EncoderClient } from '@doppel/clients';
import { AppError } from '@doppel/service-kit';

/**
 * The name of the model (and of the whitening: `+pca`) that made each indexed vector is kept
 * in its metadata under this key. Fingerprints of two models (or of one model with and
 * without whitening) have the same dimension but live in different spaces: comparing them
 * gives scores that mean nothing, so neither indexing nor a query may mix them.
 */
export const FINGERPRINT_MODEL_KEY = 'fingerprint_model';

/** A 32x32 flat PNG: enough for the encoder to answer with its model's name. */
const PROBE_PNG = 'iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAIAAAD8GO2jAAAACXBIWXMAAAPoAAAD6AG1e1JrAAAAO0lEQVR4nGOIqphGU8QwakHFaBBNG01FUaMZbdpoURE1WppWjFY4UaNVZsVoq2LaaMOrYrTpOG1Qt64BG7WgTLy0OMsAAAAASUVORK5CYII=';

/** The model the encoder fingerprints with now (one tiny encode: the encoder may have restarted with another). */
export async function encoderModel(encoder: EncoderClient): Promise<string> {
  return (await encoder.encode({ image_base64: PROBE_PNG, orientations: 'none' })).model;
}

export const modelOf = (metadata: Record<string, unknown> | undefined): string | undefined => {
  const m = metadata?.[FINGERPRINT_MODEL_KEY];
  return typeof m === 'string' ? m : undefined;
};

/**
 * Refuses search results that were fingerprinted by another model than the query (409,
 * naming both and the fix). Entries that record no model (indexed before the key existed,
 * or upserted by another client) are let through: nothing tells their model.
 */
export function assertSameModel(neighbors: Array<{ relative_path: string; metadata?: Record<string, unknown> | undefined }>, model: string): void {
  const other = neighbors.find((n) => { const m = modelOf(n.metadata); return m !== undefined && m !== model; });
  if (!other) return;
  throw new AppError('MODEL_MISMATCH', `the index holds fingerprints of ${modelOf(other.metadata)} (e.g. ${other.relative_path}) but the encoder now makes ${model}: `
    + 're-index the folder (POST /index, or `doppel index DIR`: files fingerprinted by another model are re-encoded) or run the encoder with the model it was built with');
}
