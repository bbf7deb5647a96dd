import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { MAX_UPSERT_ITEMS, VectorItem, validate } from '@doppel/schemas';
import type { SearchClient } from '@doppel/clients';

/**
 * Moving a collection between contextual-search instances (and so between backends): one
 * JSON line per vector, {"relative_path", "vec_features", "metadata"?}, the format of the
 * service's LOCATION seed files. Plain functions over the search client.
 */

const PAGE = 1000;

/**
 * Writes every stored vector to `file` in list order. Pages by offset: export a collection
 * nobody writes to meanwhile (a concurrent delete shifts later pages).
 */
export async function exportCollection(search: Pick<SearchClient, 'list'>, file: string, onProgress?: (done: number, total: number) => void): Promise<{ exported: number }> {
  const out = createWriteStream(file);
  let exported = 0;
  try {
    for (let offset = 0; ; offset += PAGE) {
      const page = await search.list({ offset, limit: PAGE, include_vectors: true });
      for (const it of page.items) {
        const line = `${JSON.stringify({ relative_path: it.relative_path, vec_features: it.vec_features, ...(it.metadata ? { metadata: it.metadata } : {}) })}\n`;
        if (!out.write(line)) await once(out, 'drain');
        exported++;
      }
      onProgress?.(exported, page.total);
      if (page.items.length < PAGE || offset + PAGE >= page.total) break;
    }
  } finally {
    out.end();
    await once(out, 'close');
  }
  return { exported };
}

export interface ImportResult {
  lines: number;
  imported: number;
  inserted: number;
  replaced: number;
  /** `file:line: reason` of the lines that were not sent. */
  bad: string[];
}

/** Upserts every valid line of `file` in batches; bad lines are reported, not fatal. */
export async function importCollection(
  search: Pick<SearchClient, 'upsert'>,
  file: string,
  opts: { batch?: number; onProgress?: (done: number) => void } = {},
): Promise<ImportResult> {
  const batchSize = Math.min(opts.batch ?? 500, MAX_UPSERT_ITEMS);
  const r: ImportResult = { lines: 0, imported: 0, inserted: 0, replaced: 0, bad: [] };
  let batch: VectorItem[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const up = await search.upsert({ items: batch });
    r.imported += batch.length;
    r.inserted += up.inserted;
    r.replaced += up.replaced;
    batch = [];
    opts.onProgress?.(r.imported);
  };
  for await (const line of createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity })) {
    r.lines++;
    if (line.trim() === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      r.bad.push(`${file}:${r.lines}: not valid JSON`);
      continue;
    }
    const v = validate(VectorItem, parsed);
    if (!v.ok) {
      r.bad.push(`${file}:${r.lines}: ${v.error.message}`);
      continue;
    }
    batch.push(v.value);
    if (batch.length >= batchSize) await flush();
  }
  await flush();
  return r;
}
