import { randomUUID } from 'node:crypto';
import type { EncoderClient, MatchingClient, SearchClient } from '@doppel/clients';
import {
  MAX_USER_METADATA_BYTES, type AddImageRequest, type CompareImagesRequest, type FingerprintRequest, type ImageLocation,
  type ImageRecord, type ListImagesQuery, type SearchHit, type SearchImageRequest, type SearchVectorRequest, type UserMetadata,
} from '@doppel/schemas';
import { AppError } from '@doppel/service-kit';
import type { BlobStore, StoredBlob } from './blob.store.js';
import { findDuplicates, type DuplicatesDeps } from './duplicates.logic.js';
import { decodeBase64, resolveImagePath, type UrlFetcher } from '@doppel/image-source';
import { isApiManaged, SOURCE_PATH_KEY } from './image-location.js';
import type { ImageRecords } from './image-records.store.js';
import { KeyedLock } from './keyed.lock.js';
import { encoderModel, FINGERPRINT_MODEL_KEY } from './fingerprint-model.logic.js';
import type { KnownFiles } from './known-files.store.js';

export interface ImagesDeps {
  imagesRoot: string;
  maxImageBytes: number;
  encoder: EncoderClient;
  search: SearchClient;
  matching: MatchingClient;
  urls: UrlFetcher;
  blobs: BlobStore;
  records: ImageRecords;
  known: KnownFiles;
  duplicates: DuplicatesDeps;
  /** Serialises the adds and deletes of one id. */
  ids: KeyedLock;
}

export const createIdLock = () => new KeyedLock();

/** One image as the request gave it, in the one of the four forms it used. */
export interface ImageSource {
  relative_path?: string | undefined;
  image_base64?: string | undefined;
  url?: string | undefined;
}

/** An image the services can read: a file under the root, or bytes in hand. */
export type Materialised = { kind: 'file'; relative_path: string } | { kind: 'bytes'; bytes: Buffer };

export async function materialise(deps: Pick<ImagesDeps, 'imagesRoot' | 'maxImageBytes' | 'urls'>, src: ImageSource, field = ''): Promise<Materialised> {
  // Resolved here (realpath, symlinks out refused), not only by the service it goes to: the
  // id it is stored under is the canonical one, and a refused path costs no downstream call.
  if (src.relative_path !== undefined) return { kind: 'file', relative_path: (await resolveImagePath(deps.imagesRoot, src.relative_path)).id };
  if (src.image_base64 !== undefined) return { kind: 'bytes', bytes: decodeBase64(src.image_base64, deps.maxImageBytes, `${field}image_base64`) };
  if (src.url !== undefined) return { kind: 'bytes', bytes: await deps.urls.fetch(src.url) };
  throw new AppError('INVALID_REQUEST', `${field}exactly one of image, relative_path, image_base64, url is required`);
}

const encoderSource = (m: Materialised) => (m.kind === 'file' ? { relative_path: m.relative_path } : { image_base64: m.bytes.toString('base64') });

function checkMetadata(m: UserMetadata | undefined): UserMetadata {
  if (m === undefined) return {};
  const bytes = Buffer.byteLength(JSON.stringify(m));
  if (bytes > MAX_USER_METADATA_BYTES) throw new AppError('PAYLOAD_TOO_LARGE', `metadata: must serialise to at most ${MAX_USER_METADATA_BYTES} bytes (got ${bytes})`);
  return m;
}

const locationOfBlob = (b: StoredBlob): ImageLocation => ({ kind: 'blob', relative_path: b.relative_path, sha256: b.sha256, bytes: b.bytes });
const blobOf = (l: ImageLocation): Pick<StoredBlob, 'sha256' | 'relative_path'> | undefined =>
  l.kind === 'blob' && l.sha256 ? { sha256: l.sha256, relative_path: l.relative_path } : undefined;

/**
 * Adds or replaces one image under an id. Uploaded and downloaded bytes are kept in the
 * blob store (under the image root), so the matcher and the report read them later like
 * any indexed file. Order: keep the bytes, encode, write the record, upsert the
 * fingerprint; on failure the previous record is restored and a new blob released, and
 * only after success does the previous blob lose this id's reference.
 */
export async function addImage(deps: ImagesDeps, req: AddImageRequest) {
  const metadata = checkMetadata(req.metadata);
  const src = await materialise(deps, req);
  const id = req.id ?? (src.kind === 'file' ? src.relative_path : undefined);
  if (id === undefined) throw new AppError('INVALID_REQUEST', 'id: is required when the image is uploaded, in base64 or a url');
  return deps.ids.run(id, async () => {
    const old = await deps.records.get(id);
    const blob = src.kind === 'bytes' ? await deps.blobs.keep(src.bytes, id) : undefined;
    const location: ImageLocation = blob ? locationOfBlob(blob) : { kind: 'file', relative_path: (src as { relative_path: string }).relative_path };
    let replaced: boolean;
    let dimension: number;
    try {
      const enc = await deps.encoder.encode({ relative_path: location.relative_path, orientations: 'none' });
      dimension = enc.dimension;
      await deps.records.put({ id, metadata, location, dimension, added_at: new Date().toISOString() });
      const up = await deps.search.upsert({
        items: [{ relative_path: id, vec_features: enc.fingerprint, metadata: { [SOURCE_PATH_KEY]: location.relative_path, [FINGERPRINT_MODEL_KEY]: enc.model } }],
      });
      replaced = up.replaced > 0;
    } catch (e) {
      await (old ? deps.records.put(old) : deps.records.remove(id)).catch(() => undefined);
      if (blob && blob.sha256 !== old?.location.sha256) await deps.blobs.release(blob, id).catch(() => undefined);
      throw e;
    }
    const oldBlob = old && blobOf(old.location);
    if (oldBlob && oldBlob.sha256 !== blob?.sha256) await deps.blobs.release(oldBlob, id);
    deps.known.adopt(id);
    return { id, replaced, dimension, location };
  });
}

