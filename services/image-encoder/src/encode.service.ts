import { ORIENTATION_NAMES, ORIENTATION_ROWS, type EncodeBatchItemError, type EncodeItem, type EncodeRequest, type EncodeResult } from '@doppel/schemas';
import { isAppError, toItemError, type Logger } from '@doppel/service-kit';
import { loadImage, type ImageSource, type ImageSourceOptions } from './image-source.loader.js';
import { decodeImage, type PreprocessOptions } from './preprocess.image.js';
import type { EncoderModel } from './onnx.model.js';
import type { Whitening } from './pca-whitening.transform.js';
import type { EncoderMetrics } from './encoder.metrics.js';
import pLimit from 'p-limit';
import { isColourless, toGrey } from './colourless.image.js';

export interface EncodeDeps {
  model: EncoderModel;
  sources: ImageSourceOptions;
  preprocess: PreprocessOptions;
  metrics: EncoderMetrics;
  /** Images of one batch request decoded at once. */
  decodeConcurrency: number;
  /** Applied to every output vector (whole image, orientations, regions) when set. */
  whitening?: Whitening;
  /** GREY_ENTRY: an image's entries to index (`regions: true`) end with its greyscale fingerprint. */
  greyEntry?: boolean;
}

export type EncodeInput = ImageSource & Pick<EncodeRequest, 'request_id' | 'orientations' | 'regions'>;

/** An image decoded and resized to the model input, ready for inference. */
interface Prepared {
  input: EncodeInput;
  pixels: Uint8Array;
}

async function prepare(input: EncodeInput, deps: EncodeDeps): Promise<Prepared> {
  const bytes = await loadImage(input, deps.sources);
  return { input, pixels: await decodeImage(bytes, deps.preprocess) };
}

/** The fingerprint rows of one image, and those of its greyscale version when it is indexed with one. */
interface Inferred { rows: Float32Array[]; grey?: Float32Array }

/**
 * An image's orientations (4 or 8) are one job, so they share one session.run. An image
 * indexed with a grey entry gets a second, upright pass on its greyscale pixels, unless it
 * has no colour (its own fingerprint is then its greyscale one).
 */
async function infer(p: Prepared, deps: EncodeDeps): Promise<Inferred> {
  const grey = deps.greyEntry && p.input.regions && !isColourless(p.pixels) ? toGrey(Uint8Array.from(p.pixels)) : undefined;
  const [rows, greyRows] = await Promise.all([
    deps.model.infer(p.pixels, p.input.orientations),
    grey ? deps.model.infer(grey) : undefined,
  ]);
  return greyRows ? { rows, grey: greyRows[0]! } : { rows };
}

/**
 * The unit vectors of one fingerprint row: the whole image, then its regions (one row
 * holds model.vectors of them, scaled together by the row's normalisation).
 */
export function regionalVectors(row: Float32Array, dimension: number): number[][] {
  const out: number[][] = [];
  for (let off = 0; off < row.length; off += dimension) {
    let ss = 0;
    for (let i = off; i < off + dimension; i++) ss += row[i]! * row[i]!;
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    out.push(Array.from(row.subarray(off, off + dimension), (v) => v * inv));
  }
  return out;
}

function toResult(p: Prepared, inferred: Inferred, requestId: number, model: EncoderModel, whitening?: Whitening): EncodeResult {
  const fingerprints = inferred.rows;
  // A few hundred microseconds per vector on the main thread (a 256 x 256 product).
  const out = whitening ? (v: ArrayLike<number>) => whitening.apply(v) : (v: ArrayLike<number>) => Array.from(v);
  const whole = (row: Float32Array) => out(model.vectors === 1 ? row : regionalVectors(row.subarray(0, model.dimension), model.dimension)[0]!);
  const result: EncodeResult = {
    request_id: requestId,
    fingerprint: whole(fingerprints[0]!),
    dimension: model.dimension,
    model: whitening ? `${model.name}+pca` : model.name,
  };
  const rows = ORIENTATION_ROWS[p.input.orientations ?? 'none'];
  if (rows > 1) result.orientations = ORIENTATION_NAMES.slice(0, rows).map((name, i) => ({ name, fingerprint: whole(fingerprints[i]!) }));
  if (p.input.regions) {
    const entries = regionalVectors(fingerprints[0]!, model.dimension).slice(1).map(out);
    if (inferred.grey) entries.push(whole(inferred.grey));
    result.regions = entries;
  }
  return result;
}

/** Encodes one image; errors are AppErrors thrown to the route. */
export async function encodeOne(input: EncodeInput, deps: EncodeDeps, route = '/encode'): Promise<EncodeResult> {
  const end = deps.metrics.encodeSeconds.startTimer({ route, orientations: input.orientations ?? 'none' });
  try {
    const p = await prepare(input, deps);
    const inferred = await infer(p, deps);
    end();
    return toResult(p, inferred, input.request_id ?? 0, deps.model, deps.whitening);
  } catch (e) {
    deps.metrics.errors.inc({ code: toItemError(e).error_code });
    throw e;
  }
}


type Outcome = { ok: true; value: Prepared } | { ok: false; error: unknown };

/**
 * Encodes a batch: every item gets a result or its own error, in order. All images are
 * decoded first, then submitted together in one tick, so they fill whole micro-batches
 * and the queue limit applies to the batch deterministically.
 */
export async function encodeBatch(items: EncodeItem[], deps: EncodeDeps, log?: Logger): Promise<Array<EncodeResult | EncodeBatchItemError>> {
  const start = performance.now();
  const prepared = await pLimit(Math.max(1, deps.decodeConcurrency)).map(items, (item): Promise<Outcome> =>
    prepare(item, deps).then((value) => ({ ok: true, value }), (error: unknown) => ({ ok: false, error })));
  const pending = prepared.map((o) => (o.ok ? infer(o.value, deps) : Promise.reject(o.error)));
  const settled = await Promise.allSettled(pending);
  const seconds = (performance.now() - start) / 1000;
  return settled.map((s, i) => {
    const requestId = items[i]!.request_id ?? i;
    const o = prepared[i]!;
    if (s.status === 'fulfilled' && o.ok) {
      deps.metrics.encodeSeconds.observe({ route: '/encode/batch', orientations: items[i]!.orientations ?? 'none' }, seconds);
      return toResult(o.value, s.value, requestId, deps.model, deps.whitening);
    }
    const reason: unknown = s.status === 'rejected' ? s.reason : undefined;
    // An item's bug must not hide: the client sees INTERNAL, the log the cause.
    if (!isAppError(reason)) log?.error({ err: reason, item: i }, 'unexpected error in batch item');
    const err = toItemError(reason);
    deps.metrics.errors.inc({ code: err.error_code });
    return { request_id: requestId, ...err };
  });
}
