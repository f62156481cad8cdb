// Every BLAKE2s backend (node:crypto, the native addon) agrees with noble,
// the reference, on random inputs: HASH, HMAC and keyed BLAKE2s (MAC) with
// every key and output length 1..32. The native wrapper refuses misuse with
// a RangeError before calling the addon, and the addon refuses it too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { hash, hmacBlake2s, nobleBlake2s, nobleHash, nobleHmacBlake2s, nodeBlake2s, type Blake2s } from '../../src/crypto/blake2s.js';
import { loadNativeBlake2sBinding, nativeBlake2s, nativeBlake2sFrom, type NativeBlake2sBinding } from '../../src/crypto/blake2s-native.js';

test('HASH and HMAC: the module functions (node:crypto) agree with noble on random inputs', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 4 }), (key, parts) => {
      assert.deepEqual(hash(...parts), nobleHash(...parts));
      assert.deepEqual(hmacBlake2s(key, ...parts), nobleHmacBlake2s(key, ...parts));
    }),
    { numRuns: 300 },
  );
});

const backends: Blake2s[] = [nodeBlake2s, ...(nativeBlake2s ? [nativeBlake2s] : [])];
for (const b of backends) {
  test(`${b.name}: HASH, HMAC and MAC equal noble's on random inputs`, () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 100 }),
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 4 }),
        fc.uint8Array({ minLength: 1, maxLength: 32 }),
        fc.integer({ min: 1, max: 32 }),
        fc.uint8Array({ maxLength: 300 }),
        (hkey, parts, mkey, outLen, input) => {
          assert.deepEqual(b.hash(...parts), nobleBlake2s.hash(...parts));
          assert.deepEqual(b.hmac(hkey, ...parts), nobleBlake2s.hmac(hkey, ...parts));
          const got = new Uint8Array(outLen);
          const want = new Uint8Array(outLen);
          b.macInto(got, mkey, input);
          nobleBlake2s.macInto(want, mkey, input);
          assert.deepEqual(got, want);
        },
      ),
      { numRuns: 400 },
    );
  });
}

test('native: MAC output and input may be views into one buffer, and alternating lengths do not leak into each other', { skip: nativeBlake2s === null }, () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 64, maxLength: 200 }), fc.uint8Array({ minLength: 1, maxLength: 32 }), (buf, key) => {
      const ref16 = new Uint8Array(16);
      const ref32 = new Uint8Array(32);
      nobleBlake2s.macInto(ref16, key, buf.subarray(0, 48));
      nobleBlake2s.macInto(ref32, key, buf.subarray(0, 48));
      const a = buf.slice();
      nativeBlake2s!.macInto(a.subarray(32, 48), key, a.subarray(0, 48)); // output overlaps the input
      assert.deepEqual(a.subarray(32, 48), ref16);
      const o32 = new Uint8Array(32);
      nativeBlake2s!.macInto(o32, key, buf.subarray(0, 48));
      assert.deepEqual(o32, ref32);
      const o16 = new Uint8Array(16);
      nativeBlake2s!.macInto(o16, key, buf.subarray(0, 48));
      assert.deepEqual(o16, ref16);
    }),
    { numRuns: 200 },
  );
});

test('native wrapper: bad lengths and too many parts are RangeErrors that never reach the addon', () => {
  let calls = 0;
  const spy: NativeBlake2sBinding = { b2sHash: () => void calls++, b2sMac: () => void calls++, b2sHmac: () => void calls++ };
  const b = nativeBlake2sFrom(spy);
  const five = Array.from({ length: 5 }, () => new Uint8Array(1));
  const cases: [string, () => unknown][] = [
    ['mac empty key', () => b.macInto(new Uint8Array(16), new Uint8Array(0), new Uint8Array(4))],
    ['mac 33-byte key', () => b.macInto(new Uint8Array(16), new Uint8Array(33), new Uint8Array(4))],
    ['mac empty output', () => b.macInto(new Uint8Array(0), new Uint8Array(16), new Uint8Array(4))],
    ['mac 33-byte output', () => b.macInto(new Uint8Array(33), new Uint8Array(16), new Uint8Array(4))],
    ['hash 5 parts', () => b.hash(...five)],
    ['hmac 5 parts', () => b.hmac(new Uint8Array(32), ...five)],
  ];
  for (const [what, call] of cases) assert.throws(call, RangeError, what);
  assert.equal(calls, 0);
});

test('native addon: misuse is a TypeError/RangeError, called directly', { skip: nativeBlake2s === null }, () => {
  const raw = loadNativeBlake2sBinding() as unknown as Record<string, (...a: unknown[]) => unknown>;
  const u = (n: number) => new Uint8Array(n);
  assert.throws(() => raw.b2sHash!(u(31), u(1)), RangeError);
  assert.throws(() => raw.b2sHash!(u(32)), TypeError, 'no parts');
  assert.throws(() => raw.b2sHash!(u(32), u(1), u(1), u(1), u(1), u(1)), TypeError, 'five parts');
  assert.throws(() => raw.b2sHash!(u(32), 'abc'), TypeError);
  assert.throws(() => raw.b2sHash!(new Uint16Array(16), u(1)), TypeError);
  assert.throws(() => raw.b2sMac!(u(16), u(0), u(1)), RangeError);
  assert.throws(() => raw.b2sMac!(u(16), u(33), u(1)), RangeError);
  assert.throws(() => raw.b2sMac!(u(33), u(16), u(1)), RangeError);
  assert.throws(() => raw.b2sMac!(u(16), u(16), u(1), u(1)), TypeError, 'two inputs');
  assert.throws(() => raw.b2sHmac!(u(16), u(16), u(1)), RangeError);
  // After a refused call the next one is still right (no state left half-set).
  const out = u(16);
  raw.b2sMac!(out, Uint8Array.of(1, 2, 3), Uint8Array.of(4));
  const want = u(16);
  nobleBlake2s.macInto(want, Uint8Array.of(1, 2, 3), Uint8Array.of(4));
  assert.deepEqual(out, want);
});
