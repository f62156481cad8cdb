// The UDP bind's receive-side shed (native/src/udp-shed.cc) against its
// reference model in TypeScript: the device's own classify()
// (src/protocol/messages.ts) and the handshake queue's admission
// (RateLimiter.take, src/protocol/rate-limiter.ts: the share, and under load
// the smaller share as well, as device-core.ts queueHandshake takes them),
// plus the per-call cap written out here. For random streams of (type, size, source, time) the
// verdicts must be equal message for message — the same doubles, the same
// keys (IPv4 address, IPv6 /64, port ignored), and the native table's
// once-a-second sweep never changing a decision (the model sweeps at other
// random moments). No root: udpShedForTest (the test build) runs the decision
// without a socket; test/privileged/io-udp.test.ts runs it behind recvmmsg.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SHED_BAD_LENGTH, SHED_QUEUE_FULL, SHED_SOURCE_LIMITED, SHED_TOO_SHORT, SHED_UNKNOWN_TYPE } from '../../src/io/batch.js';
import { encodeEndpoint, ENDPOINT_SIZE, type Endpoint } from '../../src/io/endpoint.js';
import { classify, MSG_TRANSPORT, type DropReason } from '../../src/protocol/messages.js';
import { ALLOWED_FRESH, RateLimiter, REFUSED } from '../../src/protocol/rate-limiter.js';
import {
  HANDSHAKE_QUEUE_SOURCE_BURST,
  HANDSHAKE_QUEUE_SOURCE_BURST_UNDER_LOAD,
  HANDSHAKE_QUEUE_SOURCE_RATE,
  HANDSHAKE_QUEUE_SOURCE_RATE_UNDER_LOAD,
  HANDSHAKES_PER_BATCH,
} from '../../src/device/handshake-queue.js';
import { testBinding } from '../support/test-binding.js';

const b = testBinding();
const shedForTest = b.udpShedForTest!.bind(b);
const KEEP = -1;
const DEVICE_SHARES = {
  perSecond: HANDSHAKE_QUEUE_SOURCE_RATE,
  burst: HANDSHAKE_QUEUE_SOURCE_BURST,
  loadedPerSecond: HANDSHAKE_QUEUE_SOURCE_RATE_UNDER_LOAD,
  loadedBurst: HANDSHAKE_QUEUE_SOURCE_BURST_UNDER_LOAD,
};

interface Msg {
  bytes: Uint8Array;
  src: Endpoint;
  /** ms since the previous message */
  dt: number;
  /** a udpRecv call begins with this message */
  call: boolean;
  /** the model sweeps its table before this message */
  gc: boolean;
  /** the device is under load when this message comes */
  loaded: boolean;
}

interface Shares {
  perSecond: number;
  burst: number;
  loadedPerSecond: number;
  loadedBurst: number;
}

const CLASSIFY_SHED: Partial<Record<DropReason, number>> = { 'too-short': SHED_TOO_SHORT, 'unknown-type': SHED_UNKNOWN_TYPE, 'bad-length': SHED_BAD_LENGTH };

/** The reference: what the device would do with the stream, as the shed's verdicts. */
function model(msgs: Msg[], sh: Shares, perCall: number): number[] {
  const limiter = new RateLimiter(sh.perSecond, sh.burst);
  const loaded = new RateLimiter(sh.loadedPerSecond, sh.loadedBurst);
  const rec = new Uint8Array(ENDPOINT_SIZE);
  let now = 1_000_000;
  let handshakes = 0;
  let fresh = 0;
  return msgs.map((m, i) => {
    now += m.dt;
    if (m.call || i === 0) handshakes = fresh = 0;
    if (m.gc) {
      limiter.gc(now);
      loaded.gc(now);
    }
    const type = classify(m.bytes, 0, m.bytes.length);
    if (typeof type === 'string') return CLASSIFY_SHED[type]!;
    if (type === MSG_TRANSPORT) return KEEP;
    encodeEndpoint(m.src, rec);
    let t = limiter.take(rec, 0, now);
    if (m.loaded && t !== REFUSED) t = loaded.take(rec, 0, now);
    if (t === REFUSED) return SHED_SOURCE_LIMITED;
    if (t === ALLOWED_FRESH) return fresh < perCall ? (fresh++, KEEP) : SHED_QUEUE_FULL;
    return handshakes < perCall ? (handshakes++, KEEP) : SHED_QUEUE_FULL;
  });
}

function native(msgs: Msg[], sh: Shares, perCall: number): number[] {
  const n = msgs.length;
  const offsets = new Int32Array(n);
  const lengths = new Int32Array(n);
  let total = 0;
  msgs.forEach((m, i) => {
    offsets[i] = total;
    lengths[i] = m.bytes.length;
    total += m.bytes.length;
  });
  const data = new Uint8Array(total);
  msgs.forEach((m, i) => data.set(m.bytes, offsets[i]));
  const endpoints = new Uint8Array(n * ENDPOINT_SIZE);
  msgs.forEach((m, i) => encodeEndpoint(m.src, endpoints, i * ENDPOINT_SIZE));
  const times = new Float64Array(n);
  let now = 1_000_000;
  msgs.forEach((m, i) => (times[i] = now += m.dt));
  const calls = Uint8Array.from(msgs, (m) => (m.call ? 1 : 0) | (m.loaded ? 2 : 0));
  const out = new Int32Array(n);
  const shares = Int32Array.of(sh.perSecond, sh.burst, sh.loadedPerSecond, sh.loadedBurst);
  assert.equal(shedForTest(shares, perCall, data, offsets, lengths, endpoints, times, calls, out), n);
  return [...out];
}

