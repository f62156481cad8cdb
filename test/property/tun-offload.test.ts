// The TUN offload path of the addon (native/src/tun-offload.cc) against a slow
// reference model written here from the kernel's rules (tcp_gso_segment,
// inet_gso_segment, ipv6_gso_segment, skb_checksum_help): random TCP/IPv4 and
// TCP/IPv6 super-packets behind a virtio_net_hdr are split into segments that
// must match the model byte for byte and carry checksums that verify, however
// few slots each call gets; NEEDS_CSUM packets get their checksum completed;
// and arbitrary garbage never makes the addon touch memory outside its slots.
// On the write side, runs of segments are coalesced into GSO writes that
// split back into exactly the packets written (and nothing else is merged).
// No root: it calls the test-only exports tunSegmentForTest and
// tunCoalesceForTest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endianness } from 'node:os';
import fc from 'fast-check';
import { RES_DROPPED, RES_FAILED, RES_GSO } from '../../src/io/linux/binding.js';
import { testBinding } from '../support/test-binding.js';

const b = testBinding();
const segment = b.tunSegmentForTest!.bind(b);
const coalesceNative = b.tunCoalesceForTest!.bind(b);
const LE = endianness() === 'LE';

const VNET = 10;
const NEEDS_CSUM = 1;
const GSO_NONE = 0;
const GSO_TCPV4 = 1;
const GSO_UDP = 3;
const GSO_TCPV6 = 4;
const GSO_UDP_L4 = 5;
const GSO_ECN = 0x80;

interface Vnet {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

/** virtio_net_hdr + packet, 16-bit fields in host order (legacy virtio, as the TUN uses). */
function withVnet(h: Vnet, pkt: Uint8Array): Uint8Array {
  const out = new Uint8Array(VNET + pkt.length);
  const v = new DataView(out.buffer);
  out[0] = h.flags;
  out[1] = h.gsoType;
  v.setUint16(2, h.hdrLen, LE);
  v.setUint16(4, h.gsoSize, LE);
  v.setUint16(6, h.csumStart, LE);
  v.setUint16(8, h.csumOffset, LE);
  out.set(pkt, VNET);
  return out;
}

/** Ones'-complement sum of big-endian 16-bit words (odd byte padded), folded, not complemented. */
function sum16(parts: Uint8Array[]): number {
  let s = 0;
  for (const p of parts) {
    for (let i = 0; i + 1 < p.length; i += 2) s += (p[i]! << 8) | p[i + 1]!;
    if (p.length & 1) s += p[p.length - 1]! << 8;
  }
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

const be16 = (p: Uint8Array, at: number) => (p[at]! << 8) | p[at + 1]!;
const put16 = (p: Uint8Array, at: number, v: number) => {
  p[at] = (v >>> 8) & 0xff;
  p[at + 1] = v & 0xff;
};
const be32 = (p: Uint8Array, at: number) => ((p[at]! << 24) >>> 0) + ((p[at + 1]! << 16) | (p[at + 2]! << 8) | p[at + 3]!);
const put32 = (p: Uint8Array, at: number, v: number) => {
  put16(p, at, Math.floor(v / 0x10000) & 0xffff);
  put16(p, at + 2, v & 0xffff);
};

/** The TCP pseudo-header for a segment (RFC 793 / RFC 8200 §8.1). */
function pseudo(pkt: Uint8Array, v6: boolean, tcpLen: number): Uint8Array {
  const addrs = v6 ? pkt.subarray(8, 40) : pkt.subarray(12, 20);
  const p = new Uint8Array(addrs.length + 4);
  p.set(addrs);
  p[addrs.length + 1] = 6;
  put16(p, addrs.length + 2, tcpLen);
  return p;
}

interface Super {
  pkt: Uint8Array;
  v6: boolean;
  tcpOff: number;
  hdrLen: number;
}

/** The reference: the kernel's segmentation of a TCP super-packet. */
function referenceSegments(s: Super, gso: number): Uint8Array[] {
  const { pkt, v6, tcpOff, hdrLen } = s;
  const payload = pkt.length - hdrLen;
  const n = payload === 0 ? 1 : Math.ceil(payload / gso);
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const pay = pkt.subarray(hdrLen + i * gso, hdrLen + Math.min(payload, (i + 1) * gso));
    const seg = new Uint8Array(hdrLen + pay.length);
    seg.set(pkt.subarray(0, hdrLen));
    seg.set(pay, hdrLen);
    if (v6) {
      put16(seg, 4, seg.length - 40);
    } else {
      put16(seg, 2, seg.length);
      put16(seg, 4, (be16(pkt, 4) + i) & 0xffff);
      put16(seg, 10, 0);
      put16(seg, 10, ~sum16([seg.subarray(0, tcpOff)]) & 0xffff);
    }
    put32(seg, tcpOff + 4, (be32(pkt, tcpOff + 4) + i * gso) % 2 ** 32);
    if (i > 0) seg[tcpOff + 13]! &= ~0x80; // CWR on the first only
    if (i < n - 1) seg[tcpOff + 13]! &= ~0x09; // FIN, PSH on the last only
    put16(seg, tcpOff + 16, 0);
    put16(seg, tcpOff + 16, ~sum16([pseudo(seg, v6, seg.length - tcpOff), seg.subarray(tcpOff)]) & 0xffff);
    out.push(seg);
  }
  return out;
}

/** Random bytes of a length uniform in [min, max] (fast-check's own arrays stay short by default). */
const bytes = (min: number, max: number) => fc.integer({ min, max }).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }));

