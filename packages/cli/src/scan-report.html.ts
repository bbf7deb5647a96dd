import sharp from 'sharp';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { linkBetween, type ScanGroup } from './scan-groups.logic.js';

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A small JPEG data URI: the report must be one self-contained file of reasonable size. */
async function thumbnail(file: string, side = 360): Promise<string> {
  try {
    const buf = await sharp(await readFile(file)).rotate().resize(side, side, { fit: 'inside', withoutEnlargement: true }).jpeg({ quality: 72 }).toBuffer();
    return `data:image/jpeg;base64,${buf.toString('base64')}`;
  } catch {
    return '';
  }
}

const CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:24px;background:#f6f6f4;color:#222}
h1{font-size:20px;margin:0 0 4px} .meta{color:#666;margin-bottom:20px}
.group{background:#fff;border:1px solid #ddd;border-radius:8px;padding:12px 16px;margin:0 0 18px}
.group h2{font-size:15px;margin:0 0 10px}
.row{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
.member{margin:0;max-width:360px}
.frame{position:relative;display:inline-block;line-height:0;border:1px solid #ccc}
.frame img{display:block;max-width:360px;max-height:360px}
.frame svg{position:absolute;inset:0;width:100%;height:100%;overflow:hidden}
.frame polygon{fill:rgba(255,60,60,.12);stroke:#e02020;stroke-width:2;vector-effect:non-scaling-stroke}
figcaption{font-size:12px;margin-top:6px;word-break:break-all}
.anchor figcaption b{color:#1a5}
.score{font-variant-numeric:tabular-nums}
`;

export interface ReportInput {
  root: string;
  generatedAt: string;
  filesScanned: number;
  groups: ScanGroup[];
}

/**
 * One self-contained HTML file: every image is an embedded thumbnail, each group shown
 * side by side against its anchor with score, inlier count and the matched region.
 */
export async function renderReport(input: ReportInput): Promise<string> {
  const sections: string[] = [];
  for (const g of input.groups) {
    const figures: string[] = [];
    for (const m of g.members) {
      const src = await thumbnail(join(input.root, m));
      const isAnchor = m === g.anchor;
      // Prefer the link found by querying the anchor: its region lies in member m, the
      // image it is drawn on (the anchor's corners inside m).
      const forward = isAnchor ? undefined : g.pairs.find((p) => p.query === g.anchor && p.match === m);
      const link = isAnchor ? undefined : forward ?? linkBetween(g, g.anchor, m);
      const region = forward?.region;
      const poly = region ? `<svg viewBox="0 0 1 1" preserveAspectRatio="none"><polygon points="${region.map(([x, y]) => `${x},${y}`).join(' ')}"/></svg>` : '';
      const caption = isAnchor
        ? '<b>reference</b>'
        : link
          ? `<span class="score">score ${link.score.toFixed(3)} · ${link.inliers} inliers${link.method ? ` · ${link.method}` : ''}</span>`
          : '<span class="score">linked through another member</span>';
      figures.push(`<figure class="member${isAnchor ? ' anchor' : ''}" data-path="${esc(m)}"${link ? ` data-score="${link.score}" data-inliers="${link.inliers}"` : ''}>`
        + `<div class="frame"><img alt="${esc(m)}" src="${src}">${poly}</div>`
        + `<figcaption>${esc(m)}<br>${caption}</figcaption></figure>`);
    }
    sections.push(`<section class="group" data-group="${g.id}" data-size="${g.members.length}"><h2>Group ${g.id} · ${g.members.length} images</h2><div class="row">${figures.join('')}</div></section>`);
  }
  const empty = input.groups.length === 0 ? '<p class="empty">No duplicates found.</p>' : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Doppel duplicate report</title>`
    + `<meta name="viewport" content="width=device-width,initial-scale=1"><style>${CSS}</style></head><body>`
    + `<h1>Duplicate report</h1><div class="meta">${esc(input.root)} · ${input.filesScanned} images scanned · `
    + `<span id="group-count">${input.groups.length}</span> duplicate groups · ${esc(input.generatedAt)}</div>`
    + `${empty}${sections.join('\n')}</body></html>\n`;
}
