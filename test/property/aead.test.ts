// The in-place transport AEAD (every backend) against noble's RFC 8439
// chacha20poly1305 (whose own suite carries the RFC vectors): equal output,
// round trip, rejection of any tampering with the buffer left as it was, and
// nothing written outside the packet's region. The native backend's wrapper
// and addon must also refuse misuse with a RangeError before touching memory.
import { test } from 'node:test';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { nobleTransportAead, nodeTransportAead, type TransportAead } from '../../src/crypto/aead.js';
import { defaultBackend } from '../../src/crypto/backend.js';
import { loadNativeAeadBinding, nativeAeadFrom, nativeAeadLoadError, nativeTransportAead, type NativeAeadBinding } from '../../src/crypto/aead-native.js';

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
  // The buffer and the key are views into larger memory this far in (byteOffset).
  viewOffset: fc.integer({ min: 0, max: 16 }),
});

/** A view of `len` bytes at `offset` into a larger buffer filled with a guard pattern. */
function viewInto(offset: number, len: number): { view: Uint8Array; whole: Uint8Array } {
  const whole = new Uint8Array(offset + len + 16).fill(0xa5);
  return { view: whole.subarray(offset, offset + len), whole };
}

test('native: the addon is built and exports the AEAD', () => {
  assert.ok(nativeTransportAead, `native AEAD unavailable: ${nativeAeadLoadError}`);
});

const aeads: TransportAead[] = [nobleTransportAead, nodeTransportAead, ...(nativeTransportAead ? [nativeTransportAead] : [])];

for (const aead of aeads) {
  test(`${aead.name}: seal equals RFC 8439 AEAD, opens again, and writes only inside its region`, () => {
    fc.assert(
      fc.property(caseArb, ({ key, counter, plaintext, at, viewOffset }) => {
        const { view: buf, whole } = viewInto(viewOffset, at + plaintext.length + 16 + 8);
        buf.set(plaintext, at);
        const k = viewInto(viewOffset, 32).view;
        k.set(key);
        aead.seal(k, counter, buf, at, plaintext.length);
        const ref = chacha20poly1305(key, nonceOf(counter)).encrypt(plaintext);
        assert.deepEqual(buf.subarray(at, at + ref.length), ref);
        const outside = (w: Uint8Array) => [...w.subarray(0, viewOffset + at), ...w.subarray(viewOffset + at + ref.length)];
        assert.ok(outside(whole).every((b) => b === 0xa5), 'bytes outside the region changed');
        assert.ok(aead.open(k, counter, buf, at, ref.length));
        assert.deepEqual(buf.subarray(at, at + plaintext.length), plaintext);
        assert.deepEqual(buf.subarray(at + plaintext.length, at + ref.length), ref.subarray(plaintext.length), 'open left the tag as it was');
        assert.ok(outside(whole).every((b) => b === 0xa5), 'bytes outside the region changed');
      }),
      { numRuns: 200 },
    );
  });

  test(`${aead.name}: any flipped bit, wrong counter or wrong key is rejected and the buffer is left untouched`, () => {
    fc.assert(
      fc.property(caseArb, fc.nat(), fc.integer({ min: 0, max: 7 }), ({ key, counter, plaintext }, pos, bit) => {
        const buf = new Uint8Array(plaintext.length + 16);
        buf.set(plaintext);
        aead.seal(key, counter, buf, 0, plaintext.length);
        const sealed = buf.slice();
        const bad = sealed.slice();
        bad[pos % bad.length]! ^= 1 << bit;
        const badBefore = bad.slice();
        assert.equal(aead.open(key, counter, bad, 0, bad.length), false);
        assert.deepEqual(bad, badBefore, 'a failed open changed the buffer');
        const other = counter === Number.MAX_SAFE_INTEGER ? counter - 1 : counter + 1;
        const b2 = sealed.slice();
        assert.equal(aead.open(key, other, b2, 0, b2.length), false);
        assert.deepEqual(b2, sealed, 'a failed open changed the buffer');
        const k2 = key.slice();
        k2[0]! ^= 1;
        const b3 = sealed.slice();
        assert.equal(aead.open(k2, counter, b3, 0, b3.length), false);
        assert.deepEqual(b3, sealed, 'a failed open changed the buffer');
      }),
      { numRuns: 200 },
    );
  });
}

test('a message shorter than a tag never opens', () => {
  for (const aead of aeads) {
    for (let len = 0; len < 16; len++) assert.equal(aead.open(new Uint8Array(32), 0, new Uint8Array(15), 0, len), false, `${aead.name}, ${len} bytes`);
  }
});

// Misuse: the wrapper refuses before calling the addon at all.
test('native wrapper: out-of-range region, bad key or counter is a RangeError and never reaches the addon', () => {
  let calls = 0;
  const spy: NativeAeadBinding = {
    aeadSeal: () => void calls++,
    aeadOpen: () => (calls++, true),
  };
  const aead = nativeAeadFrom(spy);
  const key = new Uint8Array(32);
  const buf = new Uint8Array(64);
  const cases: [string, () => unknown][] = [
    ['seal past the end', () => aead.seal(key, 0, buf, 0, 49)],
    ['seal tag past the end', () => aead.seal(key, 0, buf, 40, 10)],
    ['seal negative at', () => aead.seal(key, 0, buf, -1, 4)],
    ['seal negative len', () => aead.seal(key, 0, buf, 4, -1)],
    ['seal fractional at', () => aead.seal(key, 0, buf, 1.5, 4)],
    ['seal NaN len', () => aead.seal(key, 0, buf, 0, NaN)],
    ['seal short key', () => aead.seal(key.subarray(1), 0, buf, 0, 4)],
    ['seal negative counter', () => aead.seal(key, -1, buf, 0, 4)],
    ['seal counter beyond 2^53', () => aead.seal(key, 2 ** 60, buf, 0, 4)],
    ['open past the end', () => aead.open(key, 0, buf, 0, 65)],
    ['open at past the end', () => aead.open(key, 0, buf, 65, 0)],
    ['open negative at', () => aead.open(key, 0, buf, -16, 32)],
    ['open fractional len', () => aead.open(key, 0, buf, 0, 16.5)],
    ['open long key', () => aead.open(new Uint8Array(33), 0, buf, 0, 32)],
  ];
  for (const [what, call] of cases) assert.throws(call, RangeError, what);
  assert.equal(calls, 0);
  aead.seal(key, 0, buf, 0, 48);
  assert.equal(aead.open(key, 0, buf, 0, 64), true);
  assert.equal(aead.open(key, 0, buf, 48, 15), false, 'short input is false, not a call');
  assert.equal(calls, 2);
});