/** A random TCP super-packet as the kernel would hand it over (checksum field: the pseudo-header sum, or anything). */
const superArb = fc
  .record({
    v6: fc.boolean(),
    ipOpts: fc.integer({ min: 0, max: 10 }).chain((w) => bytes(w * 4, w * 4)),
    tcpOpts: fc.integer({ min: 0, max: 10 }).chain((w) => bytes(w * 4, w * 4)),
    addrs: bytes(32, 32),
    id: fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.constant(0xfffe)),
    seq: fc.oneof(fc.nat({ max: 2 ** 32 - 1 }), fc.integer({ min: 2 ** 32 - 5000, max: 2 ** 32 - 1 })),
    flags: fc.integer({ min: 0, max: 0xff }),
    check: fc.integer({ min: 0, max: 0xffff }),
    rest: bytes(12, 12), // ports, ack, window, urgent, TOS/TTL/flow label
    payloadLen: fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 20000 }), fc.constant(65535 - 120)),
    seed: fc.integer(),
  })
  .map((r): Super => {
    const ipLen = r.v6 ? 40 : 20 + r.ipOpts.length;
    const tcpLen = 20 + r.tcpOpts.length;
    const hdrLen = ipLen + tcpLen;
    const payloadLen = Math.min(r.payloadLen, 65535 - hdrLen);
    const pkt = new Uint8Array(hdrLen + payloadLen);
    let x = r.seed >>> 0;
    for (let i = hdrLen; i < pkt.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      pkt[i] = x >>> 24;
    }
    if (r.v6) {
      pkt[0] = 0x60 | (r.rest[0]! & 0x0f);
      pkt[1] = r.rest[1]!;
      put16(pkt, 4, pkt.length - 40);
      pkt[6] = 6;
      pkt[7] = 64;
      pkt.set(r.addrs, 8);
    } else {
      pkt[0] = 0x40 | (ipLen / 4);
      pkt[1] = r.rest[0]!;
      put16(pkt, 2, pkt.length);
      put16(pkt, 4, r.id);
      pkt[6] = 0x40; // DF
      pkt[8] = 64;
      pkt[9] = 6;
      put16(pkt, 10, r.check); // stale: recomputed per segment
      pkt.set(r.addrs.subarray(0, 8), 12);
      pkt.set(r.ipOpts, 20);
    }
    const t = ipLen;
    pkt.set(r.rest.subarray(2, 6), t); // ports
    put32(pkt, t + 4, r.seq);
    pkt.set(r.rest.subarray(6, 10), t + 8); // ack
    pkt[t + 12] = (tcpLen / 4) << 4;
    pkt[t + 13] = r.flags;
    pkt.set(r.rest.subarray(10, 12), t + 14); // window
    put16(pkt, t + 16, r.check);
    pkt.set(r.tcpOpts, t + 20);
    return { pkt, v6: r.v6, tcpOff: ipLen, hdrLen };
  });

