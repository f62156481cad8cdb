// The two X25519 backends agree on random keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nobleX25519, nodeX25519 } from '../../src/crypto/x25519.js';

test('noble and node:crypto X25519 agree on public keys and shared secrets', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (a, b) => {
      const pa = nobleX25519.publicKey(a);
      assert.deepEqual(nodeX25519.publicKey(a), pa);
      const pb = nodeX25519.publicKey(b);
      assert.deepEqual(nobleX25519.sharedSecret(a, pb), nodeX25519.sharedSecret(a, pb));
      assert.deepEqual(nodeX25519.sharedSecret(a, pb), nodeX25519.sharedSecret(b, pa));
    }),
    { numRuns: 100 },
  );
});
