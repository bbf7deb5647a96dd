/**
 * bench/results/latest.json as markdown: the whole summary (latest.md) and the figures
 * blocks of the READMEs (bench/readme.figures.ts writes them, a test checks them). Every
 * rendered figure comes with the command that produced it and the load it ran under.
 */
import type { Figure } from './figures.record.js';

export interface PartResult {
  name: string; what: string; command: string; commit: string; status: string; started: string; duration_s: number;
  load_before: string; load_after: string; figures: Figure[];
}

export interface BenchResults {
  mode: 'full' | 'quick' | 'mixed'; command: string; date: string; duration_s: number; commit: string;
  machine: { host: string; cpus: number; cpu_model: string; memory_gib: number; node: string };
  parts: PartResult[];
}

export const formatValue = (f: Pick<Figure, 'value' | 'unit'> & { key?: string }): string => {
  if (typeof f.value === 'string') return f.value;
  const v = f.value;
  // A recall of exactly 1 still reads as 1.000 beside 0.986.
  const digits = f.unit === '%' ? 1 : f.key?.endsWith('.recall') ? 3 : Number.isInteger(v) ? 0 : Math.abs(v) < 1 ? 3 : Math.abs(v) < 100 ? 2 : 1;
  const s = v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return f.unit ? (f.unit === '%' ? `${s}%` : `${s} ${f.unit}`) : s;
};

const find = (r: BenchResults, key: string): { part: PartResult; figure: Figure } | undefined => {
  for (const part of r.parts) {
    const figure = part.figures.find((f) => f.key === key);
    if (figure) return { part, figure };
  }
  return undefined;
};
const num = (r: BenchResults, key: string): number | undefined => {
  const v = find(r, key)?.figure.value;
  return typeof v === 'number' ? v : undefined;
};

/** Side-by-side ratios the issue asks for: ours over the raw runtime or the other implementation. */
export const RATIOS: Array<{ label: string; num: string; den: string; note: string }> = [
  { label: 'encoder HTTP /encode/batch over raw onnxruntime session.run (batch 16)', num: 'encoder.http.batch32.img_per_s', den: 'encoder.raw.batch16.img_per_s', note: 'img/s over img/s' },
  { label: 'encoder HTTP /encode/batch over the series bound 1/(1/decode + 1/inference)', num: 'encoder.http.batch32.img_per_s', den: 'encoder.series.img_per_s', note: 'img/s over img/s' },
  { label: 'encoder HTTP /encode/batch over OpenCV dnn (same model, same images)', num: 'encoder.http.batch32.img_per_s', den: 'encoder.opencv_dnn.img_per_s', note: 'img/s over img/s' },
  { label: 'search: HNSW at the default ef over brute force, in-process QPS', num: 'search.ef64.qps', den: 'search.exact.qps', note: 'QPS over QPS' },
  { label: 'search: HTTP POST /search (1 client) over in-process, QPS', num: 'search.http.c1.qps', den: 'search.ef64.qps', note: 'QPS over QPS' },
  { label: 'search: the service\'s collection over raw hnswlib-node, in-process QPS at the default ef', num: 'search.ef64.qps', den: 'search.raw.ef64.qps', note: 'QPS over QPS (same vectors, same index parameters)' },
  { label: 'search: the service\'s collection over raw hnswlib-node, in-process QPS at ef 20', num: 'search.ef20.qps', den: 'search.raw.ef20.qps', note: 'QPS over QPS' },
  { label: 'search: raw hnswlib-node at the default ef over brute force, QPS', num: 'search.raw.ef64.qps', den: 'search.exact.qps', note: 'QPS over QPS' },
  { label: 'matcher: per-pair check, matching pairs, Node over python3-opencv (p50)', num: 'matcher.pair.matching.p50_ms', den: 'matcher.python.matching.p50_ms', note: 'ms over ms (lower is faster)' },
  { label: 'matcher: per-pair check, non-matching pairs, Node over python3-opencv (p50)', num: 'matcher.pair.nonmatching.p50_ms', den: 'matcher.python.nonmatching.p50_ms', note: 'ms over ms (lower is faster)' },
  { label: 'matcher: SIFT extraction, Node over python3-opencv (p50)', num: 'matcher.extract.p50_ms', den: 'matcher.python.extract.p50_ms', note: 'ms over ms (lower is faster)' },
  { label: 'backends: pgvector (PGlite) over hnswlib, build rate', num: 'backends.pglite.build.vectors_per_s', den: 'backends.hnswlib.build.vectors_per_s', note: 'vectors/s over vectors/s' },
  { label: 'backends: pgvector (PGlite) over hnswlib, QPS at the default ef (1 client)', num: 'backends.pglite.c1.qps', den: 'backends.hnswlib.c1.qps', note: 'QPS over QPS' },
];

