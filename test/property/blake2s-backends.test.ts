// noble and node:crypto agree on BLAKE2s-256 and HMAC-BLAKE2s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { hash, hmacBlake2s, nobleHash, nobleHmacBlake2s } from '../../src/crypto/blake2s.js';

test('HASH and HMAC: both backends agree on random inputs', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 4 }), (key, parts) => {
      assert.deepEqual(hash(...parts), nobleHash(...parts));
      assert.deepEqual(hmacBlake2s(key, ...parts), nobleHmacBlake2s(key, ...parts));
    }),
    { numRuns: 300 },
  );
});
