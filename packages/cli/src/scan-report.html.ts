import sharp from 'sharp';
import pLimit from 'p-limit';
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPORT_CSS, REPORT_SCRIPT } from './report-page.script.js';
import { formatBytes, type ScanReport } from './scan-report.model.js';

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Thumbnail side and quality: ~6-9 kB each, sharp enough to tell copies apart. */
const THUMB_SIDE = 200;
const THUMB_QUALITY = 70;
/**
 * Up to this many images the thumbnails are embedded (one file to send around, ~3 MB at
 * most); above it they go to a sidecar folder next to the page, which the browser loads
 * only for the groups it renders.
 */
export const EMBED_MAX_IMAGES = 400;

export type ThumbMode = 'auto' | 'embed' | 'sidecar';

async function thumbnail(file: string): Promise<Buffer | undefined> {
  try {
    return await sharp(file).rotate().resize(THUMB_SIDE, THUMB_SIDE, { fit: 'inside', withoutEnlargement: true }).jpeg({ quality: THUMB_QUALITY }).toBuffer();
  } catch {
    return undefined;
  }
}

export interface RenderOptions {
  /** Where the page is written; a sidecar folder `<name>-files/` goes next to it. */
  htmlPath: string;
  thumbs?: ThumbMode;
  embedMax?: number;
  concurrency?: number;
}

export interface RenderResult { htmlBytes: number; sidecar?: string; sidecarBytes: number; thumbnails: number }

/**
 * Writes the report page: the groups as JSON in the page, rendered by its script 20 at a
 * time as the reader scrolls, with sort, filter, search, keeper choice, export and the
 * group view. Thumbnails are embedded as data URIs or written to the sidecar folder.
 */
export async function writeReportPage(report: ScanReport, opts: RenderOptions): Promise<RenderResult> {
  const paths = [...new Set(report.groups.flatMap((g) => g.members))];
  const mode = opts.thumbs ?? 'auto';
  const sidecar = mode === 'sidecar' || (mode === 'auto' && paths.length > (opts.embedMax ?? EMBED_MAX_IMAGES));
  const sidecarName = `${basename(opts.htmlPath).replace(/\.html?$/i, '')}-files`;
  const sidecarDir = join(dirname(opts.htmlPath), sidecarName);
  mkdirSync(dirname(opts.htmlPath), { recursive: true });
  // A previous report's thumbnails would be stale (or of files since moved away).
  rmSync(sidecarDir, { recursive: true, force: true });
  if (sidecar) mkdirSync(sidecarDir, { recursive: true });
  const thumbs: Record<string, string> = {};
  let sidecarBytes = 0;
  const limit = pLimit(opts.concurrency ?? 4);
  await Promise.all(paths.map((p) => limit(async () => {
    const buf = await thumbnail(join(report.root, p));
    if (!buf) return;
    if (sidecar) {
      const name = `${createHash('sha1').update(p).digest('hex').slice(0, 16)}.jpg`;
      writeFileSync(join(sidecarDir, name), buf);
      sidecarBytes += buf.length;
      thumbs[p] = `${encodeURIComponent(sidecarName)}/${name}`;
    } else {
      thumbs[p] = `data:image/jpeg;base64,${buf.toString('base64')}`;
    }
  })));
  const html = renderPage(report, thumbs);
  writeFileSync(opts.htmlPath, html);
  return { htmlBytes: Buffer.byteLength(html), ...(sidecar ? { sidecar: sidecarDir } : {}), sidecarBytes, thumbnails: Object.keys(thumbs).length };
}

export function renderPage(report: ScanReport, thumbs: Record<string, string>): string {
  const s = report.summary;
  const data = {
    meta: { root: report.root, generated_at: report.generated_at, files_scanned: report.files_scanned },
    fileBase: `${pathToFileURL(report.root).href.replace(/\/$/, '')}/`,
    groups: report.groups,
    images: report.images,
    thumbs,
  };
  // `<` escaped so that no path can close the script element.
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  const dismissed = s.dismissed_groups ? ` · ${s.dismissed_groups} hidden by earlier decisions` : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Doppel duplicate report</title>`
    + `<meta name="viewport" content="width=device-width,initial-scale=1"><style>${REPORT_CSS}</style></head><body>`
    + `<header><h1>Duplicate report</h1><div class="meta">${esc(report.folder)} · ${report.files_scanned} images scanned · `
    + `<span id="group-count">${s.groups}</span> duplicate groups · ${s.redundant_files} redundant files · `
    + `${formatBytes(s.reclaimable_bytes)} reclaimable with the suggested keepers${dismissed} · ${esc(report.generated_at)}</div>`
    + `<div class="totals">Marked to move away: <b id="sel-files">${s.redundant_files}</b> files, <b id="sel-bytes">${formatBytes(s.reclaimable_bytes)}</b>`
    + ` · showing <b id="shown">${s.groups}</b> of ${s.groups} groups</div>`
    + `<div class="toolbar"><label>sort <select id="sort"><option value="reclaim">reclaimable bytes</option><option value="size">group size</option>`
    + `<option value="score">lowest score first</option><option value="folder">folder</option><option value="id">group number</option></select></label>`
    + `<label>method <select id="method"><option value="">any</option><option value="sift">sift</option><option value="dense">dense</option></select></label>`
    + `<label>folder <select id="folder"><option value="">all</option></select></label>`
    + `<label>file name <input id="search" type="search" placeholder="search"></label>`
    + `<button id="export-json">Export actions (JSON)</button><button id="export-csv">Export CSV</button></div>`
    + `<div class="meta">Then: <code>doppel apply doppel-actions.json --move-to DIR</code> (a dry run; add <code>--yes</code> to move), <code>doppel undo MANIFEST</code> to put them back.</div></header>`
    + `<main><p class="empty" id="empty" hidden>${s.groups ? 'No group matches the filters.' : 'No duplicates found.'}</p><div id="groups"></div><div id="more"></div></main>`
    + `<div id="viewer" hidden><div class="bar"><button id="viewer-prev">&larr;</button><button id="viewer-next">&rarr;</button>`
    + `<span id="viewer-info"></span><button id="viewer-close" style="margin-left:auto">close (Esc)</button></div>`
    + `<div class="panes"><div class="pane" id="pane-a"></div><div class="pane" id="pane-b"></div></div></div>`
    + `<script id="doppel-data" type="application/json">${json}</script><script>${REPORT_SCRIPT}</script></body></html>\n`;
}
