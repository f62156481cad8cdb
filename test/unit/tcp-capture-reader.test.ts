// The capture reader the netstack interop test asserts with (test/support/pcap.ts, tcp-trace.ts),
// checked on pcap files written here byte by byte: options, scaled windows, SACK blocks, and which
// retransmissions re-sent bytes the receiver had acknowledged — so a broken reader cannot make the
// interop test pass. The UDP datagrams the QUIC test reads (udpDatagrams) likewise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tcpSegments, udpDatagrams } from '../support/pcap.js';
import { highestSent, largestScaledWindow, retransmissionReport, sackAcks, traceConnection } from '../support/tcp-trace.js';

const C = '192.0.2.2';
const S = '192.0.2.1';
const CISN = 1000;
const SISN = 0xfffffff0; // the server's sequence numbers wrap at 2^32 inside the test

interface Seg {
  t: number;
  fromClient: boolean;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  len: number;
  opts?: number[];
  v6?: boolean;
}

/** One IPv4 or IPv6 packet with a TCP header (options padded to 4 bytes) and `len` zero bytes of payload. */
function packet(s: Seg): Buffer {
  const opts = Buffer.from(s.opts ?? []);
  const optLen = Math.ceil(opts.length / 4) * 4;
  const tcp = Buffer.alloc(20 + optLen + s.len);
  tcp.writeUInt16BE(s.fromClient ? 40000 : 80, 0);
  tcp.writeUInt16BE(s.fromClient ? 80 : 40000, 2);
  tcp.writeUInt32BE(s.seq >>> 0, 4);
  tcp.writeUInt32BE(s.ack >>> 0, 8);
  tcp[12] = ((20 + optLen) / 4) << 4;
  tcp[13] = s.flags;
  tcp.writeUInt16BE(s.window, 14);
  opts.copy(tcp, 20);
  const [src, dst] = s.fromClient ? [C, S] : [S, C];
  if (s.v6) {
    const ip = Buffer.alloc(40);
    ip[0] = 0x60;
    ip.writeUInt16BE(tcp.length, 4);
    ip[6] = 6;
    Buffer.from('20010db8000200000000000000000002', 'hex').copy(ip, s.fromClient ? 8 : 24);
    Buffer.from('20010db8000200000000000000000001', 'hex').copy(ip, s.fromClient ? 24 : 8);
    return Buffer.concat([ip, tcp]);
  }
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + tcp.length, 2);
  ip[9] = 6;
  Buffer.from(src.split('.').map(Number)).copy(ip, 12);
  Buffer.from(dst.split('.').map(Number)).copy(ip, 16);
  return Buffer.concat([ip, tcp]);
}

/** A little-endian µs pcap of RAW packets, each captured to at most `snap` bytes. */
function pcap(segs: Seg[], snap = 96): Buffer {
  return pcapOf(segs.map((s) => ({ t: s.t, bytes: packet(s) })), snap);
}

function pcapOf(packets: { t: number; bytes: Buffer }[], snap: number): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(snap, 16);
  head.writeUInt32LE(101, 20);
  const parts: Buffer[] = [head];
  for (const { t, bytes: p } of packets) {
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(1_700_000_000 + Math.floor(t), 0);
    rec.writeUInt32LE(Math.round((t % 1) * 1e6), 4);
    rec.writeUInt32LE(Math.min(snap, p.length), 8);
    rec.writeUInt32LE(p.length, 12);
    parts.push(rec, p.subarray(0, snap));
  }
  return Buffer.concat(parts);
}

const SYN = 2;
const ACK = 16;
const MSS = 1000;
const synOpts = (ws: number) => [2, 4, 0x05, 0xb4, 1, 3, 3, ws, 4, 2];
const sack = (blocks: [number, number][]) => [1, 1, 5, 2 + 8 * blocks.length, ...blocks.flatMap(([l, r]) => [l >>> 24, (l >>> 16) & 255, (l >>> 8) & 255, l & 255, r >>> 24, (r >>> 16) & 255, (r >>> 8) & 255, r & 255])];