/** Runs the addon over `input` until it is finished, with `capacity` slots per call; returns the packets and the res totals. */
function runAddon(input: Uint8Array, capacity: number, slotSize: number, headroom: number): { pkts: Uint8Array[]; res: number[]; calls: number } {
  const data = new Uint8Array(capacity * slotSize + 64).fill(0xa5); // a guard zone behind the slots
  const offsets = new Int32Array(capacity);
  const lengths = new Int32Array(capacity);
  const res = new Int32Array(4);
  const cursor = new Int32Array(2);
  const total = [0, 0, 0, 0];
  const pkts: Uint8Array[] = [];
  let calls = 0;
  do {
    const n = segment(input, data, offsets, lengths, slotSize, capacity, headroom, res, cursor);
    calls++;
    assert.ok(n >= 0 && n <= capacity, `filled ${n} of ${capacity}`);
    for (let k = 0; k < 4; k++) total[k]! += res[k]!;
    for (let i = 0; i < n; i++) {
      assert.equal(offsets[i], headroom);
      assert.ok(lengths[i]! >= 0 && headroom + lengths[i]! <= slotSize, 'inside its slot');
      pkts.push(data.slice(i * slotSize + headroom, i * slotSize + headroom + lengths[i]!));
    }
    if (cursor[1] === 1) assert.equal(n, capacity, 'segments are left over only when the slots ran out');
    assert.ok(calls < 70000);
  } while (cursor[1] === 1);
  assert.ok(data.subarray(capacity * slotSize).every((x) => x === 0xa5), 'nothing written behind the slots');
  return { pkts, res: total, calls };
}

test('TSO super-packets split like the kernel does, in any number of calls, with checksums that verify', () => {
  fc.assert(
    fc.property(
      superArb,
      fc.integer({ min: 1, max: 9000 }),
      fc.integer({ min: 1, max: 70 }),
      fc.integer({ min: 0, max: 64 }),
      fc.boolean(),
      fc.integer({ min: 0, max: 0xffff }),
      (s, gsoWanted, capacity, headroom, ecn, hdrLen) => {
        const payload = s.pkt.length - s.hdrLen;
        const gso = Math.max(gsoWanted, Math.ceil(payload / 400)); // at most ~400 segments
        const type = (s.v6 ? GSO_TCPV6 : GSO_TCPV4) | (ecn ? GSO_ECN : 0);
        // hdr_len is random: the addon must not rely on it.
        const input = withVnet({ flags: NEEDS_CSUM, gsoType: type, hdrLen, gsoSize: gso, csumStart: s.tcpOff, csumOffset: 16 }, s.pkt);
        const slotSize = headroom + s.hdrLen + Math.min(gso, payload) + (capacity & 7);
        const got = runAddon(input, capacity, slotSize, headroom);
        const want = referenceSegments(s, gso);
        assert.equal(got.pkts.length, want.length);
        assert.deepEqual(got.res, [0, 0, 0, 1], 'one super-packet, nothing dropped');
        assert.equal(got.calls, Math.max(1, Math.ceil(want.length / capacity)));
        for (let i = 0; i < want.length; i++) {
          assert.deepEqual(got.pkts[i], want[i], `segment ${i} of ${want.length}`);
          const seg = got.pkts[i]!;
          if (!s.v6) assert.equal(sum16([seg.subarray(0, s.tcpOff)]), 0xffff, 'IPv4 header checksum verifies');
          assert.equal(sum16([pseudo(seg, s.v6, seg.length - s.tcpOff), seg.subarray(s.tcpOff)]), 0xffff, 'TCP checksum verifies');
        }
        const joined = Buffer.concat(got.pkts.map((p) => p.subarray(s.hdrLen)));
        assert.ok(joined.equals(s.pkt.subarray(s.hdrLen)), 'the payload, in order, exactly once');
      },
    ),
    { numRuns: 300 },
  );
});

