// The privileged tier's gate (test/support/netns.ts): a skip reason on a
// developer's machine, an error under TB_REQUIRE_PRIVILEGED=1 (CI), so CI
// cannot pass with the privileged tests skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { privilegedSkipReason } from '../support/netns.js';

const missing = 'tb-no-such-tool-for-the-gate-test';

test('a missing tool is a skip reason without TB_REQUIRE_PRIVILEGED', { timeout: 30_000 }, () => {
  const reason = privilegedSkipReason([missing], {});
  assert.ok(reason !== null && (reason.includes(missing) || reason.includes('root')), `reason: ${reason}`);
});

test('with TB_REQUIRE_PRIVILEGED=1 a missing tool (or root) throws instead', { timeout: 30_000 }, () => {
  assert.throws(() => privilegedSkipReason([missing], { TB_REQUIRE_PRIVILEGED: '1' }), /TB_REQUIRE_PRIVILEGED=1, but the privileged tests cannot run here/);
});

test('with TB_REQUIRE_PRIVILEGED=1 and nothing missing there is no error', { timeout: 30_000, skip: process.getuid?.() !== 0 ? 'needs root' : false }, () => {
  assert.equal(privilegedSkipReason(['sh'], { TB_REQUIRE_PRIVILEGED: '1' }), null);
});
