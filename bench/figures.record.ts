/**
 * The figures a benchmark prints, also kept as data: `pnpm bench` (bench/run.bench.ts) sets
 * BENCH_FIGURES_OUT for each part it runs and reads that file back into
 * bench/results/latest.json, so every figure there (and in the READMEs generated from it)
 * carries the command that produced it. Run on its own, a bench only prints.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface Figure {
  /** Stable key, e.g. `search.http.c1.p50_ms`: the README tables look figures up by it. */
  key: string;
  value: number | string;
  unit?: string;
  /** What it is, in words (the summary's row label). */
  label: string;
}

const figures: Figure[] = [];
const out = process.env.BENCH_FIGURES_OUT;

/** Records one figure (printing stays the bench's own job). */
export function figure(key: string, label: string, value: number | string, unit?: string): void {
  if (typeof value === 'number' && !Number.isFinite(value)) value = String(value);
  const f = { key, label, value, ...(unit ? { unit } : {}) };
  const i = figures.findIndex((x) => x.key === key);
  if (i >= 0) figures[i] = f;
  else figures.push(f);
}

/** Writes what was recorded; called on exit, so a bench that stops early still leaves its figures. */
export function flushFigures(): void {
  if (!out) return;
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(figures, null, 1)}\n`);
}

if (out) {
  process.on('exit', flushFigures);
  // `pnpm bench` stops a part that passes its time limit with SIGTERM: keep what it measured.
  if (process.listenerCount('SIGTERM') === 0) process.on('SIGTERM', () => process.exit(143));
}

/** The 1, 5 and 15 minute load averages, as `uptime` prints them. */
export const loadAverage = (): string => {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'unknown';
  }
};
