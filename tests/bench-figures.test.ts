import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BLOCKS, RESULTS, renderFile } from '../bench/readme.figures.js';
import { formatValue, renderBlock, renderSummary, type BenchResults } from '../bench/results.summary.js';

/* The READMEs' generated figures tables against bench/results/latest.json (what `pnpm bench` wrote). */
const root = fileURLToPath(new URL('..', import.meta.url));

const sample = (): BenchResults => ({
  mode: 'quick', command: 'pnpm bench --quick', date: '2026-12-01T13:00:00.000Z', duration_s: 200, commit: 'abcdef0123456789',
  machine: { host: 'h', cpus: 2, cpu_model: 'cpu', memory_gib: 24, node: 'v20' },
  parts: [{
    name: 'search', what: 'search', command: 'BENCH_N=3000 node bench/search/search.bench.ts', commit: 'abcdef0123456789', status: 'ok',
    started: '2026-12-01T13:00:00.000Z', duration_s: 60, load_before: '1.00 1.00 1.00', load_after: '2.00 1.00 1.00',
    figures: [
      { key: 'search.ef64.qps', label: 'ef=64 QPS', value: 1363.4, unit: 'QPS' },
      { key: 'search.exact.qps', label: 'exact QPS', value: 20, unit: 'QPS' },
      { key: 'search.ef64.recall', label: 'ef=64 recall', value: 0.9995 },
    ],
  }],
});

describe('bench figures', () => {
  it('when the READMEs are rendered from bench/results/latest.json, then their figures blocks are exactly that', () => {
    assert.ok(existsSync(RESULTS), 'bench/results/latest.json is missing: run pnpm bench');
    const results = JSON.parse(readFileSync(RESULTS, 'utf8')) as BenchResults;
    for (const file of new Set(BLOCKS.map((b) => b.file))) {
      const text = readFileSync(join(root, file), 'utf8');
      assert.equal(renderFile(text, file, results), text, `${file}: run pnpm bench:readme (its figures blocks differ from bench/results/latest.json)`);
    }
  });

  it('when every part of latest.json is listed, then each has its command, load average and figures', () => {
    const results = JSON.parse(readFileSync(RESULTS, 'utf8')) as BenchResults;
    assert.ok(results.parts.length > 0);
    for (const p of results.parts) {
      assert.match(p.command, /node .*bench\//, `${p.name}: no command`);
      assert.match(p.load_before, /^\d/, `${p.name}: no load average`);
      assert.ok(p.status !== 'ok' || p.figures.length > 0, `${p.name}: ok without figures`);
    }
  });

  it('when a block names a figure the run did not record, then the row is left out rather than shown without a command', () => {
    const md = renderBlock(sample(), { rows: [{ label: 'known', keys: ['search.ef64.qps'] }, { label: 'missing', keys: ['search.ef64.qps', 'search.nothing'] }] });
    assert.match(md, /\| known \| 1,363\.4 QPS \| search \|/);
    assert.doesNotMatch(md, /missing/);
    assert.match(md, /BENCH_N=3000 node bench\/search\/search\.bench\.ts`: ok, 60 s, load average 1\.00 1\.00 1\.00 before/);
  });

  it('when the summary is rendered, then the side-by-side ratio is computed from the two figures', () => {
    const md = renderSummary(sample());
    assert.match(md, /HNSW at the default ef over brute force, in-process QPS \| 68\.17x/);
    assert.equal(formatValue({ value: 0.9995 }), '1.000');
    assert.equal(formatValue({ value: 97.25, unit: '%' }), '97.3%');
    assert.equal(formatValue({ value: 'n/a' }), 'n/a');
  });
});
