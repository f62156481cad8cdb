// The replay window against a reference model: a set of seen counters and the
// window rule (accept once, and only within REPLAY_WINDOW of the highest).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { REPLAY_WINDOW, ReplayFilter } from '../../src/protocol/replay.js';
import { REPLAY_WINDOW_SIZE } from '../../src/protocol/constants.js';

test('window is at least the 8128 the spec asks for', () => {
  assert.ok(REPLAY_WINDOW >= REPLAY_WINDOW_SIZE);
});

test('filter agrees with the reference model', () => {
  const limit = 1_000_000;
  const counterArb = fc.oneof(
    fc.integer({ min: 0, max: 20_000 }),
    fc.integer({ min: 0, max: limit + 10 }),
  );
  fc.assert(
    fc.property(fc.array(counterArb, { maxLength: 400 }), (counters) => {
      const f = new ReplayFilter();
      const seen = new Set<number>();
      let last = 0;
      for (const c of counters) {
        const expected = c < limit && !seen.has(c) && (c > last || last - c <= REPLAY_WINDOW);
        assert.equal(f.validate(c, limit), expected, `counter ${c} (last ${last})`);
        if (expected) {
          seen.add(c);
          if (c > last) last = c;
        }
      }
    }),
    { numRuns: 500 },
  );
});

test('the kernel\'s sequence: in-order, reordered, duplicates, far jumps', () => {
  const f = new ReplayFilter();
  const L = 2 ** 53;
  assert.ok(f.validate(0, L));
  assert.ok(!f.validate(0, L));
  assert.ok(f.validate(1, L));
  assert.ok(f.validate(3, L));
  assert.ok(f.validate(2, L));
  assert.ok(!f.validate(2, L));
  assert.ok(f.validate(REPLAY_WINDOW + 3, L));
  assert.ok(f.validate(3 + 1, L), 'exactly at the window edge');
  assert.ok(!f.validate(2, L), 'just behind the window');
  assert.ok(f.validate(1e12, L), 'a far jump clears the ring');
  assert.ok(!f.validate(1e12 - REPLAY_WINDOW - 1, L));
  assert.ok(f.validate(1e12 - 1, L));
  assert.ok(!f.validate(L, L), 'the limit itself is rejected');
});
