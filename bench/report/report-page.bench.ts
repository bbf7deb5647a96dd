// Report page at scale: N generated images (default 5,000) in duplicate groups of 2-4,
// the report written as `doppel scan` writes it (thumbnails in a sidecar folder above
// EMBED_MAX_IMAGES), then opened in headless Chromium to time the first group.
// Usage: node --conditions=source --import tsx bench/report/report-page.bench.ts [--images 5000] [--runs 3] [--keep DIR]
// Figures: page size, sidecar size, write time, and in Chromium the time from navigation
// to the first group drawn with its thumbnails decoded, and to the load event.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { mulberry32 } from '@doppel/service-kit';
import { syntheticImage } from '../../tests/helpers/images.fixture.js';
import { openChromium } from '../../tests/helpers/chromium.fixture.js';
import { figure } from '../figures.record.js';
import { buildReport, collectFacts, writeReportPage, EMBED_MAX_IMAGES, type ScanGroup, type ScanPair } from '@doppel/cli';

const { values: flags } = parseArgs({ options: { images: { type: 'string', default: '5000' }, runs: { type: 'string', default: '3' }, keep: { type: 'string' } } });
const N = Number(flags.images);
const RUNS = Number(flags.runs);
const log = (s: string) => process.stderr.write(`${s}\n`);
const tmp = mkdtempSync(join(tmpdir(), 'doppel-report-bench-'));
const root = join(tmp, 'photos');

try {
  const rnd = mulberry32(42);
  const paths: string[] = [];
  const groups: ScanGroup[] = [];
  log(`generating ${N} images ...`);
  let t = performance.now();
  for (let i = 0; paths.length < N; i++) {
    const size = Math.min(N - paths.length, 2 + Math.floor(rnd() * 3));
    if (size < 2) break;
    const members = Array.from({ length: size }, (_, k) => `folder${i % 20}/g${i}-${k}.jpg`);
    const pairs: ScanPair[] = members.slice(1).map((m) => {
      const c = 0.05 + rnd() * 0.15;
      return { query: m, match: members[0]!, score: 0.6 + rnd() * 0.4, inliers: 20 + Math.floor(rnd() * 200), method: rnd() < 0.1 ? 'dense' : 'sift', region: [[c, c], [1 - c, c], [1 - c, 1 - c], [c, 1 - c]] };
    });
    groups.push({ id: groups.length + 1, anchor: members[0]!, members, pairs });
    paths.push(...members);
  }
  for (const dir of new Set(paths.map((p) => p.split('/')[0]!))) mkdirSync(join(root, dir), { recursive: true });
  // One generated picture per group, written under each member's name (sizes differ a little).
  for (const g of groups) {
    const img = await syntheticImage(g.id, 160 + (g.id % 5) * 8, 120);
    for (const m of g.members) writeFileSync(join(root, m), img);
  }
  log(`  ${paths.length} images in ${groups.length} groups, ${((performance.now() - t) / 1000).toFixed(1)} s`);

  t = performance.now();
  const { facts } = await collectFacts(root, paths);
  const report = buildReport({ root, folder: root, generatedAt: new Date().toISOString(), filesScanned: paths.length, groups, facts });
  const html = join(tmp, 'out', 'report.html');
  const page = await writeReportPage(report, { htmlPath: html });
  const writeMs = performance.now() - t;
  log(`  report written in ${(writeMs / 1000).toFixed(1)} s: page ${(page.htmlBytes / 1e6).toFixed(2)} MB, sidecar ${(page.sidecarBytes / 1e6).toFixed(1)} MB (${page.thumbnails} thumbnails)`);
  if (flags.keep) cpSync(join(tmp, 'out'), flags.keep, { recursive: true });

  const browser = await openChromium(join(tmp, 'profile'));
  const firstGroup: number[] = [];
  const loaded: number[] = [];
  const allGroupsRendered: number[] = [];
  try {
    for (let r = 0; r < RUNS; r++) {
      const tab = await browser.newPage();
      await tab.setViewportSize({ width: 1280, height: 900 });
      const t0 = performance.now();
      const nav = tab.goto(pathToFileURL(html).href, { waitUntil: 'load' }).then(() => loaded.push(performance.now() - t0));
      // First group drawn and every thumbnail in it decoded.
      await tab.waitForFunction("(() => { const s = document.querySelector('section.group'); return !!s && Array.from(s.querySelectorAll('img')).every((i) => i.complete && i.naturalWidth > 0); })()", undefined, { polling: 'raf' });
      firstGroup.push(performance.now() - t0);
      await nav;
      // Scrolling to the end renders the rest lazily; how long until every group is in the DOM.
      const t1 = performance.now();
      await tab.evaluate(`(async () => { const end = Date.now() + 120000; while (document.querySelectorAll('section.group').length < ${groups.length} && Date.now() < end) { window.scrollTo(0, document.body.scrollHeight); await new Promise((r) => setTimeout(r, 16)); } })()`);
      const count = await tab.evaluate("document.querySelectorAll('section.group').length");
      if (count !== groups.length) throw new Error(`only ${String(count)} of ${groups.length} groups rendered after 2 minutes of scrolling`);
      allGroupsRendered.push(performance.now() - t1);
      log(`  run ${r + 1}: first group ${Math.round(firstGroup.at(-1)!)} ms, load ${Math.round(loaded.at(-1)!)} ms, all groups after scrolling ${Math.round(allGroupsRendered.at(-1)!)} ms`);
      await tab.close();
    }
  } finally {
    await browser.close();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const out = {
    images: paths.length, groups: groups.length, embed_max_images: EMBED_MAX_IMAGES,
    page_bytes: page.htmlBytes, sidecar_bytes: page.sidecarBytes, thumbnails: page.thumbnails, write_s: Math.round(writeMs / 100) / 10,
    first_group_ms_median: Math.round(median(firstGroup)), first_group_ms: firstGroup.map(Math.round),
    load_event_ms_median: Math.round(median(loaded)),
    scroll_to_last_group_ms_median: Math.round(median(allGroupsRendered)),
    runs: RUNS, loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  figure('report.images', 'images in the report (generated groups of 2-4)', paths.length);
  figure('report.page_mb', 'report page size', page.htmlBytes / 1e6, 'MB');
  figure('report.sidecar_mb', 'thumbnail sidecar folder size', page.sidecarBytes / 1e6, 'MB');
  figure('report.write_s', 'facts + report written', writeMs / 1000, 's');
  figure('report.first_group_ms', `Chromium: navigation to the first group drawn, median of ${RUNS}`, median(firstGroup), 'ms');
  figure('report.load_ms', `Chromium: load event, median of ${RUNS}`, median(loaded), 'ms');
  figure('report.scroll_ms', `Chromium: scrolling until every group is rendered, median of ${RUNS}`, median(allGroupsRendered), 'ms');
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
