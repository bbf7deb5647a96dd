import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { groupPairs } from '../src/scan-groups.logic.js';
import { renderPage } from '../src/scan-report.html.js';
import { buildReport } from '../src/scan-report.model.js';

const pair = (query: string, match: string, score = 0.9) => ({ query, match, score, inliers: 40 });

describe('scan grouping and report', () => {
  it('when links chain A~B and B~C, then A, B and C form one group anchored on the best-linked member', () => {
    const groups = groupPairs([pair('a', 'b'), pair('b', 'c'), pair('x', 'y'), pair('b', 'a')]);
    assert.equal(groups.length, 2);
    assert.equal(groups[0]!.anchor, 'b');
    assert.deepEqual(groups[0]!.members, ['b', 'a', 'c']);
    assert.deepEqual([...groups[1]!.members].sort(), ['x', 'y']);
    assert.deepEqual(groups.map((g) => g.id), [1, 2]);
  });

  it('when a dense link is one-way, then the stricter policies do not let it join two groups', () => {
    const dense = (q: string, m: string) => ({ ...pair(q, m), method: 'dense' as const });
    const links = [pair('a', 'b'), pair('x', 'y'), dense('b', 'x'), dense('c', 'd'), dense('d', 'c')];
    assert.equal(groupPairs(links, 'all').length, 2);
    const strict = groupPairs(links, 'sift-or-reciprocal');
    assert.deepEqual(strict.map((g) => [...g.members].sort()), [['a', 'b'], ['c', 'd'], ['x', 'y']]);
    assert.deepEqual(groupPairs(links, 'reciprocal').map((g) => [...g.members].sort()), [['c', 'd']]);
    // The default attaches lone files by one-way links but never merges two groups with one.
    assert.deepEqual(groupPairs(links).map((g) => [...g.members].sort()).sort(), [['a', 'b'], ['c', 'd'], ['x', 'y']]);
  });

  it('when there are no links, then the report says so and has no group', () => {
    const html = renderPage(buildReport({ root: '/r', folder: '/r', generatedAt: 't', filesScanned: 3, groups: [], facts: new Map() }), {});
    assert.match(html, /No duplicates found/);
    assert.match(html, /"groups":\[\]/);
  });

  it('when a path contains markup, then the report escapes it', () => {
    const html = renderPage(buildReport({ root: '/r', folder: '/r/<i>', generatedAt: 't', filesScanned: 2, groups: groupPairs([pair('<b>.jpg', 'x".jpg')]), facts: new Map() }), {});
    // In the embedded data no path can close the script element; in the header it is escaped.
    assert.doesNotMatch(html, /<b>\.jpg/);
    assert.match(html, /\\u003cb>\.jpg/);
    assert.match(html, /\/r\/&#60;i&#62;/);
  });
});