test('NEEDS_CSUM without GSO: the checksum is completed over [csum_start, end), like skb_checksum_help', () => {
  fc.assert(
    fc.property(
      bytes(2, 3000),
      fc.nat(),
      fc.nat(),
      fc.integer({ min: 0, max: 32 }),
      (pkt, a, c, headroom) => {
        const cs = a % (pkt.length - 1);
        const co = c % (pkt.length - cs - 1);
        const input = withVnet({ flags: NEEDS_CSUM, gsoType: GSO_NONE, hdrLen: 0, gsoSize: 0, csumStart: cs, csumOffset: co }, pkt);
        const got = runAddon(input, 1, headroom + pkt.length, headroom);
        assert.deepEqual(got.res, [0, 0, 0, 0]);
        const want = pkt.slice();
        const v = ~sum16([pkt.subarray(cs)]) & 0xffff;
        put16(want, cs + co, v === 0 ? 0xffff : v);
        assert.deepEqual(got.pkts, [want]);
      },
    ),
    { numRuns: 500 },
  );
});

test('NEEDS_CSUM on a real TCP packet (pseudo-header sum in the field) gives a checksum that verifies; no flag: copied as is', () => {
  fc.assert(
    fc.property(superArb, (s) => {
      const pkt = s.pkt.slice(0, Math.min(s.pkt.length, s.hdrLen + 1400));
      if (!s.v6) put16(pkt, 2, pkt.length);
      else put16(pkt, 4, pkt.length - 40);
      const tcpLen = pkt.length - s.tcpOff;
      put16(pkt, s.tcpOff + 16, sum16([pseudo(pkt, s.v6, tcpLen)])); // what __tcp_v4_send_check leaves
      const input = withVnet({ flags: NEEDS_CSUM, gsoType: GSO_NONE, hdrLen: 0, gsoSize: 0, csumStart: s.tcpOff, csumOffset: 16 }, pkt);
      const [seg] = runAddon(input, 2, 2048, 16).pkts;
      assert.equal(sum16([pseudo(seg!, s.v6, tcpLen), seg!.subarray(s.tcpOff)]), 0xffff);
      const plain = runAddon(withVnet({ flags: 0, gsoType: GSO_NONE, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 }, pkt), 1, 2048, 0);
      assert.deepEqual(plain.pkts, [pkt]);
    }),
    { numRuns: 200 },
  );
});

test('drops: UDP GSO types, unknown types and malformed TCP are counted as failed; too big for a slot as dropped', () => {
  const s = fc.sample(superArb.filter((x) => x.pkt.length - x.hdrLen >= 3000), { numRuns: 1, seed: 7 })[0]!;
  const hdr = (gsoType: number, gsoSize = 1000): Vnet => ({ flags: NEEDS_CSUM, gsoType, hdrLen: s.hdrLen, gsoSize, csumStart: s.tcpOff, csumOffset: 16 });
  const tcp = s.v6 ? GSO_TCPV6 : GSO_TCPV4;
  for (const t of [GSO_UDP, GSO_UDP_L4, 2, 6, 0x7f, GSO_UDP_L4 | GSO_ECN]) {
    assert.deepEqual(runAddon(withVnet(hdr(t), s.pkt), 8, 2048, 0), { pkts: [], res: [0, 1, 93, 0], calls: 1 }, `type ${t}`);
  }
  const failed = (input: Uint8Array, why: string) => {
    const r = runAddon(input, 8, 4096, 0);
    assert.deepEqual([r.pkts.length, r.res[RES_FAILED], r.res[RES_GSO]], [0, 1, 0], why);
  };
  failed(withVnet(hdr(s.v6 ? GSO_TCPV4 : GSO_TCPV6), s.pkt), 'IP version does not match the GSO type');
  failed(withVnet(hdr(tcp, 0), s.pkt), 'gso_size 0');
  failed(withVnet(hdr(tcp), s.pkt.subarray(0, s.tcpOff + 10)), 'truncated TCP header');
  const badDoff = s.pkt.slice(0, s.hdrLen);
  badDoff[s.tcpOff + 12] = 0x40;
  failed(withVnet(hdr(tcp), badDoff), 'TCP data offset < 5');
  const udp = s.pkt.slice();
  udp[s.v6 ? 6 : 9] = 17;
  failed(withVnet(hdr(tcp), udp), 'not TCP');
  failed(new Uint8Array(9), 'shorter than the virtio_net_hdr');
  failed(withVnet({ flags: NEEDS_CSUM, gsoType: GSO_NONE, hdrLen: 0, gsoSize: 0, csumStart: 100, csumOffset: 0 }, new Uint8Array(101)), 'checksum field outside the packet');
  const big = runAddon(withVnet(hdr(tcp, 1000), s.pkt), 8, s.hdrLen + 999, 0);
  assert.deepEqual([big.pkts.length, big.res[RES_DROPPED], big.res[RES_GSO]], [0, 1, 0], 'a segment does not fit a slot');
  const plainBig = runAddon(withVnet({ ...hdr(GSO_NONE), flags: 0 }, s.pkt), 8, s.pkt.length - 1, 0);
  assert.deepEqual([plainBig.pkts.length, plainBig.res[RES_DROPPED]], [0, 1], 'a packet does not fit a slot');
});