// A few sources so that buckets are shared: IPv4 addresses with several ports, IPv6 addresses of two /64s.
const SOURCES: Endpoint[] = [
  { family: 4, address: '198.51.100.1', port: 1000 },
  { family: 4, address: '198.51.100.1', port: 2000 },
  { family: 4, address: '198.51.100.2', port: 1000 },
  { family: 4, address: '203.0.113.77', port: 51820 },
  { family: 6, address: '2001:db8:0:1::1', port: 1000 },
  { family: 6, address: '2001:db8:0:1::ffff', port: 3000 },
  { family: 6, address: '2001:db8:0:2::1', port: 1000 },
];

/** Messages of every kind: the exact handshake sizes, transport data, and near misses. */
const message = fc
  .record({
    type: fc.oneof(fc.constantFrom(1, 2, 3, 4), fc.integer({ min: 0, max: 255 })),
    len: fc.oneof(fc.constantFrom(148, 92, 64, 32, 33, 1400), fc.integer({ min: 0, max: 200 })),
    zeroes: fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  })
  .map(({ type, len, zeroes }) => {
    const m = new Uint8Array(len).fill(0x5a);
    if (len > 0) m[0] = type;
    for (let k = 1; k < Math.min(4, len); k++) m[k] = zeroes ? 0 : 7;
    return m;
  });

const stream = fc.array(
  fc.record({
    bytes: message,
    src: fc.constantFrom(...SOURCES),
    dt: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 20, noNaN: true }), fc.integer({ min: 0, max: 3000 })),
    call: fc.boolean(),
    gc: fc.oneof({ weight: 1, arbitrary: fc.constant(true) }, { weight: 9, arbitrary: fc.constant(false) }),
    loaded: fc.boolean(),
  }),
  { maxLength: 400 },
);

/** Load comes and goes in runs, as the device's state does. */
const runsOfLoad = (msgs: Msg[], flips: number[]): Msg[] => {
  let on = false;
  return msgs.map((m, i) => {
    if (flips.includes(i)) on = !on;
    return { ...m, loaded: on };
  });
};

/** A share whose bucket refills within a second (burst/rate <= 1 s), as the device's are: then sweeping idle entries never changes a verdict. */
const share = fc.integer({ min: 1, max: 1000 }).chain((perSecond) => fc.record({ perSecond: fc.constant(perSecond), burst: fc.integer({ min: 1, max: perSecond }) }));

test('the native shed gives the verdicts of classify() + the queue admission limiters + the per-call cap', () => {
  fc.assert(
    fc.property(stream, fc.array(fc.nat(400), { maxLength: 6 }), share, share, fc.integer({ min: 1, max: 8 }), (msgs, flips, a, b, perCall) => {
      const sh: Shares = { perSecond: a.perSecond, burst: a.burst, loadedPerSecond: b.perSecond, loadedBurst: b.burst };
      const m = runsOfLoad(msgs, flips);
      assert.deepEqual(native(m, sh, perCall), model(m, sh, perCall));
    }),
    { numRuns: 300 },
  );
});

test('with the device\'s numbers: one flooding source is held to its share, a new source still gets in', () => {
  const flood: Msg[] = [];
  const init = new Uint8Array(148);
  init[0] = 1;
  for (let i = 0; i < 2000; i++) flood.push({ bytes: init, src: SOURCES[0]!, dt: 0.05, call: i % 100 === 0, gc: false, loaded: false });
  flood.push({ bytes: init, src: SOURCES[3]!, dt: 0.05, call: false, gc: false, loaded: false });
  const got = native(flood, DEVICE_SHARES, HANDSHAKES_PER_BATCH);
  assert.deepEqual(got, model(flood, DEVICE_SHARES, HANDSHAKES_PER_BATCH));
  const kept = got.slice(0, 2000).filter((v) => v === KEEP).length;
  // 100 ms of flood in 20 calls: at most the burst plus what 100 ms refill (a message over the per-call cap
  // has taken its token too, as one refused by a full queue does in the device), at least one call's cap.
  assert.ok(kept >= HANDSHAKES_PER_BATCH && kept <= HANDSHAKE_QUEUE_SOURCE_BURST + 26, `kept ${kept}`);
  assert.equal(got[2000], KEEP, 'the new source got in');
});

test('with the device\'s numbers under load: each of many flooding sources gets the smaller share, a new source still gets in', () => {
  const init = new Uint8Array(148);
  init[0] = 1;
  const flood: Msg[] = [];
  // 64 addresses, 1 s at 64k/s in calls of 128, the device under load throughout.
  for (let i = 0; i < 64_000; i++) {
    flood.push({ bytes: init, src: { family: 4, address: `198.51.101.${10 + (i % 64)}`, port: 9 }, dt: 1 / 64, call: i % 128 === 0, gc: false, loaded: true });
  }
  flood.push({ bytes: init, src: SOURCES[3]!, dt: 0.01, call: false, gc: false, loaded: true });
  const got = native(flood, DEVICE_SHARES, HANDSHAKES_PER_BATCH);
  assert.deepEqual(got, model(flood, DEVICE_SHARES, HANDSHAKES_PER_BATCH));
  const kept = got.slice(0, 64_000).filter((v) => v === KEEP).length;
  // Per address: its burst of 5 and 20 a second.
  assert.ok(kept <= 64 * (HANDSHAKE_QUEUE_SOURCE_BURST_UNDER_LOAD + HANDSHAKE_QUEUE_SOURCE_RATE_UNDER_LOAD + 1), `kept ${kept}`);
  assert.ok(kept >= 64 * HANDSHAKE_QUEUE_SOURCE_BURST_UNDER_LOAD, `kept ${kept}`);
  assert.equal(got[64_000], KEEP, 'the new source got in');
});