// The addon's own checks, called directly: memory safety must not rest on the wrapper.
test('native addon: misuse is a TypeError/RangeError and nothing outside the buffer is written', { skip: nativeTransportAead === null }, () => {
  const b = loadNativeAeadBinding();
  const raw = b as unknown as Record<string, (...a: unknown[]) => unknown>;
  const key = new Uint8Array(32);
  const { view: buf, whole } = viewInto(8, 64);
  const before = whole.slice();
  const ranges: [string, unknown[]][] = [
    ['tag past the end', [key, 0, buf, 0, 49]],
    ['at past the end', [key, 0, buf, 65, 0]],
    ['negative at', [key, 0, buf, -8, 4]],
    ['negative len', [key, 0, buf, 0, -1]],
    ['fractional at', [key, 0, buf, 0.5, 4]],
    ['NaN at', [key, 0, buf, NaN, 4]],
    ['huge len', [key, 0, buf, 0, 2 ** 40]],
    ['short key', [key.subarray(1), 0, buf, 0, 4]],
    ['negative counter', [key, -1, buf, 0, 4]],
    ['fractional counter', [key, 0.5, buf, 0, 4]],
    ['counter 2^64', [key, 2 ** 64, buf, 0, 4]],
    ['infinite counter', [key, Infinity, buf, 0, 4]],
  ];
  for (const [what, args] of ranges) {
    assert.throws(() => raw.aeadSeal!(...args), RangeError, `seal: ${what}`);
    if (what !== 'tag past the end') assert.throws(() => raw.aeadOpen!(...args), RangeError, `open: ${what}`);
  }
  assert.throws(() => raw.aeadOpen!(key, 0, buf, 0, 65), RangeError, 'open past the end');
  const types: [string, unknown[]][] = [
    ['no arguments', []],
    ['four arguments', [key, 0, buf, 0]],
    ['key not bytes', [new Uint16Array(16), 0, buf, 0, 4]],
    ['buffer not bytes', [key, 0, new Uint32Array(16), 0, 4]],
    ['buffer an ArrayBuffer', [key, 0, new ArrayBuffer(64), 0, 4]],
    ['counter a BigInt', [key, 0n, buf, 0, 4]],
    ['at a string', [key, 0, buf, '0', 4]],
  ];
  for (const [what, args] of types) {
    assert.throws(() => raw.aeadSeal!(...args), TypeError, `seal: ${what}`);
    assert.throws(() => raw.aeadOpen!(...args), TypeError, `open: ${what}`);
  }
  assert.deepEqual(whole, before, 'a refused call wrote to the buffer');
  // Counters beyond 2^53 are still exact doubles and give the RFC nonce.
  const big = 2 ** 63;
  const pt = new Uint8Array(20).fill(3);
  const out = new Uint8Array(36);
  out.set(pt);
  b.aeadSeal(key, big, out, 0, 20);
  assert.deepEqual(out, chacha20poly1305(key, nonceOf(big)).encrypt(pt));
});

test('defaultBackend: native when built, TB_CRYPTO_AEAD names one, anything else is a RangeError', () => {
  if (!process.env.TB_CRYPTO_AEAD) assert.equal(defaultBackend().aead.name, nativeTransportAead ? 'native' : 'node');
  assert.equal(defaultBackend('').aead.name, nativeTransportAead ? 'native' : 'node');
  for (const name of ['node', 'noble']) assert.equal(defaultBackend(name).aead.name, name);
  if (nativeTransportAead) assert.equal(defaultBackend('native').aead, nativeTransportAead);
  else assert.throws(() => defaultBackend('native'), /native AEAD is unavailable/);
  assert.throws(() => defaultBackend('openssl'), RangeError);
});

// Each thread has its own cipher contexts (per-environment state, freed by a cleanup hook).
test('native: works in a worker thread, which then exits cleanly', { skip: nativeTransportAead === null }, async () => {
  const src = `
    import { parentPort } from 'node:worker_threads';
    import { nativeTransportAead as a } from ${JSON.stringify(new URL('../../src/crypto/aead-native.js', import.meta.url).href)};
    const key = new Uint8Array(32).fill(9), buf = new Uint8Array(48);
    buf.fill(7, 0, 32);
    a.seal(key, 3, buf, 0, 32);
    parentPort.postMessage([...buf]);`;
  const w = new Worker(new URL(`data:text/javascript,${encodeURIComponent(src)}`));
  const [msg] = (await once(w, 'message')) as [number[]];
  const [code] = (await once(w, 'exit')) as [number];
  assert.equal(code, 0);
  assert.deepEqual(Uint8Array.from(msg), chacha20poly1305(new Uint8Array(32).fill(9), nonceOf(3)).encrypt(new Uint8Array(32).fill(7)));
});
