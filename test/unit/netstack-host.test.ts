// The netstack as a host: ICMP echo, UDP sockets and port unreachable,
// hostile input dropped and counted, SYN floods bounded, SACK both ways,
// window scaling, zero-window probes and keepalive — over the in-memory link.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { collect, Link, type Collected } from '../support/netstack-link.js';
import { finish, pseudoHeaderSum, sumBytes } from '../../src/netstack/checksum.js';
import { writeIpHeader } from '../../src/netstack/ip.js';
import { SYN, writeTcpHeader } from '../../src/netstack/tcp/segment.js';
import { parseIPv4, parseIPv6 } from '../../src/io/ip-address.js';
import type { TcpConnection } from '../../src/netstack/tcp/connection.js';

function echoRequest(src: string, dst: string, id: number, seq: number, data: Uint8Array): Uint8Array {
  const s = parseIPv4(src) ?? parseIPv6(src)!;
  const d = parseIPv4(dst) ?? parseIPv6(dst)!;
  const ipLen = s.length === 4 ? 20 : 40;
  const p = new Uint8Array(ipLen + 8 + data.length);
  writeIpHeader(p, 0, s, d, s.length === 4 ? 1 : 58, 8 + data.length);
  const m = ipLen;
  p[m] = s.length === 4 ? 8 : 128;
  p[m + 4] = id >> 8;
  p[m + 5] = id & 0xff;
  p[m + 6] = seq >> 8;
  p[m + 7] = seq & 0xff;
  p.set(data, m + 8);
  const init = s.length === 16 ? pseudoHeaderSum(p, 8, 24, 16, 58, 8 + data.length) : 0;
  const c = finish(sumBytes(p, m, p.length, init));
  p[m + 2] = c >> 8;
  p[m + 3] = c & 0xff;
  return p;
}

for (const [src, dst, reply] of [['10.0.0.1', '10.0.0.2', 0], ['fd00::1', 'fd00::2', 129]] as const) {
  test(`ICMP echo request to ${dst} gets a reply with the same id, sequence and data`, () => {
    const link = new Link();
    link.bWire.record = true;
    link.inject(link.b, echoRequest(src, dst, 0x1234, 7, new TextEncoder().encode('ping data')));
    const r = link.bWire.seen[0]!;
    const ipLen = src.includes(':') ? 40 : 20;
    assert.equal(r[ipLen], reply);
    assert.equal((r[ipLen + 4]! << 8) | r[ipLen + 5]!, 0x1234);
    assert.equal(r[ipLen + 7], 7);
    assert.equal(Buffer.from(r.subarray(ipLen + 8)).toString(), 'ping data');
    const init = ipLen === 40 ? pseudoHeaderSum(r, 8, 24, 16, 58, r.length - 40) : 0;
    assert.equal(finish(sumBytes(r, ipLen, r.length, init)), 0, 'reply checksum');
  });
}

test('UDP sockets exchange datagrams over IPv4 and IPv6; a closed port answers ICMP port unreachable', () => {
  const link = new Link();
  const got: string[] = [];
  const b = link.b.udpBind(53, (data, addr, port) => {
    got.push(`${data.toString()} from ${addr}:${port}`);
    b.send(Buffer.from('answer'), addr, port);
  });
  const answers: string[] = [];
  const a = link.a.udpBind(0, (data, addr) => answers.push(`${data.toString()} ${addr}`));
  assert.ok(a.port >= 49152);
  assert.ok(a.send(Buffer.from('q4'), '10.0.0.2', 53));
  assert.ok(a.send(Buffer.from('q6'), 'fd00::2', 53));
  link.run(() => answers.length === 2);
  assert.deepEqual(got, [`q4 from 10.0.0.1:${a.port}`, `q6 from fd00::1:${a.port}`]);
  assert.deepEqual(answers, ['answer 10.0.0.2', 'answer fd00::2']);
  link.bWire.record = true;
  a.send(Buffer.from('nobody'), '10.0.0.2', 54);
  link.run(() => link.bWire.seen.length > 0);
  const icmp = link.bWire.seen[0]!;
  assert.equal(icmp[9], 1);
  assert.deepEqual([icmp[20], icmp[21]], [3, 3], 'destination unreachable, port unreachable');
  assert.equal(link.b.drops['udp-no-socket'], 1);
});