test('garbage from the "kernel" never makes the addon read or write outside its buffers', () => {
  fc.assert(
    fc.property(
      fc.oneof(bytes(0, 200), bytes(0, 3000)),
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 0xffff }),
      fc.integer({ min: 0, max: 0xffff }),
      fc.integer({ min: 0, max: 0xffff }),
      fc.integer({ min: 1, max: 8 }),
      fc.integer({ min: 64, max: 1600 }),
      (pkt, flags, gsoType, gsoSize, csumStart, csumOffset, capacity, slotSize) => {
        // Often a plausible IP/TCP start, so the checks past the first ones run too.
        if (pkt.length > 40 && (flags & 1)) {
          pkt[0] = gsoType & 4 ? 0x60 : 0x45;
          pkt[6] = 6;
          pkt[9] = 6;
        }
        const type = [GSO_NONE, GSO_TCPV4, GSO_TCPV6, gsoType][gsoType & 3]!;
        const input = withVnet({ flags, gsoType: type, hdrLen: 0, gsoSize: gsoSize % 600, csumStart, csumOffset }, pkt);
        const r = runAddon(input, capacity, slotSize, 8);
        assert.ok(r.res[RES_DROPPED]! + r.res[RES_FAILED]! <= 1);
        for (const p of r.pkts) assert.ok(p.length <= slotSize - 8);
      },
    ),
    { numRuns: 2000 },
  );
});

test('tunSegmentForTest checks its arguments', () => {
  const i32 = (n = 4) => new Int32Array(n);
  const data = new Uint8Array(4 * 256);
  const input = new Uint8Array(VNET + 20);
  assert.throws(() => segment(input, data, i32(), i32(), 256, 5, 0, i32(), i32(2)), /count exceeds offsets/);
  assert.throws(() => segment(input, data, i32(8), i32(8), 256, 5, 0, i32(), i32(2)), /exceeds data/);
  assert.throws(() => segment(input, data, i32(), i32(), 256, 4, 0, i32(2), i32(2)), /at least 4/);
  assert.throws(() => segment(input, data, i32(), i32(), 256, 4, 0, i32(), i32(1)), /cursor/);
  assert.throws(() => segment(new Uint8Array(70000), data, i32(), i32(), 256, 4, 0, i32(), i32(2)), /longer than a TUN read/);
  assert.throws(() => segment(input, data, i32(), i32(), 256, 4, 256, i32(), i32(2)), RangeError);
  assert.equal(segment(input, data, i32(), i32(), 256, 4, 0, i32(), i32(2)), 1, 'a plain 20-byte packet');
});

/** What tunWrite with offloads would write for `pkts` (virtio_net_hdr + packet per write). */
function coalesce(pkts: Uint8Array[]): Uint8Array[] {
  const slotSize = 65536;
  const data = new Uint8Array(pkts.length * slotSize);
  const offsets = new Int32Array(pkts.length);
  const lengths = new Int32Array(pkts.length);
  pkts.forEach((p, i) => {
    offsets[i] = 7;
    lengths[i] = p.length;
    data.set(p, i * slotSize + 7);
  });
  const out = new Uint8Array(pkts.reduce((n, p) => n + p.length + VNET, 0));
  const outLens = new Int32Array(pkts.length);
  const n = coalesceNative(data, offsets, lengths, slotSize, pkts.length, out, outLens);
  const writes: Uint8Array[] = [];
  let at = 0;
  for (let j = 0; j < n; j++) {
    writes.push(out.slice(at, at + outLens[j]!));
    at += outLens[j]!;
  }
  return writes;
}