export async function deleteImage(deps: ImagesDeps, id: string) {
  return deps.ids.run(id, async () => {
    const rec = await deps.records.get(id);
    const r = await deps.search.remove({ relative_paths: [id] });
    if (r.deleted === 0 && !rec) throw new AppError('IMAGE_NOT_FOUND', `${id}: no such image`);
    await deps.records.remove(id);
    deps.known.forget([id]);
    const blob = rec && blobOf(rec.location);
    const blobRemoved = blob ? await deps.blobs.release(blob, id) : false;
    return { id, deleted: true as const, blob_removed: blobRemoved };
  });
}

/** An id added through the API has a record; one indexed from the folder is its own file. */
export async function getImage(deps: ImagesDeps, id: string): Promise<ImageRecord> {
  const rec = await deps.records.get(id);
  if (rec) return rec;
  await deps.known.sync();
  if (!deps.known.has(id)) throw new AppError('IMAGE_NOT_FOUND', `${id}: no such image`);
  const { dimension } = await deps.search.stats();
  return { id, metadata: {}, dimension, location: { kind: 'file', relative_path: id } };
}

/** What a client sees as an id's metadata: its own, from the record (the folder's file stamps are internal). */
const metadataOf = async (deps: ImagesDeps, id: string, stored: Record<string, unknown> | undefined): Promise<UserMetadata> =>
  isApiManaged(stored) ? ((await deps.records.get(id))?.metadata ?? {}) : {};

export async function listImages(deps: ImagesDeps, q: ListImagesQuery) {
  const page = await deps.search.list({ offset: q.offset ?? 0, limit: q.limit ?? 100 });
  const items = await Promise.all(page.items.map(async (it) => ({ id: it.relative_path, metadata: await metadataOf(deps, it.relative_path, it.metadata) })));
  return { total: page.total, offset: page.offset, limit: page.limit, items };
}

const modelNames = new WeakMap<EncoderClient, string>();
/** The encoder names its model in every answer; the probe image asks it once per client. */
async function currentModel(encoder: EncoderClient): Promise<string> {
  let name = modelNames.get(encoder);
  if (name === undefined) {
    name = await encoderModel(encoder);
    modelNames.set(encoder, name);
  }
  return name;
}

export async function imageStats(deps: ImagesDeps) {
  const s = await deps.search.stats();
  const backend = (s as { backend?: unknown }).backend;
  return {
    count: s.count,
    dimension: s.dimension,
    model: await currentModel(deps.encoder),
    backend: typeof backend === 'string' ? backend : s.mode,
    distance: s.distance,
  };
}

/** The verified duplicates of an image (POST /duplicates, answered with ids and metadata). */
export async function searchImage(deps: ImagesDeps, req: SearchImageRequest) {
  const { include_candidates: withCandidates, ...query } = req;
  const r = await findDuplicates(deps.duplicates, query);
  const results: SearchHit[] = await Promise.all(r.duplicated.map(async (d) => {
    const { relative_path: id, ...rest } = d;
    return { id, metadata: (await deps.records.get(id))?.metadata ?? {}, ...rest };
  }));
  return {
    results,
    ...(withCandidates ? { candidates: r.candidates.map(({ relative_path: id, ...c }) => ({ id, ...c })) } : {}),
    timings_ms: r.timings_ms,
  };
}

export async function searchVector(deps: ImagesDeps, req: SearchVectorRequest) {
  const { neighbors } = await deps.search.search({
    nb_neighbors: req.nb_neighbors ?? deps.duplicates.nbNeighbors,
    vec_features: req.vec_features,
    ...(req.min_score !== undefined ? { min_score: req.min_score } : {}),
  });
  const results = await Promise.all(neighbors.map(async (n) => ({ id: n.relative_path, metadata: await metadataOf(deps, n.relative_path, n.metadata), score: n.score })));
  return { results };
}

/**
 * Two images in any form, verified like a search result: the first is the query, the
 * second the neighbour (kept for the call as a blob when it is not a file, since the
 * matcher reads neighbours by path).
 */
export async function compareImages(deps: ImagesDeps, req: CompareImagesRequest) {
  const [a, b] = await Promise.all([materialise(deps, req.image1, 'image1.'), materialise(deps, req.image2, 'image2.')]);
  const transient = `compare:${randomUUID()}`;
  const kept = b.kind === 'bytes' ? await deps.blobs.keep(b.bytes, transient) : undefined;
  try {
    const m = await deps.matching.match({
      ...(a.kind === 'file' ? { candidate: a.relative_path } : { candidate_base64: a.bytes.toString('base64') }),
      neighbors: [kept ? kept.relative_path : (b as { relative_path: string }).relative_path],
      ...(req.threshold !== undefined ? { threshold: req.threshold } : {}),
    });
    const failed = m.errors[0];
    if (failed) throw new AppError(failed.error_code, failed.error_message.replace(kept?.relative_path ?? '\0', 'image2'), { status: failed.status });
    const c = m.checked[0] ?? m.duplicated[0];
    const { relative_path: _path, ...scores } = c ?? { relative_path: '', score: 0, inliers: 0 };
    return { ...scores, duplicated: m.duplicated.length > 0 };
  } finally {
    if (kept) await deps.blobs.release(kept, transient);
  }
}

export async function fingerprint(deps: ImagesDeps, req: FingerprintRequest) {
  const src = await materialise(deps, req);
  return deps.encoder.encode({ ...encoderSource(src), ...(req.orientations ? { orientations: req.orientations } : {}) });
}
