// The UDP offload logic of the addon (native/src/udp-offload.cc) against
// reference models written here: which datagrams of a send batch become one
// UDP_SEGMENT message (udpPlanForTest, the plan udpSend uses), and how a
// UDP_GRO message is split back into datagrams (udpSplitForTest, what
// udpRecv does with each coalesced message), however few slots each call
// gets. No root: the kernel is not involved (test/privileged/io-udp.test.ts
// sends through it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RES_DROPPED, RES_GSO } from '../../src/io/linux/binding.js';
import { testBinding } from '../support/test-binding.js';
import { ENDPOINT_SIZE } from '../../src/io/endpoint.js';

const b = testBinding();
const plan = b.udpPlanForTest!.bind(b);
const split = b.udpSplitForTest!.bind(b);

const MAX_SEGS = 64;
const MAX_BYTES4 = 65535 - 20 - 8;
const MAX_BYTES6 = 65535 - 8;

interface Msg {
  first: number;
  segs: number;
  segSize: number;
}

/** Whether udpSend can address this record on this socket kind (DecodeEndpoint). */
function reachable(rec: Uint8Array, v6sock: boolean): boolean {
  return rec[0] === 6 ? v6sock : rec[0] === 4;
}

/**
 * The reference plan: walk the batch; an unreachable datagram is skipped; otherwise a message
 * starts and, with GSO, takes the following datagrams while they go to the same endpoint record,
 * are not longer than the first (a shorter one is taken and ends the run), are not empty, and the
 * run stays within 64 datagrams and the family's largest UDP payload.
 */
function refPlan(lengths: number[], eps: Uint8Array[], gso: boolean, v6sock: boolean): Msg[] {
  const out: Msg[] = [];
  let i = 0;
  while (i < lengths.length) {
    if (!reachable(eps[i]!, v6sock)) {
      i++;
      continue;
    }
    const seg = lengths[i]!;
    const max = eps[i]![0] === 6 ? MAX_BYTES6 : MAX_BYTES4;
    let n = 1;
    let total = seg;
    if (gso && seg > 0) {
      for (let j = i + 1; j < lengths.length && n < MAX_SEGS; j++) {
        const len = lengths[j]!;
        if (len === 0 || len > seg || total + len > max) break;
        if (!Buffer.from(eps[j]!).equals(Buffer.from(eps[i]!))) break;
        total += len;
        n++;
        if (len < seg) break;
      }
    }
    out.push({ first: i, segs: n, segSize: n > 1 ? seg : 0 });
    i += n;
  }
  return out;
}

function nativePlan(lengths: number[], eps: Uint8Array[], gso: boolean, v6sock: boolean): Msg[] {
  const l = Int32Array.from(lengths);
  const e = new Uint8Array(lengths.length * ENDPOINT_SIZE);
  eps.forEach((r, i) => e.set(r, i * ENDPOINT_SIZE));
  const out = new Int32Array(3 * lengths.length + 3);
  const m = plan(l, e, lengths.length, gso, v6sock, out);
  return Array.from({ length: m }, (_, k) => ({ first: out[3 * k]!, segs: out[3 * k + 1]!, segSize: out[3 * k + 2]! }));
}

const endpoint = (fam: number, last: number, port: number): Uint8Array => {
  const r = new Uint8Array(ENDPOINT_SIZE);
  r[0] = fam;
  r[2] = port >>> 8;
  r[3] = port & 0xff;
  r[fam === 6 ? 19 : 7] = last;
  return r;
};
// A few destinations, so that runs form: two IPv4, one IPv6, and a record with no family.
const ENDPOINTS = [endpoint(4, 1, 51820), endpoint(4, 2, 51820), endpoint(6, 1, 51820), endpoint(0, 0, 0)];

