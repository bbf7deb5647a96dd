import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseGroups, prCurve, quantile, recallAtK, scoreByTransform, scoreQueries, summarise, transformOf, type QueryOutcome } from '../src/eval-metrics.logic.js';
import { parseTruth } from '../src/eval-truth.fs.js';
import { renderPrCurve } from '../src/pr-curve.svg.js';

const tmp = mkdtempSync(join(tmpdir(), 'doppel-eval-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const dirs = { index: join(tmp, 'index'), queries: join(tmp, 'queries') };
mkdirSync(dirs.index);
mkdirSync(dirs.queries);
for (const f of ['a.jpg', 'b.jpg']) writeFileSync(join(dirs.index, f), 'x');
for (const f of ['a__crop.jpg', 'a__rot10.jpg', 'b__crop.jpg', 'z__crop.jpg']) writeFileSync(join(dirs.queries, f), 'x');

const o = (query: string, expected: string | null, verified: Array<[string, number]>, threshold = 0.5): QueryOutcome => ({
  query, expected, candidates: verified.map(([p]) => p), verified: verified.map(([path, score]) => ({ path, score })),
  declared: verified.filter(([, s]) => s >= threshold).map(([p]) => p),
});
const outcomes = [
  o('a__crop.jpg', 'a.jpg', [['a.jpg', 0.9], ['b.jpg', 0.1]]),
  o('a__rot10.jpg', 'a.jpg', [['b.jpg', 0.3], ['a.jpg', 0.4]]),
  o('b__crop.jpg', 'b.jpg', [['b.jpg', 0.8], ['a.jpg', 0.6]]),
  o('z__crop.jpg', null, [['a.jpg', 0.55]]),
];

describe('eval metrics', () => {
  it('when declarations are scored, then a wrong file and anything declared for a null query count against precision', () => {
    const s = scoreQueries(outcomes);
    // Declared: a.jpg (ok), b.jpg (ok), a.jpg for b (wrong), a.jpg for the null query (wrong).
    assert.deepEqual({ declared: s.declared, correct: s.correct, found: s.found, positives: s.positives }, { declared: 4, correct: 2, found: 2, positives: 3 });
    assert.equal(s.precision, 0.5);
    assert.equal(s.recall, 2 / 3);
    assert.ok(Math.abs(s.f1 - (2 * 0.5 * (2 / 3)) / (0.5 + 2 / 3)) < 1e-12);
    assert.equal(s.null_false_positive_rate, 1);
  });
  it('when candidates are ranked, then recall@1 and recall@10 count the true original among the first k', () => {
    assert.equal(recallAtK(outcomes, 1), 2 / 3);
    assert.equal(recallAtK(outcomes, 10), 1);
  });
  it('when transforms are grouped, then each group and each transform has its own figures, null queries included', () => {
    assert.equal(transformOf('x_by__artist__crop.jpg'), 'crop');
    assert.equal(transformOf('plain.jpg'), '(none)');
    const g = parseGroups(['crops=crop', 'rot=rot10,rot20']);
    assert.deepEqual(g, { crops: ['crop'], rot: ['rot10', 'rot20'] });
    const by = scoreByTransform(outcomes, g);
    assert.deepEqual(Object.keys(by.per_transform), ['crop', 'rot10']);
    assert.equal(by.per_group.crops!.queries, 3);
    assert.equal(by.per_group.crops!.nulls, 1);
    assert.equal(by.per_group.rot!.recall, 0);
    assert.deepEqual(summarise([]).queries, 0);
    assert.throws(() => parseGroups(['v2']), /--groups "v2": expected name=transform1,transform2/);
  });
  it('when the curve is drawn from recorded scores, then the run threshold reproduces the decisions and a higher one trades recall for precision', () => {
    const curve = prCurve(outcomes, [0, 0.5, 0.85, 1]);
    const at = (t: number) => curve.find((p) => p.threshold === t)!;
    const actual = scoreQueries(outcomes);
    assert.deepEqual([at(0.5).precision, at(0.5).recall], [actual.precision, actual.recall]);
    assert.deepEqual([at(0.85).precision, at(0.85).recall], [1, 1 / 3]);
    assert.equal(at(0).declared, 7);
    assert.deepEqual([at(1).precision, at(1).recall], [1, 0]);
    const svg = renderPrCurve([{ name: 'all', points: curve }], { title: 'pr', threshold: 0.5 });
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, />recall</);
    assert.match(svg, />precision</);
    assert.equal((svg.match(/<polyline/g) ?? []).length, 1);
  });
  it('when latencies are summarised, then p50 and p99 are nearest-rank quantiles', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.deepEqual([quantile(xs, 0.5), quantile(xs, 0.99), quantile([], 0.5)], [50, 99, 0]);
  });
});

describe('truth files', () => {
  const parse = (text: string) => parseTruth(text, 'truth.json', dirs);
  it('when the truth file is well formed, then every entry is read with its expected original or null', () => {
    assert.deepEqual(parse(JSON.stringify({ truth: { 'a__crop.jpg': 'a.jpg', 'z__crop.jpg': null } })), [
      { query: 'a__crop.jpg', expected: 'a.jpg' }, { query: 'z__crop.jpg', expected: null },
    ]);
  });
  it('when the truth file is bad, then it is refused with a message naming the entry', () => {
    assert.throws(() => parse('{"truth": {'), /truth\.json: not JSON/);
    assert.throws(() => parse('[]'), /truth\.json: .*expected \{"truth"/);
    assert.throws(() => parse('{"truth": {}}'), /"truth" has no entry/);
    assert.throws(() => parse(JSON.stringify({ truth: { 'a__crop.jpg': 3 } })), /entry "a__crop\.jpg": must be a file name \(string\) or null/);
    assert.throws(() => parse(JSON.stringify({ truth: { 'nope.jpg': null } })), /entry "nope\.jpg": no such file in the queries folder/);
    assert.throws(() => parse(JSON.stringify({ truth: { 'a__crop.jpg': 'c.jpg' } })), /entry "a__crop\.jpg": its original "c\.jpg" is not in the index folder/);
    assert.throws(() => parse(JSON.stringify({ truth: { '../index/a.jpg': null } })), /entry "\.\.\/index\/a\.jpg": the query must be a path inside the queries folder/);
  });
});
