// Two devices over the in-memory TUN and UDP adapters, time moved by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deliver, makePair, settle, type Pair } from '../support/pair.js';
import { PacketBatch } from '../../src/io/batch.js';
import { encodeEndpoint } from '../../src/io/endpoint.js';
import { ipv4Udp, ipv6Udp, text } from '../support/packets.js';
import { KEEPALIVE_TIMEOUT, REJECT_AFTER_TIME, REKEY_AFTER_TIME, REKEY_TIMEOUT } from '../../src/protocol/constants.js';
import { decodeEndpoint } from '../../src/io/endpoint.js';
import { randomBytes } from 'node:crypto';

const A_ADDR = { address: '192.0.2.1', port: 51820 };
const payloadOf = (p: Uint8Array, v: 4 | 6) => Buffer.from(p.subarray(v === 4 ? 28 : 48)).toString();

async function withPair(opts: Parameters<typeof makePair>[0], fn: (p: Pair) => Promise<void>): Promise<void> {
  const p = makePair(opts);
  try {
    await fn(p);
  } finally {
    p.close();
  }
}

test('handshake started by A, IPv4 both ways', () =>
  withPair({}, async ({ a, b }) => {
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('hello B')));
    await settle();
    assert.equal(b.tun.written.length, 1);
    assert.equal(payloadOf(b.tun.written[0]!, 4), 'hello B');
    b.tun.inject(ipv4Udp('10.0.0.2', '10.0.0.1', text('hello A')));
    await settle();
    assert.equal(a.tun.written.length, 1);
    assert.equal(payloadOf(a.tun.written[0]!, 4), 'hello A');
    assert.ok(a.peer.current?.isInitiator);
    assert.equal(b.peer.current?.isInitiator, false);
    assert.ok(a.peer.lastHandshakeWallMs > 0 && b.peer.lastHandshakeWallMs > 0);
    assert.ok(a.peer.txBytes > 0 && a.peer.rxBytes > 0 && b.peer.txBytes > 0 && b.peer.rxBytes > 0);
  }));

test('handshake started by B, IPv6 both ways, with a preshared key', () =>
  withPair({ psk: randomBytes(32) }, async ({ a, b }) => {
    b.tun.inject(ipv6Udp('fd00::2', 'fd00::1', text('six from B')));
    await settle();
    assert.equal(a.tun.written.length, 1);
    assert.equal(payloadOf(a.tun.written[0]!, 6), 'six from B');
    a.tun.inject(ipv6Udp('fd00::1', 'fd00::2', text('six from A')));
    await settle();
    assert.equal(payloadOf(b.tun.written[0]!, 6), 'six from A');
    assert.ok(b.peer.current?.isInitiator);
  }));

test('mismatched preshared keys never complete a handshake', () =>
  withPair({}, async ({ a, b }) => {
    a.peer.setPresharedKey(randomBytes(32));
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('x')));
    await settle();
    assert.equal(b.tun.written.length, 0);
    assert.equal(a.rt.device.drops['handshake-failed'], 1);
    assert.equal(a.peer.current, null);
  }));

test('packets queued during the handshake all arrive, in order', () =>
  withPair({}, async ({ a, b }) => {
    for (let i = 0; i < 50; i++) a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text(`p${i}`)));
    await settle();
    assert.deepEqual(b.tun.written.map((p) => payloadOf(p, 4)), Array.from({ length: 50 }, (_, i) => `p${i}`));
  }));

test('rekey after REKEY_AFTER_TIME with no packet lost across the rotation', () =>
  withPair({}, async ({ clock, a, b }) => {
    let sent = 0;
    const send = async (n: number) => {
      for (let i = 0; i < n; i++) a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text(`m${sent++}`)));
      await settle();
    };
    await send(10);
    const first = a.peer.current!;
    // Keep traffic flowing (B answers, so no timer-driven handshake) while time passes.
    for (let t = 0; t < REKEY_AFTER_TIME + 10_000; t += 5_000) {
      clock.advance(5_000);
      a.rt.device.tick();
      b.rt.device.tick();
      await send(5);
      b.tun.inject(ipv4Udp('10.0.0.2', '10.0.0.1', text('ack')));
      await settle();
    }
    await send(10);
    assert.notEqual(a.peer.current, first, 'A rotated to a new keypair');
    assert.equal(a.peer.previous, first, 'the old keypair is kept as previous');
    assert.deepEqual(b.tun.written.map((p) => payloadOf(p, 4)), Array.from({ length: sent }, (_, i) => `m${i}`));
  }));

