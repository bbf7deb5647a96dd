import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mergeNeighbours } from '../src/duplicates.logic.js';

describe('merging the neighbours of the 8 orientations', () => {
  it('when orientations return the same path, then the best score and its orientation are kept', () => {
    const merged = mergeNeighbours([
      { orientation: 'identity', neighbors: [{ relative_path: 'p', score: 0.4 }, { relative_path: 'q', score: 0.3 }] },
      { orientation: 'rot90', neighbors: [{ relative_path: 'p', score: 0.95 }, { relative_path: 'self', score: 1 }] },
    ], 10, 'self');
    assert.deepEqual(merged, [{ relative_path: 'p', score: 0.95, orientation: 'rot90' }, { relative_path: 'q', score: 0.3, orientation: 'identity' }]);
  });
});
