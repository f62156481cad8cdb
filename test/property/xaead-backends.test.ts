// The native XChaCha20-Poly1305 (HChaCha20 in C + OpenSSL) equals noble's,
// the reference, on random inputs; it opens what noble seals and refuses any
// flipped bit, wrong key, nonce or associated data. Misuse is a RangeError
// from the wrapper (never reaching the addon) and from the addon itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nobleXaead } from '../../src/crypto/xaead.js';
import { loadNativeXaeadBinding, nativeXaead, nativeXaeadFrom, type NativeXaeadBinding } from '../../src/crypto/xaead-native.js';

const arb = fc.record({
  key: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  nonce: fc.uint8Array({ minLength: 24, maxLength: 24 }),
  pt: fc.uint8Array({ maxLength: 300 }),
  aad: fc.uint8Array({ maxLength: 64 }),
});

test('native: seal equals noble and each opens the other', { skip: nativeXaead === null }, () => {
  const x = nativeXaead!;
  fc.assert(
    fc.property(arb, ({ key, nonce, pt, aad }) => {
      const ours = x.seal(key, nonce, pt, aad);
      assert.deepEqual(ours, nobleXaead.seal(key, nonce, pt, aad));
      assert.deepEqual(x.open(key, nonce, ours, aad), pt);
      assert.deepEqual(nobleXaead.open(key, nonce, ours, aad), pt);
    }),
    { numRuns: 300 },
  );
});

test('native: any flipped bit, other key, nonce or AAD fails to open', { skip: nativeXaead === null }, () => {
  const x = nativeXaead!;
  fc.assert(
    fc.property(arb, fc.nat(), fc.integer({ min: 0, max: 7 }), ({ key, nonce, pt, aad }, pos, bit) => {
      const sealed = x.seal(key, nonce, pt, aad);
      const bad = sealed.slice();
      bad[pos % bad.length]! ^= 1 << bit;
      assert.equal(x.open(key, nonce, bad, aad), null);
      const k2 = key.slice();
      k2[pos % 32]! ^= 1 << bit;
      assert.equal(x.open(k2, nonce, sealed, aad), null);
      const n2 = nonce.slice();
      n2[pos % 24]! ^= 1 << bit; // the HChaCha20 half and the ChaCha20 half both count
      assert.equal(x.open(key, n2, sealed, aad), null);
      assert.equal(x.open(key, nonce, sealed, Uint8Array.of(...aad, 0)), null);
    }),
    { numRuns: 300 },
  );
});

test('native wrapper: bad key or nonce lengths are RangeErrors that never reach the addon; short input is null', () => {
  let calls = 0;
  const spy: NativeXaeadBinding = { xaeadSeal: () => void calls++, xaeadOpen: () => (calls++, true) };
  const x = nativeXaeadFrom(spy);
  const u = (n: number) => new Uint8Array(n);
  assert.throws(() => x.seal(u(31), u(24), u(16), u(0)), RangeError);
  assert.throws(() => x.seal(u(32), u(12), u(16), u(0)), RangeError);
  assert.throws(() => x.open(u(33), u(24), u(32), u(0)), RangeError);
  assert.throws(() => x.open(u(32), u(25), u(32), u(0)), RangeError);
  assert.equal(x.open(u(32), u(24), u(15), u(0)), null);
  assert.equal(calls, 0);
});

test('native addon: misuse is a TypeError/RangeError and a failed open zeroes its output', { skip: nativeXaead === null }, () => {
  const raw = loadNativeXaeadBinding() as unknown as Record<string, (...a: unknown[]) => unknown>;
  const u = (n: number) => new Uint8Array(n);
  assert.throws(() => raw.xaeadSeal!(u(32), u(24), u(0), u(16), u(31)), RangeError, 'output too short');
  assert.throws(() => raw.xaeadSeal!(u(16), u(24), u(0), u(16), u(32)), RangeError, 'short key');
  assert.throws(() => raw.xaeadSeal!(u(32), u(23), u(0), u(16), u(32)), RangeError, 'short nonce');
  assert.throws(() => raw.xaeadOpen!(u(32), u(24), u(0), u(15), u(0)), RangeError, 'input shorter than a tag');
  assert.throws(() => raw.xaeadOpen!(u(32), u(24), u(0), u(32), u(17)), RangeError, 'output of the wrong size');
  assert.throws(() => raw.xaeadOpen!(u(32), u(24), null, u(32), u(16)), TypeError);
  assert.throws(() => raw.xaeadOpen!(u(32), u(24), u(0), u(32)), TypeError, 'four arguments');
  const out = new Uint8Array(16).fill(7);
  assert.equal(raw.xaeadOpen!(u(32), u(24), u(0), u(32), out), false);
  assert.deepEqual(out, u(16));
});