/** The segments of a super-packet that could have come out of a TCP stack: ACK, maybe PSH/FIN, no IPv4 options. */
const mergeableArb = fc.tuple(superArb, fc.integer({ min: 1, max: 3000 }), fc.constantFrom(0x10, 0x18, 0x11, 0x19)).map(([s, gso, flags]) => {
  if (!s.v6 && s.tcpOff !== 20) {
    // Drop the IPv4 options: move the TCP header and payload up.
    const pkt = new Uint8Array(s.pkt.length - (s.tcpOff - 20));
    pkt.set(s.pkt.subarray(0, 20));
    pkt.set(s.pkt.subarray(s.tcpOff), 20);
    pkt[0] = 0x45;
    put16(pkt, 2, pkt.length);
    s = { pkt, v6: false, tcpOff: 20, hdrLen: s.hdrLen - (s.tcpOff - 20) };
  }
  s.pkt[s.tcpOff + 13] = flags;
  return { s, gso, segs: referenceSegments(s, Math.max(gso, Math.ceil((s.pkt.length - s.hdrLen) / 600))) };
});

/** Splits every write back as tunRead would: the packets, in order. */
function resegment(writes: Uint8Array[]): Uint8Array[] {
  return writes.flatMap((w) => runAddon(w, 64, 65536 + 200, 0).pkts);
}

test('GRO writes: the segments of one flow go out as GSO writes that split back into exactly those segments', () => {
  fc.assert(
    fc.property(mergeableArb, ({ s, segs }) => {
      const writes = coalesce(segs);
      assert.deepEqual(resegment(writes), segs, 'round trip');
      const n = segs.length;
      if (segs[0]!.length === s.hdrLen) {
        assert.equal(writes.length, n, 'no payload: nothing to merge');
        return;
      }
      assert.equal(writes.length, n === 1 ? 1 : Math.ceil(n / 256), `${n} segments`);
      for (const w of writes) {
        const v = new DataView(w.buffer, w.byteOffset);
        if (w[1] === GSO_NONE) {
          assert.ok(w.subarray(0, VNET).every((x) => x === 0), 'a plain write has a zeroed header');
          continue;
        }
        const pkt = w.subarray(VNET);
        assert.deepEqual(
          [w[0], w[1], v.getUint16(2, LE), v.getUint16(4, LE), v.getUint16(6, LE), v.getUint16(8, LE)],
          [NEEDS_CSUM, s.v6 ? GSO_TCPV6 : GSO_TCPV4, s.hdrLen, segs[0]!.length - s.hdrLen, s.tcpOff, 16],
        );
        if (!s.v6) assert.equal(sum16([pkt.subarray(0, 20)]), 0xffff, 'IPv4 header checksum of the whole');
        assert.equal(be16(pkt, s.tcpOff + 16), sum16([pseudo(pkt, s.v6, pkt.length - s.tcpOff)]), 'TCP field: the pseudo-header sum (NEEDS_CSUM)');
      }
    }),
    { numRuns: 300 },
  );
});