test('REJECT_AFTER_TIME: an old keypair is neither used nor accepted; a new handshake follows', () =>
  withPair({}, async ({ clock, net, a, b }) => {
    const captured: Uint8Array[] = [];
    net.filter = (d) => {
      if (d.data[0] === 4 && d.data.length > 32) captured.push(d.data.slice());
      return true;
    };
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('one')));
    await settle();
    const old = a.peer.current!;
    clock.advance(REJECT_AFTER_TIME + 1);
    // The captured datagram, replayed after REJECT_AFTER_TIME, is refused before decryption.
    const before = b.rt.device.drops['expired-keypair'];
    net.filter = null;
    deliver(b, captured[0]!, A_ADDR);
    assert.equal(b.rt.device.drops['expired-keypair'], before + 1);
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('two')));
    await settle();
    assert.notEqual(a.peer.current, old);
    assert.deepEqual(b.tun.written.map((p) => payloadOf(p, 4)), ['one', 'two']);
  }));

test('keys are erased after 3 × REJECT_AFTER_TIME', () =>
  withPair({}, async ({ clock, a }) => {
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('one')));
    await settle();
    const kp = a.peer.current!;
    clock.advance(3 * REJECT_AFTER_TIME + 1);
    a.rt.device.tick();
    assert.equal(a.peer.current, null);
    assert.equal(a.peer.previous, null);
    assert.ok(kp.sendKey.every((x) => x === 0) && kp.receiveKey.every((x) => x === 0));
  }));

test('persistent keepalive: A sends a keepalive every interval, and it starts the handshake', () =>
  withPair({ endpoints: 'a-knows-b' }, async ({ clock, net, a, b }) => {
    let keepalives = 0;
    let initiations = 0;
    net.filter = (d) => {
      if (d.data[0] === 4 && d.data.length === 32) keepalives++;
      if (d.data[0] === 1) initiations++;
      return true;
    };
    a.rt.device.setPersistentKeepalive(a.peer, 25);
    a.rt.device.sendKeepalive(a.peer);
    await settle();
    assert.equal(initiations, 1);
    assert.ok(b.peer.hasEndpoint(), 'B learned A from the handshake');
    assert.equal(keepalives, 1, 'the confirming keepalive');
    for (let i = 0; i < 3; i++) {
      clock.advance(25_000);
      a.rt.device.tick();
      await settle();
    }
    assert.equal(keepalives, 4);
  }));

test('passive keepalive: data received and nothing to send → a keepalive after KEEPALIVE_TIMEOUT', () =>
  withPair({}, async ({ clock, net, a, b }) => {
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('one')));
    await settle();
    let fromB = 0;
    net.filter = (d) => {
      if (d.from.address === '192.0.2.2' && d.data[0] === 4 && d.data.length === 32) fromB++;
      return true;
    };
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('two')));
    await settle();
    clock.advance(KEEPALIVE_TIMEOUT + 1);
    b.rt.device.tick();
    await settle();
    assert.equal(fromB, 1);
  }));

test('no answer to data: A starts a new handshake after KEEPALIVE + REKEY_TIMEOUT', () =>
  withPair({}, async ({ clock, net, a }) => {
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('one')));
    await settle();
    let initiations = 0;
    net.filter = (d) => {
      if (d.data[0] === 1) initiations++;
      return d.from.address !== '192.0.2.2'; // B is silenced
    };
    clock.advance(REKEY_TIMEOUT + 1); // past the per-peer initiation rate limit
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('two')));
    await settle();
    clock.advance(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + 400);
    a.rt.device.tick();
    assert.equal(initiations, 1);
    // and retransmits every REKEY_TIMEOUT (+ jitter) while unanswered
    clock.advance(REKEY_TIMEOUT + 400);
    a.rt.device.tick();
    assert.equal(initiations, 2);
  }));

test('replayed datagrams are dropped', () =>
  withPair({}, async ({ net, a, b }) => {
    const captured: { data: Uint8Array }[] = [];
    net.filter = (d) => {
      if (d.data[0] === 4 && d.data.length > 32) captured.push({ data: d.data.slice() });
      return true;
    };
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('once')));
    await settle();
    assert.equal(b.tun.written.length, 1);
    net.filter = null;
    deliver(b, captured[0]!.data, A_ADDR);
    assert.equal(b.rt.device.drops['replayed-packet'], 1);
    assert.equal(b.tun.written.length, 1);
  }));

test('roaming: the endpoint follows the source of authenticated packets', () =>
  withPair({}, async ({ a, b }) => {
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('from 51820')));
    await settle();
    a.bind.rebind(40000);
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('from 40000')));
    await settle();
    assert.equal(decodeEndpoint(b.peer.endpoint)?.port, 40000);
    b.tun.inject(ipv4Udp('10.0.0.2', '10.0.0.1', text('reply')));
    await settle();
    assert.deepEqual(a.tun.written.map((p) => payloadOf(p, 4)), ['reply']);
  }));

test('a packet whose inner source is outside the peer\'s allowed IPs is dropped', () =>
  withPair({}, async ({ a, b }) => {
    a.tun.inject(ipv4Udp('10.9.9.9', '10.0.0.2', text('spoofed')));
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('fine')));
    await settle();
    assert.deepEqual(b.tun.written.map((p) => payloadOf(p, 4)), ['fine']);
    assert.equal(b.rt.device.drops['inner-source-not-allowed'], 1);
  }));