test('hostile input is dropped and counted, never thrown', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), fc.constantFrom(0x45, 0x46, 0x60, 0x00), fc.integer({ min: 0, max: 255 }), (junk, first, proto) => {
      const link = new Link();
      const p = new Uint8Array(Math.max(junk.length, 1));
      p.set(junk);
      p[0] = first;
      if (p.length > 9) p[first === 0x60 ? 6 : 9] = proto;
      link.inject(link.b, p);
      const dropped = Object.values(link.b.drops).reduce((x, y) => x + y, 0);
      assert.ok(dropped >= 1 || link.b.received.icmp + link.b.received.tcp + link.b.received.udp >= 1);
    }),
    { numRuns: 300 },
  );
  // Well-formed headers with a wrong checksum, and a fragment.
  const link = new Link();
  const ping = echoRequest('10.0.0.1', '10.0.0.2', 1, 1, new Uint8Array(8));
  ping[11]! ^= 0xff;
  link.inject(link.b, ping);
  assert.equal(link.b.drops['bad-checksum'], 1);
  const frag = echoRequest('10.0.0.1', '10.0.0.2', 1, 1, new Uint8Array(8));
  frag[6] = 0x20; // more fragments
  writeIpHeader(frag, 0, frag.slice(12, 16), frag.slice(16, 20), 1, frag.length - 20);
  frag[6] = 0x20;
  frag[10] = 0;
  frag[11] = 0;
  const c = finish(sumBytes(frag, 0, 20, 0));
  frag[10] = c >> 8;
  frag[11] = c & 0xff;
  link.inject(link.b, frag);
  assert.equal(link.b.drops['fragment'], 1);
  const other = echoRequest('10.0.0.1', '10.0.0.9', 1, 1, new Uint8Array(8));
  link.inject(link.b, other);
  assert.equal(link.b.drops['not-for-us'], 1);
});

/** A bare SYN from 10.0.0.1:port with a valid checksum. */
function syn(port: number, seq: number): Uint8Array {
  const p = new Uint8Array(40);
  writeIpHeader(p, 0, parseIPv4('10.0.0.1')!, parseIPv4('10.0.0.2')!, 6, 20);
  writeTcpHeader(p, 20, port, 80, seq, 0, SYN, 65535, 0, 0, 12, 16, 4);
  return p;
}

test('a SYN flood is bounded by the backlog; real clients still connect once the half-open ones time out', () => {
  const link = new Link({ b: { synBacklog: 16 } });
  let accepted = 0;
  link.b.listen(80, () => accepted++);
  // 200 SYNs from spoofed ports; their SYN-ACKs go nowhere.
  link.bWire.filter = () => false;
  for (let i = 0; i < 200; i++) link.inject(link.b, syn(1000 + i, i * 1000));
  assert.equal(link.b.connectionCount, 16, 'no more half-open connections than the backlog');
  assert.equal(link.b.drops['tcp-backlog-full'], 184);
  // The half-open entries expire after the SYN-ACK retries.
  assert.ok(link.run(() => link.b.connectionCount === 0, 600_000));
  link.bWire.filter = null;
  const c = link.a.connect('10.0.0.2', 80);
  const r = collect(c);
  assert.ok(link.run(() => r.connected && accepted === 1));
});

