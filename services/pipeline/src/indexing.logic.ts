import { posix } from 'node:path';
import type { EncoderClient, SearchClient } from '@doppel/clients';
import { MAX_DELETE_ITEMS, type IndexRequest, type IndexResponse, type Static } from '@doppel/schemas';
import { AppError, toItemError } from '@doppel/service-kit';
import pLimit from 'p-limit';
import { collectFiles, stampFiles, toId, type FileStamp } from '@doppel/image-source';
import { stampMetadata, type KnownFiles } from './known-files.store.js';
import { encoderModel } from './fingerprint-model.logic.js';

export type IndexResult = Static<typeof IndexResponse>['response'];
type Failure = IndexResult['failed'][number];

export interface IndexingDeps {
  imagesRoot: string;
  encoder: EncoderClient;
  search: SearchClient;
  known: KnownFiles;
  batchSize: number;
  concurrency: number;
}

const failureOf = (relative_path: string, e: unknown): Failure => ({ relative_path, ...toItemError(e) });

/** Encodes one batch by path and upserts what encoded; per-item failures are reported, not thrown. */
async function indexBatch(deps: IndexingDeps, batch: FileStamp[]): Promise<{ indexed: number; failed: Failure[] }> {
  const failed: Failure[] = [];
  const { results } = await deps.encoder.encodeBatch({
    // Regions (when the encoder pools them) are indexed with the image, so a crop finds it.
    items: batch.map((f, i) => ({ request_id: i, relative_path: f.relative_path, orientations: 'none' as const, regions: true })),
  });
  const items: Array<{ file: FileStamp; vec: number[]; model: string; regions?: number[][] }> = [];
  for (const r of results) {
    const file = batch[r.request_id];
    if (!file) continue;
    if ('fingerprint' in r) items.push({ file, vec: r.fingerprint, model: r.model, ...(r.regions?.length ? { regions: r.regions } : {}) });
    else failed.push({ relative_path: file.relative_path, error_code: r.error_code, error_message: r.error_message, status: r.status });
  }
  if (items.length === 0) return { indexed: 0, failed };
  try {
    await deps.search.upsert({
      items: items.map(({ file, vec, model, regions }) => ({ relative_path: file.relative_path, vec_features: vec, metadata: stampMetadata(file, model), ...(regions ? { regions } : {}) })),
    });
  } catch (e) {
    // A 4xx here (a dimension mismatch) concerns every item alike; outages stop the run.
    if (e instanceof AppError && e.status >= 500) throw e;
    return { indexed: 0, failed: [...failed, ...items.map(({ file }) => failureOf(file.relative_path, e))] };
  }
  for (const { file, model } of items) deps.known.remember(file, model);
  return { indexed: items.length, failed };
}

/** Indexed paths at or under `rel` (its subtree, or only its direct children) that are not in `present`. */
export function vanished(indexed: string[], rel: string, recursive: boolean, present: Set<string>): string[] {
  const base = posix.normalize(toId(rel)).replace(/\/+$/, '');
  return indexed.filter((p) => {
    if (present.has(p)) return false;
    if (p === base) return true;
    const rest = base === '.' ? p : p.startsWith(`${base}/`) ? p.slice(base.length + 1) : undefined;
    return rest !== undefined && (recursive || !rest.includes('/'));
  });
}

/** Deletes vanished files from search, in chunks the delete endpoint accepts. */
async function prune(deps: IndexingDeps, rel: string, recursive: boolean, files: FileStamp[]): Promise<number> {
  const gone = vanished(deps.known.paths(), rel, recursive, new Set(files.map((f) => f.relative_path)));
  for (let i = 0; i < gone.length; i += MAX_DELETE_ITEMS) {
    const chunk = gone.slice(i, i + MAX_DELETE_ITEMS);
    await deps.search.remove({ relative_paths: chunk });
    deps.known.forget(chunk);
  }
  return gone.length;
}

/**
 * Indexes a file, a folder (recursive by default) or a list of files under the image
 * root. Files whose size and mtime match what search already holds, fingerprinted by the
 * encoder's current model, are skipped unless `force`; that is what makes an interrupted run
 * resumable, and what re-encodes a collection after the model (or its whitening) changed.
 */
export async function indexImages(deps: IndexingDeps, req: IndexRequest): Promise<IndexResult> {
  const failed: Failure[] = [];
  let files: FileStamp[];
  if (req.relative_paths) {
    files = [];
    for (const s of await stampFiles(deps.imagesRoot, req.relative_paths)) {
      if ('error' in s) failed.push(failureOf(s.relative_path, s.error));
      else files.push(s);
    }
  } else {
    // A missing path is a 404 even with prune: an unmounted image root must not empty the index.
    files = await collectFiles(deps.imagesRoot, req.relative_path ?? '.', req.recursive ?? true);
  }
  await deps.known.sync();
  const removed = req.prune && req.relative_path !== undefined ? await prune(deps, req.relative_path, req.recursive ?? true, files) : 0;
  const model = req.force || files.length === 0 ? '' : await encoderModel(deps.encoder);
  const todo = req.force ? files : files.filter((f) => !deps.known.isCurrent(f, model));
  const batches: FileStamp[][] = [];
  for (let i = 0; i < todo.length; i += deps.batchSize) batches.push(todo.slice(i, i + deps.batchSize));

  let indexed = 0;
  await pLimit(Math.max(1, deps.concurrency)).map(batches, async (batch) => {
    const r = await indexBatch(deps, batch);
    indexed += r.indexed;
    failed.push(...r.failed);
  });
  return {
    total: files.length + (req.relative_paths ? req.relative_paths.length - files.length : 0),
    indexed,
    skipped: files.length - todo.length,
    removed,
    failed: failed.sort((a, b) => a.relative_path.localeCompare(b.relative_path)),
  };
}