/** Batches that look like a tunnel's: runs of one size with a shorter tail, some empties and jumbos, few destinations. */
const batchArb = fc
  .array(
    fc.record({
      n: fc.integer({ min: 1, max: 80 }),
      size: fc.oneof(fc.constantFrom(0, 1, 1452, 1500, 8000, 65507), fc.integer({ min: 0, max: 65535 })),
      tail: fc.option(fc.integer({ min: 0, max: 65535 })),
      ep: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(0, 1, 2) }, { weight: 1, arbitrary: fc.constant(3) }),
    }),
    { minLength: 1, maxLength: 8 },
  )
  .map((runs) => {
    const lengths: number[] = [];
    const eps: Uint8Array[] = [];
    for (const r of runs) {
      for (let k = 0; k < r.n; k++) {
        lengths.push(r.size);
        eps.push(ENDPOINTS[r.ep]!);
      }
      if (r.tail !== null) {
        lengths.push(r.tail);
        eps.push(ENDPOINTS[r.ep]!);
      }
    }
    return { lengths, eps };
  });

test('the GSO send plan matches the reference model (runs, caps, skipped endpoints), every datagram once, in order', () => {
  fc.assert(
    fc.property(batchArb, fc.boolean(), fc.boolean(), ({ lengths, eps }, gso, v6sock) => {
      const got = nativePlan(lengths, eps, gso, v6sock);
      assert.deepEqual(got, refPlan(lengths, eps, gso, v6sock));
      // Independent of the model: messages cover the reachable datagrams in order, within the kernel's limits.
      const covered: number[] = [];
      for (const m of got) {
        const lens = lengths.slice(m.first, m.first + m.segs);
        for (let j = 0; j < m.segs; j++) covered.push(m.first + j);
        if (m.segs > 1) {
          assert.ok(gso);
          assert.ok(m.segs <= MAX_SEGS);
          assert.ok(lens.reduce((a, x) => a + x, 0) <= (eps[m.first]![0] === 6 ? MAX_BYTES6 : MAX_BYTES4));
          assert.ok(lens.slice(0, -1).every((x) => x === m.segSize) && lens.at(-1)! <= m.segSize && lens.at(-1)! > 0);
        }
      }
      assert.deepEqual(covered, lengths.map((_, i) => i).filter((i) => reachable(eps[i]!, v6sock)));
    }),
    { numRuns: 400 },
  );
});

test('plan examples: 130 equal datagrams to one peer are 64 + 64 + 2; a shorter one ends a run; the byte caps per family', () => {
  const one = ENDPOINTS[0]!;
  assert.deepEqual(nativePlan(Array(130).fill(1000), Array(130).fill(one), true, true), [
    { first: 0, segs: 64, segSize: 1000 },
    { first: 64, segs: 64, segSize: 1000 },
    { first: 128, segs: 2, segSize: 1000 },
  ]);
  // Full-size WireGuard packets over a 1500-byte path: 45 * 1452 = 65340 bytes per message.
  assert.deepEqual(nativePlan(Array(100).fill(1452), Array(100).fill(one), true, true), [
    { first: 0, segs: 45, segSize: 1452 },
    { first: 45, segs: 45, segSize: 1452 },
    { first: 90, segs: 10, segSize: 1452 },
  ]);
  assert.deepEqual(nativePlan([100, 100, 50, 100, 100], Array(5).fill(one), true, true), [
    { first: 0, segs: 3, segSize: 100 },
    { first: 3, segs: 2, segSize: 100 },
  ]);
  assert.deepEqual(nativePlan([100, 100, 50, 100], Array(4).fill(one), false, true), [0, 1, 2, 3].map((first) => ({ first, segs: 1, segSize: 0 })));
  // 8000 * 8 = 64000 fits 65507, a ninth does not.
  assert.deepEqual(nativePlan(Array(9).fill(8000), Array(9).fill(one), true, false), [
    { first: 0, segs: 8, segSize: 8000 },
    { first: 8, segs: 1, segSize: 0 },
  ]);
  // An IPv6 peer on an IPv4 socket is skipped; an IPv6 run may reach 65527.
  const six = ENDPOINTS[2]!;
  assert.deepEqual(nativePlan([1000, 1000], [six, six], true, false), []);
  assert.deepEqual(nativePlan([32760, 32760], [six, six], true, true), [{ first: 0, segs: 2, segSize: 32760 }]);
  assert.deepEqual(nativePlan([32760, 32760], [one, one], true, true), [
    { first: 0, segs: 1, segSize: 0 },
    { first: 1, segs: 1, segSize: 0 },
  ]);
});