function withFile<T>(segs: Seg[], fn: (file: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'tb-pcap-'));
  try {
    const file = join(dir, 'c.pcap');
    writeFileSync(file, pcap(segs));
    return fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// The client sends 5 segments of MSS bytes; the second is lost; the server SACKs 3..5; the client
// retransmits segment 2 (a hole: fine), then segment 4 (SACKed: needless); after a timeout at t=2 it
// re-sends segment 3 (go-back-N after a timeout: reported apart), then new data.
const c = (k: number) => CISN + 1 + k * MSS;
const s1 = SISN + 1;
const flow: Seg[] = [
  { t: 0.0, fromClient: true, seq: CISN, ack: 0, flags: SYN, window: 65535, len: 0, opts: synOpts(7) },
  { t: 0.001, fromClient: false, seq: SISN, ack: CISN + 1, flags: SYN | ACK, window: 65535, len: 0, opts: synOpts(9) },
  { t: 0.002, fromClient: true, seq: CISN + 1, ack: s1, flags: ACK, window: 8192, len: 0 },
  { t: 0.003, fromClient: true, seq: c(0), ack: s1, flags: ACK, window: 8192, len: MSS },
  { t: 0.004, fromClient: true, seq: c(2), ack: s1, flags: ACK, window: 8192, len: MSS },
  { t: 0.005, fromClient: false, seq: s1, ack: c(1), flags: ACK, window: 300, len: 0, opts: sack([[c(2), c(3)]]) },
  { t: 0.006, fromClient: true, seq: c(3), ack: s1, flags: ACK, window: 8192, len: MSS },
  { t: 0.007, fromClient: false, seq: s1, ack: c(1), flags: ACK, window: 300, len: 0, opts: sack([[c(2), c(4)]]) },
  { t: 0.008, fromClient: true, seq: c(1), ack: s1, flags: ACK, window: 8192, len: MSS },
  { t: 0.009, fromClient: true, seq: c(3), ack: s1, flags: ACK, window: 8192, len: MSS },
  { t: 2.5, fromClient: true, seq: c(2), ack: s1, flags: ACK, window: 8192, len: MSS },
  { t: 2.6, fromClient: true, seq: c(4), ack: s1, flags: ACK, window: 8192, len: MSS },
];

test('pcap: SYN options, addresses, lengths from the IP header under a short snaplen; IPv6 too', () => {
  withFile(flow, (file) => {
    const segs = tcpSegments(file);
    assert.equal(segs.length, flow.length);
    assert.deepEqual([segs[0]!.src, segs[0]!.dst, segs[0]!.sport, segs[0]!.dport], [C, S, 40000, 80]);
    assert.deepEqual(segs[0]!.options, { mss: 1460, wscale: 7, sackPermitted: true, sack: [], timestamp: null });
    assert.equal(segs[1]!.options.wscale, 9);
    assert.ok(segs[1]!.flags.syn && segs[1]!.flags.ack);
    assert.equal(segs[3]!.len, MSS, 'the payload length comes from the IP header, not the captured bytes');
    assert.deepEqual(segs[5]!.options.sack, [[c(2) >>> 0, c(3) >>> 0]]);
    assert.equal(segs[10]!.time, 1_700_000_002.5);
  });
  withFile([{ ...flow[0]!, v6: true }], (file) => {
    const [s] = tcpSegments(file);
    assert.deepEqual([s!.src, s!.dst], ['2001:db8:2::2', '2001:db8:2::1']);
  });
});

test('tcp-trace: scaled windows, SACK ACKs, and needless retransmissions told from holes and from go-back-N after a timeout', () => {
  withFile(flow, (file) => {
    const t = traceConnection(tcpSegments(file), { host: C, port: 0 }, { host: S, port: 80 });
    assert.equal(largestScaledWindow(t, true), 8192 * 2 ** 7);
    assert.equal(largestScaledWindow(t, false), 300 * 2 ** 9, 'RFC 7323: the SYN-ACK window itself is not scaled, later ones are');
    assert.deepEqual(sackAcks(t, false), [
      { ack: 1 + MSS, blocks: [[1 + 2 * MSS, 1 + 3 * MSS]] },
      { ack: 1 + MSS, blocks: [[1 + 2 * MSS, 1 + 4 * MSS]] },
    ]);
    assert.equal(highestSent(t, true), 1 + 5 * MSS);
    const r = retransmissionReport(t, true, [1_700_000_002]);
    assert.equal(r.retransmissions, 3);
    assert.equal(r.needlessBytes, MSS, 'segment 4 had been SACKed; segment 2 was a hole');
    assert.deepEqual(r.needless.map((n) => n.seq), [1 + 3 * MSS]);
    assert.equal(r.afterTimeoutBytes, MSS, 'segment 3 re-sent after the timeout is not counted as needless');
    // Without the timeout, the same re-sending is needless too.
    assert.equal(retransmissionReport(t, true, []).needlessBytes, 2 * MSS);
  });
});

test('UDP datagrams: IPv4 and IPv6 addresses, ports and payload length from the IP header (captured short), TCP left out', () => {
  const udp = (sport: number, dport: number, len: number): Buffer => {
    const h = Buffer.alloc(8 + len);
    h.writeUInt16BE(sport, 0);
    h.writeUInt16BE(dport, 2);
    h.writeUInt16BE(8 + len, 4);
    return h;
  };
  const v4 = Buffer.concat([Buffer.from('450000000000000040110000cb007102cb007101', 'hex'), udp(41000, 4433, 1200)]);
  v4.writeUInt16BE(v4.length, 2);
  const v6 = Buffer.concat([Buffer.from('6000000000001140' + '20010db800ff00000000000000000001' + '20010db800ff00000000000000000002', 'hex'), udp(4433, 52000, 1350)]);
  v6.writeUInt16BE(8 + 1350, 4);
  const tcp = packet({ t: 0, fromClient: true, seq: 1, ack: 0, flags: SYN, window: 1000, len: 0 });
  const dir = mkdtempSync(join(tmpdir(), 'tb-pcap-'));
  try {
    const file = join(dir, 'u.pcap');
    writeFileSync(file, pcapOf([{ t: 1.25, bytes: v4 }, { t: 2, bytes: tcp }, { t: 4.5, bytes: v6 }], 96));
    const got = udpDatagrams(file).map((d) => ({ ...d, time: Math.round((d.time - 1_700_000_000) * 1000) / 1000 }));
    assert.deepEqual(got, [
      { time: 1.25, src: '203.0.113.2', dst: '203.0.113.1', sport: 41000, dport: 4433, len: 1200 },
      { time: 4.5, src: '2001:db8:ff::1', dst: '2001:db8:ff::2', sport: 4433, dport: 52000, len: 1350 },
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
