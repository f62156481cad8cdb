import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classify, readCounter, writeCounter } from '../../src/protocol/messages.js';
import { tai64n, tai64nAfter } from '../../src/protocol/tai64n.js';
import { paddedLength } from '../../src/device/send.js';

test('classify: exact lengths per type, reserved bytes zero', () => {
  const m = (type: number, len: number, reserved = 0) => {
    const b = new Uint8Array(len);
    if (len > 0) b[0] = type;
    if (len > 1) b[1] = reserved;
    return classify(b, 0, len);
  };
  assert.equal(m(1, 148), 1);
  assert.equal(m(1, 149), 'bad-length');
  assert.equal(m(2, 92), 2);
  assert.equal(m(2, 91), 'bad-length');
  assert.equal(m(3, 64), 3);
  assert.equal(m(4, 32), 4);
  assert.equal(m(4, 2000), 4);
  assert.equal(m(4, 31), 'bad-length');
  assert.equal(m(5, 148), 'unknown-type');
  assert.equal(m(1, 148, 1), 'unknown-type');
  assert.equal(m(1, 3), 'too-short');
});

test('64-bit counters: round trip below 2^53, refused above', () => {
  const b = new Uint8Array(8);
  for (const v of [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1]) {
    writeCounter(b, 0, v);
    assert.equal(readCounter(b, 0), v);
  }
  b.fill(0xff);
  assert.equal(readCounter(b, 0), -1);
});

test('TAI64N: 12 bytes, increasing with time, whitened below 2^24 ns', () => {
  const t0 = tai64n(1_700_000_000_000);
  const t1 = tai64n(1_700_000_000_020);
  const t2 = tai64n(1_700_000_001_000);
  assert.equal(t0.length, 12);
  assert.ok(tai64nAfter(t1, t0));
  assert.ok(tai64nAfter(t2, t1));
  assert.ok(!tai64nAfter(t0, t0));
  assert.equal(new DataView(t1.buffer).getUint32(8) % 0x1000000, 0);
  // seconds field: 2^62 + 10 + unix seconds
  assert.equal(new DataView(t0.buffer).getBigUint64(0), 0x4000000000000000n + 10n + 1_700_000_000n);
});

test('padding: to 16 bytes, never beyond the MTU', () => {
  assert.equal(paddedLength(0, 1420), 0);
  assert.equal(paddedLength(1, 1420), 16);
  assert.equal(paddedLength(16, 1420), 16);
  assert.equal(paddedLength(1419, 1420), 1420);
  assert.equal(paddedLength(1420, 1420), 1420);
  assert.equal(paddedLength(1413, 1420), 1420);
});