test('a packet to an address no peer owns is dropped on send', () =>
  withPair({}, async ({ a }) => {
    a.tun.inject(ipv4Udp('10.0.0.1', '10.7.7.7', text('nowhere')));
    await settle();
    assert.equal(a.rt.device.drops['no-route'], 1);
  }));

test('without a private key nothing is sent or answered, and the drops say why', () =>
  withPair({}, async ({ a, b }) => {
    b.rt.device.setPrivateKey(null);
    b.tun.inject(ipv4Udp('10.0.0.2', '10.0.0.1', text('keyless')));
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('to the keyless side')));
    await settle();
    assert.equal(b.rt.device.drops['no-private-key'], 2, 'the packet from the TUN and the initiation from A');
    assert.equal(b.rt.device.drops['no-route'], 0);
    assert.equal(a.tun.written.length + b.tun.written.length, 0);
    assert.equal(a.peer.current, null);
  }));

test('a peer without an endpoint: the initiation cannot leave and is counted as no-endpoint', () =>
  withPair({ endpoints: 'a-knows-b' }, async ({ a, b }) => {
    b.tun.inject(ipv4Udp('10.0.0.2', '10.0.0.1', text('where is A?')));
    await settle();
    assert.equal(b.rt.device.drops['no-endpoint'], 1);
    assert.equal(a.tun.written.length, 0);
    // Once A's initiation arrives B learns the endpoint, and the packet that waited goes out.
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('here')));
    await settle();
    assert.deepEqual(a.tun.written.map((p) => payloadOf(p, 4)), ['where is A?']);
  }));

test('under load: a cookie reply, then the retried initiation with mac2 succeeds', () =>
  withPair({ b: { underLoad: 'always' } }, async ({ clock, net, a, b }) => {
    const types: number[] = [];
    net.filter = (d) => {
      types.push(d.data[0]!);
      return true;
    };
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('under load')));
    await settle();
    assert.deepEqual(types, [1, 3], 'initiation answered by a cookie reply');
    assert.equal(b.rt.device.drops['bad-mac2'], 1);
    assert.equal(b.tun.written.length, 0);
    clock.advance(REKEY_TIMEOUT + 400);
    a.rt.device.tick();
    await settle();
    assert.deepEqual(types.slice(2, 4), [1, 2], 'retry with mac2 gets a response');
    assert.deepEqual(b.tun.written.map((p) => payloadOf(p, 4)), ['under load']);
  }));

test('garbage and truncated datagrams are dropped silently', () =>
  withPair({}, async ({ net, a, b }) => {
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('establish')));
    await settle();
    let answers = 0;
    net.filter = (d) => {
      if (d.from.address === '192.0.2.2') answers++;
      return true;
    };
    const evil = net.bind('192.0.2.66', 666);
    const batch = new PacketBatch(64, 2048);
    const samples: Uint8Array[] = [
      new Uint8Array(0),
      Uint8Array.of(1),
      Uint8Array.of(4, 0, 0),
      randomBytes(148),
      Uint8Array.from([1, 0, 0, 0, ...randomBytes(144)]),
      Uint8Array.from([2, 0, 0, 0, ...randomBytes(88)]),
      Uint8Array.from([3, 0, 0, 0, ...randomBytes(60)]),
      Uint8Array.from([4, 0, 0, 0, ...randomBytes(60)]),
      Uint8Array.from([1, 1, 0, 0, ...randomBytes(144)]),
      Uint8Array.from([1, 0, 0, 0, ...randomBytes(100)]),
    ];
    for (let i = 0; i < 40; i++) samples.push(randomBytes(Math.floor(Math.random() * 300)));
    batch.count = samples.length;
    samples.forEach((s, i) => {
      batch.offsets[i] = 0;
      batch.lengths[i] = s.length;
      batch.data.set(s, i * batch.slotSize);
      encodeEndpoint(evil.local, batch.endpoints, i * 20);
    });
    b.rt.device.receiveFromNetwork(batch);
    await settle();
    assert.equal(answers, 0);
    const d = b.rt.device.drops;
    assert.ok(d['too-short'] + d['bad-length'] + d['unknown-type'] + d['bad-mac1'] + d['unknown-receiver'] + d['decrypt-failed'] + d['bad-cookie'] >= samples.length - 1);
    // the tunnel still works
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('still fine')));
    await settle();
    assert.equal(payloadOf(b.tun.written.at(-1)!, 4), 'still fine');
  }));

test('a replayed initiation is refused (TAI64N must increase)', () =>
  withPair({}, async ({ net, a, b }) => {
    let init: Uint8Array | null = null;
    net.filter = (d) => {
      if (d.data[0] === 1) init = d.data.slice();
      return true;
    };
    a.tun.inject(ipv4Udp('10.0.0.1', '10.0.0.2', text('x')));
    await settle();
    const kp = b.peer.current;
    deliver(b, init!, A_ADDR);
    assert.equal(b.rt.device.drops['replayed-initiation'], 1);
    assert.equal(b.peer.current, kp);
  }));