/** The ratio rows, all or those whose label starts with `prefix` (e.g. `encoder`). */
export function ratioRows(r: BenchResults, prefix = ''): string[] {
  const rows: string[] = [];
  for (const x of RATIOS.filter((y) => y.label.startsWith(prefix))) {
    const a = num(r, x.num);
    const b = num(r, x.den);
    if (a === undefined || b === undefined || b === 0) continue;
    rows.push(`| ${x.label} | ${(a / b).toFixed(2)}x | ${x.note} (\`${x.num}\` / \`${x.den}\`) |`);
  }
  return rows;
}

const partHeader = (p: PartResult) =>
  `\`${p.command}\`: ${p.status}, ${formatDuration(p.duration_s)}, load average ${p.load_before} before, ${p.load_after} after (started ${p.started.slice(0, 16).replace('T', ' ')} UTC, commit ${p.commit.slice(0, 7)})`;

export const formatDuration = (s: number): string => {
  // Rounded first, so 779.7 s reads 13 min 0 s, not 12 min 60 s.
  const t = Math.round(s);
  return s < 90 ? `${t} s` : `${Math.floor(t / 60)} min ${t % 60} s`;
};

/** latest.md: every part's figures, then the ratios. */
export function renderSummary(r: BenchResults): string {
  const out = [
    `# Benchmark results (${r.mode} run)`, '',
    `\`${r.command}\` on ${r.date.slice(0, 16).replace('T', ' ')} UTC, ${formatDuration(r.duration_s)} in all; commit ${r.commit};`,
    `${r.machine.cpus} x ${r.machine.cpu_model}, ${r.machine.memory_gib} GiB, node ${r.machine.node}. Timings depend on the load average noted per part (the machine is shared); quality figures do not.`,
    '',
  ];
  for (const p of r.parts) {
    out.push(`## ${p.name}: ${p.what}`, '', partHeader(p), '', '| figure | value | key |', '| --- | ---: | --- |');
    for (const f of p.figures) out.push(`| ${f.label} | ${formatValue(f)} | \`${f.key}\` |`);
    out.push('');
  }
  const ratios = ratioRows(r);
  if (ratios.length) out.push('## Side by side', '', '| ratio | value | of |', '| --- | ---: | --- |', ...ratios, '');
  return `${out.join('\n')}`;
}

/** A README block: rows of figures looked up by key, with the command and load of each part they come from. */
export interface Block {
  title?: string;
  rows: Array<{ label: string; keys: string[] }>;
  /** Append the side-by-side ratios: all (true) or those whose label starts with this. */
  ratios?: boolean | string;
}

export function renderBlock(r: BenchResults, b: Block): string {
  const used = new Set<PartResult>();
  const lines = ['| what | figure | part |', '| --- | --- | --- |'];
  for (const row of b.rows) {
    const hits = row.keys.map((k) => find(r, k));
    if (hits.some((h) => !h)) continue;
    for (const h of hits) used.add(h!.part);
    lines.push(`| ${row.label} | ${hits.map((h) => formatValue(h!.figure)).join(' / ')} | ${hits[0]!.part.name} |`);
  }
  if (b.ratios) lines.push(...ratioRows(r, b.ratios === true ? '' : b.ratios).map((x) => x.replace(/\| ([^|]+) \|$/, '| ratio |')));
  const cmds = [...used].map((p) => `- ${p.name}: ${partHeader(p)}`);
  return [
    ...(b.title ? [b.title, ''] : []),
    ...lines, '',
    `From \`${r.command}\` (${r.mode} run, ${r.date.slice(0, 10)}, commit ${r.commit.slice(0, 7)}, ${r.machine.cpus} x ${r.machine.cpu_model}); each part's command:`,
    ...cmds,
  ].join('\n');
}

/** Rows of a table whose cells are figures: one line per row key prefix, one column per suffix. */
export function renderGrid(r: BenchResults, head: string[], rows: Array<{ cells: string[]; prefix: string }>, suffixes: string[]): string[] {
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`];
  for (const row of rows) {
    const vals = suffixes.map((s) => find(r, `${row.prefix}${s}`));
    if (vals.every((v) => !v)) continue;
    lines.push(`| ${[...row.cells, ...vals.map((v) => (v ? formatValue(v.figure) : '-'))].join(' | ')} |`);
  }
  return lines;
}

/** A figure as printed (value and unit), or undefined when the run did not record it. */
export const valueOf = (r: BenchResults, key: string): string | undefined => {
  const h = find(r, key);
  return h ? formatValue(h.figure) : undefined;
};

export const partOf = (r: BenchResults, name: string) => r.parts.find((p) => p.name === name);
export const commandLine = (p: PartResult) => partHeader(p);
