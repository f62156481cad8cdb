// The in-place transport AEAD (both backends) against noble's RFC 8439
// chacha20poly1305 (whose own suite carries the RFC vectors): equal output,
// round trip, and rejection of any tampering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { nobleTransportAead, nodeTransportAead } from '../../src/crypto/aead.js';

function nonceOf(counter: number): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(4, BigInt(counter), true);
  return n;
}

const caseArb = fc.record({
  key: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  counter: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
  plaintext: fc.uint8Array({ maxLength: 1500 }),
  at: fc.integer({ min: 0, max: 64 }),
});

for (const aead of [nobleTransportAead, nodeTransportAead]) {
  test(`${aead.name}: seal equals RFC 8439 AEAD and opens again`, () => {
    fc.assert(
      fc.property(caseArb, ({ key, counter, plaintext, at }) => {
        const buf = new Uint8Array(at + plaintext.length + 16 + 8);
        buf.set(plaintext, at);
        aead.seal(key, counter, buf, at, plaintext.length);
        const ref = chacha20poly1305(key, nonceOf(counter)).encrypt(plaintext);
        assert.deepEqual(buf.subarray(at, at + ref.length), ref);
        assert.ok(aead.open(key, counter, buf, at, ref.length));
        assert.deepEqual(buf.subarray(at, at + plaintext.length), plaintext);
      }),
      { numRuns: 200 },
    );
  });

  test(`${aead.name}: any flipped bit, wrong counter or wrong key is rejected`, () => {
    fc.assert(
      fc.property(caseArb, fc.nat(), fc.integer({ min: 0, max: 7 }), ({ key, counter, plaintext }, pos, bit) => {
        const buf = new Uint8Array(plaintext.length + 16);
        buf.set(plaintext);
        aead.seal(key, counter, buf, 0, plaintext.length);
        const sealed = buf.slice();
        const bad = sealed.slice();
        bad[pos % bad.length]! ^= 1 << bit;
        assert.equal(aead.open(key, counter, bad, 0, bad.length), false);
        assert.equal(aead.open(key, counter + 1, sealed.slice(), 0, sealed.length), false);
        const k2 = key.slice();
        k2[0]! ^= 1;
        assert.equal(aead.open(k2, counter, sealed.slice(), 0, sealed.length), false);
      }),
      { numRuns: 200 },
    );
  });
}

test('a message shorter than a tag never opens', () => {
  for (const aead of [nobleTransportAead, nodeTransportAead]) assert.equal(aead.open(new Uint8Array(32), 0, new Uint8Array(15), 0, 15), false);
});