/** The reference GRO split: gso_size pieces (the last shorter); no gso_size (or >= length) = one datagram. */
function refSplit(msg: Uint8Array, gsoSize: number): Uint8Array[] {
  if (gsoSize === 0 || gsoSize >= msg.length) return [msg];
  const out: Uint8Array[] = [];
  for (let at = 0; at < msg.length; at += gsoSize) out.push(msg.subarray(at, Math.min(at + gsoSize, msg.length)));
  return out;
}

test('a GRO message splits into exactly the reference datagrams, over as many calls as the slots need; too big ones are dropped', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 65536 }),
      fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 1, max: 65535 })),
      fc.integer({ min: 1, max: 70 }),
      fc.integer({ min: 64, max: 3000 }),
      fc.integer({ min: 0, max: 48 }),
      fc.integer(),
      (len, gsoSize, slots, slotSize, headroom, seed) => {
        const msg = new Uint8Array(len);
        for (let i = 0; i < len; i++) msg[i] = (seed + i * 31 + (i >>> 8)) & 0xff;
        const want = refSplit(msg, gsoSize);
        const room = slotSize - headroom;
        const data = new Uint8Array(slots * slotSize);
        const offsets = new Int32Array(slots);
        const lengths = new Int32Array(slots);
        const res = new Int32Array(4);
        const cursor = new Int32Array(2);
        const got: Uint8Array[] = [];
        let dropped = 0;
        let gso = 0;
        for (let calls = 0; ; calls++) {
          assert.ok(calls <= want.length + 1, 'makes progress');
          const n = split(msg, gsoSize, data, offsets, lengths, slotSize, slots, headroom, res, cursor);
          assert.ok(n <= slots);
          for (let i = 0; i < n; i++) {
            assert.equal(offsets[i], headroom);
            got.push(data.slice(i * slotSize + headroom, i * slotSize + headroom + lengths[i]!));
          }
          dropped += res[RES_DROPPED]!;
          gso += res[RES_GSO]!;
          if (cursor[1] === 0) break;
          assert.equal(n, slots, 'stops early only on a full batch');
        }
        assert.deepEqual(got, want.filter((p) => p.length <= room));
        assert.equal(dropped, want.filter((p) => p.length > room).length);
        assert.equal(gso, want.length > 1 ? 1 : 0);
        assert.equal(cursor[0], 0);
      },
    ),
    { numRuns: 300 },
  );
});

test('test exports check their arguments', () => {
  const l = new Int32Array(4);
  const e = new Uint8Array(4 * ENDPOINT_SIZE);
  assert.throws(() => plan(l, e, 5, true, true, new Int32Array(30)), RangeError);
  assert.throws(() => plan(Int32Array.from([70000]), e, 1, true, true, new Int32Array(3)), RangeError);
  e[0] = 4;
  assert.throws(() => plan(l, e, 1, true, true, new Int32Array(2)), RangeError);
  assert.throws(() => plan(l, e, 1, 1 as unknown as boolean, true, new Int32Array(3)), TypeError);
  const d = new Uint8Array(256);
  assert.throws(() => split(new Uint8Array(65537), 0, d, new Int32Array(1), new Int32Array(1), 256, 1, 0, new Int32Array(4), new Int32Array(2)), RangeError);
  assert.throws(() => split(new Uint8Array(10), 0, d, new Int32Array(1), new Int32Array(1), 256, 2, 0, new Int32Array(4), new Int32Array(2)), RangeError);
  assert.throws(() => split(new Uint8Array(10), 0, d, new Int32Array(1), new Int32Array(1), 256, 1, 0, new Int32Array(3), new Int32Array(2)), RangeError);
  assert.throws(() => split(new Uint8Array(10), 0, d, new Int32Array(1), new Int32Array(1), 256, 1, 0, new Int32Array(4), Int32Array.from([-1, 0])), RangeError);
});