test('GRO writes: any mix of flows, orders and damaged packets comes back unchanged and in order', () => {
  fc.assert(
    fc.property(
      fc.array(mergeableArb, { minLength: 1, maxLength: 3 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      fc.array(fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 6 }),
      fc.array(fc.nat(), { maxLength: 6 }),
      (flows, picks, damage, drops) => {
        // Interleave the flows' segments in runs chosen by `picks`, keeping each flow's order.
        const queues = flows.map((f) => f.segs.map((x) => x.slice()));
        const pkts: Uint8Array[] = [];
        let k = 0;
        while (queues.some((q) => q.length > 0)) {
          const q = queues.filter((x) => x.length > 0);
          const pick = picks[k++ % Math.max(1, picks.length)] ?? 0;
          pkts.push(...q[pick % q.length]!.splice(0, 1 + (pick % 7)));
        }
        for (const d of drops) if (pkts.length > 1) pkts.splice(d % pkts.length, 1); // a lost segment: a gap in seq
        for (const [i, at, x] of damage) {
          const p = pkts[i % pkts.length]!;
          p[at % Math.min(p.length, 120)]! ^= x;
        }
        const writes = coalesce(pkts);
        assert.ok(writes.length <= pkts.length);
        assert.deepEqual(resegment(writes), pkts);
      },
    ),
    { numRuns: 300 },
  );
});

test('GRO writes: what must not be merged is not (flags, options, IDs, TTL, window, short middle segments)', () => {
  const { s, segs } = fc.sample(mergeableArb.filter((m) => !m.s.v6 && m.segs.length >= 4 && m.segs[0]!.length > m.s.hdrLen && m.s.pkt[m.s.tcpOff + 13] === 0x10), { numRuns: 1, seed: 3 })[0]!;
  assert.equal(coalesce(segs).length, Math.ceil(segs.length / 256), 'the untouched flow merges');
  const t = s.tcpOff;
  /** Changes segment 1 (and fixes its checksums, so only the rule can refuse it). */
  const variant = (edit: (p: Uint8Array) => Uint8Array | void): Uint8Array[] => {
    const copy: Uint8Array[] = segs.map((x) => x.slice());
    let p: Uint8Array = copy[1]!;
    p = edit(p) ?? p;
    put16(p, 10, 0);
    put16(p, 10, ~sum16([p.subarray(0, 20)]) & 0xffff);
    put16(p, t + 16, 0);
    put16(p, t + 16, ~sum16([pseudo(p, false, p.length - t), p.subarray(t)]) & 0xffff);
    copy[1] = p;
    return copy;
  };
  const cases: [string, (p: Uint8Array) => Uint8Array | void][] = [
    ['SYN', (p) => void (p[t + 13] = 0x12)],
    ['ECE', (p) => void (p[t + 13] = 0x50)],
    ['CWR', (p) => void (p[t + 13] = 0x90)],
    ['URG', (p) => void (p[t + 13] = 0x30)],
    ['no ACK', (p) => void (p[t + 13] = 0x00)],
    ['IPv4 ID not counting up', (p) => put16(p, 4, be16(p, 4) + 1)],
    ['TTL', (p) => void (p[8] = p[8]! - 1)],
    ['TOS', (p) => void (p[1] = p[1]! ^ 1)],
    ['window', (p) => put16(p, t + 14, be16(p, t + 14) ^ 1)],
    ['ack', (p) => put16(p, t + 10, be16(p, t + 10) ^ 1)],
    ['seq gap', (p) => put32(p, t + 4, (be32(p, t + 4) + 1) % 2 ** 32)],
  ];
  for (const [why, edit] of cases) {
    const v = variant(edit);
    const writes = coalesce(v);
    assert.ok(writes.length >= 2, why);
    assert.ok(writes[0]![1] === GSO_NONE, `${why}: segment 0 alone`);
    assert.deepEqual(resegment(writes), v, why);
  }
  // A short segment can only end a run: 0 and 1 merge, 2 starts the next.
  const short = variant((p) => {
    const q = p.slice(0, p.length - 1);
    put16(q, 2, q.length);
    return q;
  });
  const sw = coalesce(short);
  assert.equal(sw[0]![1], GSO_TCPV4);
  assert.equal(resegment([sw[0]!]).length, 2, 'segments 0 and 1');
  assert.deepEqual(resegment(sw), short);
  // A broken checksum: not merged, written as it is for the kernel to drop.
  const bad = segs.map((x) => x.slice());
  bad[2]![bad[2]!.length - 1]! ^= 1;
  const writes = coalesce(bad);
  assert.ok(writes.some((w) => w[1] === GSO_NONE && Buffer.from(w.subarray(VNET)).equals(bad[2]!)), 'the damaged segment goes alone');
  assert.deepEqual(resegment(writes), bad);
});