function bulk(link: Link, bytes: number, opts: { read?: boolean } = {}): { client: TcpConnection; server: () => TcpConnection; sr: () => Collected; data: Buffer } {
  let server: TcpConnection | null = null;
  let sr: Collected | null = null;
  link.b.listen(9, (c) => {
    server = c;
    sr = collect(c, opts);
  });
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 7 + (i >> 8)) & 0xff;
  const client = link.a.connect('10.0.0.2', 9);
  collect(client);
  let off = 0;
  const pump = () => {
    while (off < data.length) {
      const n = client.write(data, off, data.length - off);
      if (n === 0) return;
      off += n;
    }
    client.shutdown();
  };
  client.events.onWritable = pump;
  pump();
  return { client, server: () => server!, sr: () => sr!, data };
}

test('SACK: the receiver reports the holes, the sender retransmits only them', () => {
  const link = new Link({ seed: 5 });
  link.faults({ delayMs: 10 });
  // Drop the 5th, 6th and 9th data segments from A once.
  let n = 0;
  link.aWire.filter = (p) => {
    const dataLen = p.length - 20 - (p[32]! >> 4) * 4;
    if (dataLen === 0) return true;
    n++;
    return !(n === 5 || n === 6 || n === 9);
  };
  const { client, sr, data } = bulk(link, 60_000);
  assert.ok(link.run(() => sr()?.ended ?? false));
  assert.deepEqual(Buffer.concat(sr().data), data);
  assert.ok(link.b.tcpStats().sackBlocksOut > 0, 'the receiver sent SACK blocks');
  assert.ok(client.stats.sackBlocksIn > 0, 'the sender read them');
  assert.equal(client.stats.fastRecoveries, 1, 'one fast recovery, no timeout');
  assert.equal(client.stats.timeouts, 0);
  assert.equal(client.stats.retransmits, 3, 'exactly the three lost segments were sent again');
});

test('window scaling lets the window exceed 64 KiB', () => {
  const link = new Link({ a: { tcp: { receiveBuffer: 4 << 20 } }, b: { tcp: { receiveBuffer: 4 << 20 } } });
  link.faults({ delayMs: 20 });
  const { client, sr, data } = bulk(link, 2_000_000);
  assert.ok(link.run(() => sr()?.ended ?? false));
  assert.deepEqual(Buffer.concat(sr().data), data);
  assert.equal(client.rcvShift, 7);
  assert.equal(client.sndShift, 7);
  assert.ok(client.congestion.cwnd > 65535, `cwnd grew past 64 KiB (${client.congestion.cwnd})`);
});

test('zero window: a receiver that stops reading gets probed; reading again resumes the transfer', () => {
  const link = new Link({ b: { tcp: { receiveBuffer: 8192 } } });
  const { client, server, sr, data } = bulk(link, 100_000, { read: false });
  assert.ok(link.run(() => client.sndWnd === 0 && client.unacknowledged > 0, 10_000));
  link.run(() => false, 20_000);
  assert.ok(client.stats.zeroWindowProbes >= 2, `probes sent (${client.stats.zeroWindowProbes})`);
  assert.equal(client.state.kind, 'established');
  const s = server();
  s.events.onReadable = () => {
    for (let b = s.read(); b; b = s.read()) sr().data.push(b);
  };
  s.events.onReadable();
  assert.ok(link.run(() => sr().ended));
  assert.deepEqual(Buffer.concat(sr().data), data);
});

test('keepalive: probes an idle peer and gives up with ETIMEDOUT when it is gone', () => {
  const link = new Link({ a: { tcp: { keepAliveIntervalMs: 1000, keepAliveProbes: 3 } } });
  link.b.listen(9, (c) => collect(c));
  const c = link.a.connect('10.0.0.2', 9);
  const r = collect(c);
  assert.ok(link.run(() => r.connected));
  c.setKeepAlive(true, 5000, link.now);
  link.run(() => false, 12_000);
  assert.ok(c.stats.keepAliveProbes >= 2, 'answered probes keep it alive');
  assert.equal(c.state.kind, 'established');
  link.bWire.filter = () => false; // the peer vanishes
  link.aWire.filter = () => false;
  assert.ok(link.run(() => r.closed, 60_000));
  assert.equal(r.error, 'ETIMEDOUT');
});
