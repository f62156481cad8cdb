/**
 * ICMP echo for the netstack exit: the native unprivileged ping socket
 * (native/src/ping.cc, src/io/linux/ping.ts) and the relay over it
 * (src/server/netstack-exit/echo-relay.ts), inside throwaway namespaces
 * whose net.ipv4.ping_group_range the test sets (sockets are opened in them
 * with the `netns` option; the host's sysctls are never touched):
 *
 *   - with the range covering our group: the socket opens, an echo request
 *     to 127.0.0.1 comes back as a reply with our sequence number; through
 *     the forwarder, a client's echo request to 127.0.0.1 comes back to it
 *     with its own identifier, sequence number and data, from 127.0.0.1; two
 *     requests from two clients to two destinations that arrive in the same
 *     slot of the input batch each come back from and to their own;
 *   - with the range empty ("1 0", Debian's default): EACCES, the relay is
 *     null (the exit answers only for its gateways), and a forwarded echo is
 *     dropped and counted.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { PacketBatch } from '../../src/io/batch.js';
import { encodeEndpoint, ENDPOINT_SIZE } from '../../src/io/endpoint.js';
import { openLinuxPingSocket } from '../../src/io/linux/ping.js';
import { DestinationPolicy } from '../../src/device/destination-policy.js';
import { PingEchoRelay } from '../../src/server/netstack-exit/echo-relay.js';
import { ExitForwarder } from '../../src/server/netstack-exit/forwarder.js';
import { Link } from '../support/netstack-link.js';
import { Netns, privilegedSkipReason, waitFor } from '../support/netns.js';
import { icmpEchoRequest, parseEchoReply } from '../support/packets.js';

const skip = privilegedSkipReason(['ip', 'sysctl']);
const namespaces: Netns[] = [];
const closers: (() => void)[] = [];
after(() => {
  for (const c of closers.reverse()) c();
  for (const ns of namespaces) ns.destroy();
});

function ns(range: string): Netns {
  const n = Netns.create('pg');
  namespaces.push(n);
  n.run('sysctl', ['-q', '-w', `net.ipv4.ping_group_range=${range}`]);
  return n;
}

/** An ExitForwarder relaying echo through a ping socket in a fresh namespace, on an in-memory link whose wire records the replies. */
function forwarderOverPingSocket() {
  const n = ns('0 2147483647');
  let link: Link | null = null;
  const clock = { now: () => link!.now };
  const relay = PingEchoRelay.open(clock, {}, n.name);
  assert.ok(relay, 'the relay opens where the range allows');
  const fwd = new ExitForwarder({ policy: new DestinationPolicy({ own: [], allow: ['127.0.0.0/8'] }), ownPorts: { tcp: [], udp: [] }, clock, echo: relay });
  closers.push(() => fwd.close());
  link = new Link({ b: { forwarder: fwd } });
  fwd.attach(link.b);
  link.bWire.record = true;
  const l = link;
  const replies = () => l.bWire.seen.map(parseEchoReply).filter((r) => r !== null);
  return { link: l, relay, fwd, replies };
}

test('the ping socket: EACCES where ping_group_range excludes our group', { skip: skip ?? false }, () => {
  const n = ns('1 0');
  assert.throws(() => openLinuxPingSocket({ family: 4, netns: n.name }), (e: NodeJS.ErrnoException) => e.code === 'EACCES');
  assert.equal(PingEchoRelay.open({ now: () => 0 }, {}, n.name), null);
});

test('the ping socket: an echo request in one sendmmsg batch, its reply in a receive batch', { skip: skip ?? false }, async () => {
  const n = ns('0 2147483647');
  const s = openLinuxPingSocket({ family: 4, netns: n.name });
  closers.push(() => s.close());
  const got: { type: number; seq: number; data: string; from: number }[] = [];
  s.start((b) => {
    for (let i = 0; i < b.count; i++) {
      const p = b.packet(i);
      got.push({ type: p[0]!, seq: p.readUInt16BE(6), data: p.subarray(8).toString(), from: b.endpoints[i * ENDPOINT_SIZE]! });
    }
  }, 0);
  const out = new PacketBatch(4, 256);
  for (let i = 0; i < 2; i++) {
    const msg = Buffer.concat([Buffer.from([8, 0, 0, 0, 0, 0, 0, 40 + i]), Buffer.from(`hello-${i}`)]);
    out.data.set(msg, i * out.slotSize);
    out.offsets[i] = 0;
    out.lengths[i] = msg.length;
    encodeEndpoint({ family: 4, address: '127.0.0.1', port: 0 }, out.endpoints, i * ENDPOINT_SIZE);
  }
  out.count = 2;
  s.send(out);
  assert.equal(s.stats.sent, 2);
  await waitFor('two replies', () => got.length === 2);
  got.sort((a, b) => a.seq - b.seq);
  assert.deepEqual(got, [
    { type: 0, seq: 40, data: 'hello-0', from: 4 },
    { type: 0, seq: 41, data: 'hello-1', from: 4 },
  ]);
});

test('through the forwarder: a client echo to 127.0.0.1 comes back with its identifier, sequence and data', { skip: skip ?? false }, async () => {
  const { link, relay, fwd, replies } = forwarderOverPingSocket();
  link.inject(link.b, icmpEchoRequest('10.0.0.1', '127.0.0.1', 0x1234, 7, 48));
  link.inject(link.b, icmpEchoRequest('10.0.0.1', '127.0.0.1', 0x1234, 8, 48));
  await waitFor('the replies', () => {
    link.run(() => false, 5);
    return replies().length === 2;
  });
  const r = replies().sort((a, b) => a.seq - b.seq);
  for (const [i, seq] of [7, 8].entries()) {
    assert.equal(r[i]!.src, '127.0.0.1');
    assert.equal(r[i]!.dst, '10.0.0.1');
    assert.equal(r[i]!.id, 0x1234);
    assert.equal(r[i]!.seq, seq);
    const want = icmpEchoRequest('10.0.0.1', '127.0.0.1', 0x1234, seq, 48).subarray(28);
    assert.deepEqual([...r[i]!.payload], [...want]);
  }
  assert.equal(fwd.opened.echo, 2);
  assert.equal(relay.outstanding, 0);
});

test('through the forwarder: each relayed echo keeps its own client and destination while the input batch is reused', { skip: skip ?? false }, async () => {
  const { link, replies } = forwarderOverPingSocket();
  // Both requests come in the same slot of the stack's input batch, one after the other, before either is answered.
  link.inject(link.b, icmpEchoRequest('10.0.0.1', '127.0.0.1', 0x1111, 7));
  link.inject(link.b, icmpEchoRequest('10.0.0.3', '127.0.0.2', 0x2222, 8));
  await waitFor('the replies', () => {
    link.run(() => false, 5);
    return replies().length === 2;
  });
  const r = replies().sort((a, b) => a.seq - b.seq).map(({ src, dst, id, seq }) => ({ src, dst, id, seq }));
  assert.deepEqual(r, [
    { src: '127.0.0.1', dst: '10.0.0.1', id: 0x1111, seq: 7 },
    { src: '127.0.0.2', dst: '10.0.0.3', id: 0x2222, seq: 8 },
  ]);
});

test('without a ping socket a forwarded echo is dropped and counted', { skip: skip ?? false }, () => {
  const fwd = new ExitForwarder({ policy: new DestinationPolicy({ own: [], allow: ['127.0.0.0/8'] }), ownPorts: { tcp: [], udp: [] }, clock: { now: () => 0 }, echo: null });
  const link = new Link({ b: { forwarder: fwd } });
  fwd.attach(link.b);
  link.bWire.record = true;
  link.inject(link.b, icmpEchoRequest('10.0.0.1', '127.0.0.1', 1, 1));
  link.run(() => false, 5);
  assert.equal(fwd.drops['echo-no-ping-socket'], 1);
  assert.equal(link.bWire.seen.map(parseEchoReply).filter((r) => r !== null).length, 0);
  // The exit's own address still answers (the stack itself).
  link.inject(link.b, icmpEchoRequest('10.0.0.1', '10.0.0.2', 1, 2));
  link.run(() => false, 5);
  assert.equal(link.bWire.seen.map(parseEchoReply).filter((r) => r !== null).length, 1);
});
