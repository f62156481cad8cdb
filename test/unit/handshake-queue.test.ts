// The bounded handshake queue and what the receive path does with it
// (device/handshake-queue.ts, receive.ts): FIFO slots that keep message and
// source; data of a batch reaches the TUN before any handshake work; at most
// HANDSHAKES_PER_BATCH queued messages are processed per batch; what does not
// fit, or comes from an address over its share, is dropped without a single
// MAC computed; counters add up once the backlog is drained.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultBackend, type CryptoBackend } from '../../src/crypto/backend.js';
import { PacketBatch, SHED_QUEUE_FULL, SHED_TOO_SHORT } from '../../src/io/batch.js';
import { encodeEndpoint, ENDPOINT_SIZE } from '../../src/io/endpoint.js';
import { deliverAndPoison } from '../../src/io/memory.js';
import type { Device } from '../../src/device/device.js';
import { HANDSHAKE_QUEUE_FRESH_RESERVE, HANDSHAKE_QUEUE_SIZE, HANDSHAKE_QUEUE_SOURCE_BURST, HANDSHAKES_PER_BATCH, HandshakeQueue } from '../../src/device/handshake-queue.js';
import { HANDSHAKE_RATE_BURST } from '../../src/protocol/constants.js';
import { ExitRig } from '../support/datagram-fuzz.js';
import { ipv4Udp, text } from '../support/packets.js';
import { Rng } from '../support/rng.js';

test('the queue keeps messages and sources in order and refuses when full', () => {
  const q = new HandshakeQueue(3);
  const src = new Uint8Array(2 * ENDPOINT_SIZE);
  encodeEndpoint({ family: 4, address: '203.0.113.1', port: 1 }, src, 0);
  encodeEndpoint({ family: 6, address: '2001:db8::2', port: 2 }, src, ENDPOINT_SIZE);
  const msg = (n: number, len: number) => new Uint8Array(len).fill(n);
  assert.ok(q.push(1, msg(1, 148), 0, 148, src, 0));
  assert.ok(q.push(2, msg(2, 92), 0, 92, src, ENDPOINT_SIZE));
  assert.ok(q.push(3, msg(3, 64), 0, 64, src, 0));
  assert.equal(q.push(1, msg(4, 148), 0, 148, src, 0), false);
  assert.equal(q.length, 3);
  const seen: string[] = [];
  const take = () => q.shift((type, d, at, len, eps, epAt) => seen.push(`${type}:${len}:${d[at]}:${d[at + len - 1]}:${eps[epAt]}`));
  take();
  take();
  assert.ok(q.push(2, msg(5, 92), 0, 92, src, ENDPOINT_SIZE), 'room again after a shift');
  take();
  take();
  assert.equal(take(), undefined);
  assert.deepEqual(seen, ['1:148:1:1:4', '2:92:2:2:6', '3:64:3:3:4', '2:92:5:5:6']);
  assert.throws(() => q.push(1, new Uint8Array(149), 0, 149, src, 0), RangeError);
  q.push(1, msg(1, 148), 0, 148, src, 0);
  assert.equal(q.clear(), 1);
  assert.equal(q.length, 0);
});

/** The default backend with MAC calls counted. */
function countingBackend(): { crypto: CryptoBackend; macs: () => number } {
  const base = defaultBackend();
  let n = 0;
  const blake2s = { ...base.blake2s, macInto: (o: Uint8Array, k: Uint8Array, i: Uint8Array) => (n++, base.blake2s.macInto(o, k, i)) };
  return { crypto: { ...base, blake2s }, macs: () => n };
}

/** A batch into a device's receive path, poisoned once the call returns: what the queue kept must be its own copy. */
function receive(device: Device, batch: PacketBatch): void {
  deliverAndPoison(batch, (b) => device.receiveFromNetwork(b));
}

function batchOf(msgs: { bytes: Uint8Array; src: Uint8Array }[]): PacketBatch {
  const b = new PacketBatch(msgs.length, 2048);
  for (const m of msgs) {
    const i = b.count++;
    b.offsets[i] = 0;
    b.lengths[i] = m.bytes.length;
    b.data.set(m.bytes, i * b.slotSize);
    b.endpoints.set(m.src, i * ENDPOINT_SIZE);
  }
  return b;
}

function source(i: number): Uint8Array {
  const r = new Uint8Array(ENDPOINT_SIZE);
  encodeEndpoint({ family: 4, address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 1000 + (i % 50000) }, r);
  return r;
}

test('a batch of flood and data: the data reaches the TUN, handshake work is bounded, the overflow costs no MAC', () => {
  const { crypto, macs } = countingBackend();
  const rig = new ExitRig(crypto);
  rig.handshake();
  const rng = new Rng(7);
  const flood = HANDSHAKE_QUEUE_SIZE + 476;
  const payloads = Array.from({ length: 20 }, (_, i) => ipv4Udp('10.64.0.2', '203.0.113.9', Uint8Array.of(i)));
  const data = rig.seal(payloads);
  const msgs: { bytes: Uint8Array; src: Uint8Array }[] = [];
  for (let i = 0; i < flood; i++) {
    msgs.push({ bytes: rig.floodInitiation(rng), src: source(i) });
    if (i % 75 === 0 && data.length > 0) msgs.push({ bytes: data.shift()!, src: rig.clientEp });
  }
  for (const d of data) msgs.push({ bytes: d, src: rig.clientEp });
  const batch = batchOf(msgs);
  rig.tunWrites = 0;
  const drops0 = { ...rig.exit.drops };
  const macs0 = macs();
  receive(rig.exit, batch);

  assert.equal(rig.tunWrites, 20, 'every data packet of the batch was written to the TUN');
  assert.equal(rig.exit.accepted.data >= 20, true);
  const shed = rig.exit.drops['handshake-queue-full'] - drops0['handshake-queue-full'];
  assert.equal(shed, flood - HANDSHAKE_QUEUE_SIZE, 'what did not fit was dropped');
  assert.equal(rig.exit.handshakeBacklog, HANDSHAKE_QUEUE_SIZE - HANDSHAKES_PER_BATCH, 'only HANDSHAKES_PER_BATCH were processed with the batch');
  // mac1, at most two for mac2 and one for the cookie, per processed message: none for the shed ones.
  assert.ok(macs() - macs0 <= 4 * HANDSHAKES_PER_BATCH, `${macs() - macs0} MACs computed for ${HANDSHAKES_PER_BATCH} processed messages`);

  while (rig.exit.processHandshakes(100) > 0);
  const sum = (r: Readonly<Record<string, number>>, r0: Readonly<Record<string, number>>) => Object.keys(r).reduce((a, k) => a + r[k]! - (r0[k] ?? 0), 0);
  assert.equal(sum(rig.exit.drops, drops0), flood, 'each flood initiation ended as exactly one drop');
  assert.ok(rig.exitOut.length > 0 && rig.exitOut.every(([m]) => m[0] === 3 && m.length === 64), 'under load the processed ones got cookie replies, and nothing else was sent');
});

test('one address cannot fill the queue: past its burst it is shed, another address still gets in', () => {
  const { crypto, macs } = countingBackend();
  const rig = new ExitRig(crypto);
  rig.handshake();
  const rng = new Rng(8);
  const one = source(1);
  const msgs = Array.from({ length: 300 }, () => ({ bytes: rig.floodInitiation(rng), src: one }));
  msgs.push({ bytes: rig.floodInitiation(rng), src: source(2) });
  const drops0 = { ...rig.exit.drops };
  const macs0 = macs();
  receive(rig.exit, batchOf(msgs));
  assert.equal(rig.exit.drops['handshake-source-limited'] - drops0['handshake-source-limited'], 300 - HANDSHAKE_QUEUE_SOURCE_BURST);
  assert.ok(macs() - macs0 <= 4 * HANDSHAKES_PER_BATCH);
  assert.equal(rig.exit.handshakeBacklog + HANDSHAKES_PER_BATCH, HANDSHAKE_QUEUE_SOURCE_BURST + 1, 'the burst of the first address and the second address were queued');
});

test('a flood from many addresses fills the queue and turns cookies on; a new client gets through with its cookie', () => {
  const rig = new ExitRig(defaultBackend());
  const rng = new Rng(9);
  const flood = (n: number, from: number) => batchOf(Array.from({ length: n }, (_, i) => ({ bytes: rig.floodInitiation(rng), src: source(from + i) })));
  // 2000 addresses at once: each within its share, together more than the queue holds.
  receive(rig.exit, flood(2000, 0));
  assert.ok(rig.exit.handshakeBacklog >= HANDSHAKE_QUEUE_SIZE / 8, 'the queue is filling');

  // The client's first initiation arrives behind the flood.
  rig.clientOut = [];
  rig.seal([ipv4Udp('10.64.0.2', '203.0.113.9', text('hello'))]);
  const first = rig.clientOut.find(([m]) => m[0] === 1)![0];
  rig.exitOut = [];
  receive(rig.exit, batchOf([{ bytes: first, src: rig.clientEp }]));
  while (rig.exit.processHandshakes(64) > 0);
  const toClient = rig.exitOut.filter(([, dst]) => Buffer.compare(dst, rig.clientEp) === 0).map(([m]) => m);
  assert.equal(toClient.length, 1);
  assert.equal(toClient[0]![0], 3, 'under load the client gets a cookie reply, not a response');

  // The client takes the cookie; at its retransmission (REKEY_TIMEOUT + jitter) the initiation carries mac2.
  rig.clientOut = [];
  receive(rig.client, batchOf([{ bytes: toClient[0]!, src: rig.exitEp }]));
  rig.clock.advance(5_400);
  receive(rig.exit, flood(2000, 5000)); // the flood goes on: still under load
  rig.client.tick();
  const retry = rig.clientOut.find(([m]) => m[0] === 1);
  assert.ok(retry, 'the client retransmitted');
  assert.ok(retry[0].subarray(132).some((b) => b !== 0), 'with a mac2');
  rig.exitOut = [];
  receive(rig.exit, batchOf([{ bytes: retry[0], src: rig.clientEp }]));
  while (rig.exit.processHandshakes(64) > 0);
  const answer = rig.exitOut.filter(([, dst]) => Buffer.compare(dst, rig.clientEp) === 0).map(([m]) => m);
  assert.ok(rig.exitOut.filter(([m]) => m[0] === 3).length > 0, 'meanwhile the flood still got cookie replies: the exit was under load');
  assert.equal(answer.length, 1);
  assert.equal(answer[0]![0], 2, 'the retry with mac2 is answered with a handshake response');
  rig.clientOut = [];
  receive(rig.client, batchOf([{ bytes: answer[0]!, src: rig.exitEp }]));
  rig.tunWrites = 0;
  receive(rig.exit, batchOf(rig.clientOut.map(([m]) => ({ bytes: m, src: rig.clientEp }))));
  assert.equal(rig.tunWrites, 1, "the client's packet that waited for the handshake reached the exit's TUN");
});

test('the reserve: sources that have been sending fill the queue only up to capacity - reserve; fresh ones may take the rest', () => {
  const q = new HandshakeQueue(8, 2);
  const src = source(1);
  const m = new Uint8Array(148);
  for (let i = 0; i < 6; i++) assert.ok(q.push(1, m, 0, 148, src, 0, false));
  assert.equal(q.push(1, m, 0, 148, src, 0, false), false, 'only the reserve is left');
  assert.ok(q.push(1, m, 0, 148, src, 0, true));
  assert.ok(q.push(1, m, 0, 148, src, 0, true));
  assert.equal(q.push(1, m, 0, 148, src, 0, true), false, 'full');
  assert.equal(new HandshakeQueue().reserve, HANDSHAKE_QUEUE_FRESH_RESERVE);
  assert.throws(() => new HandshakeQueue(8, 8), RangeError);
});

test('under load each source gets the whitepaper\'s share (20/s, burst 5), and the load lasts while 512/s still get in', () => {
  const rig = new ExitRig(defaultBackend());
  const rng = new Rng(10);
  const batchFrom = (srcs: Uint8Array[]) => batchOf(srcs.map((src) => ({ bytes: rig.floodInitiation(rng), src })));
  // A batch whose bind shed handshakes for its per-read cap: more arrive than a batch's share of work.
  const shedOnly = new PacketBatch(1, 2048);
  shedOnly.shed[SHED_QUEUE_FULL] = 5;
  shedOnly.shed[SHED_TOO_SHORT] = 2;
  const drops0 = { ...rig.exit.drops };
  assert.equal(rig.exit.isUnderLoad(), false);
  receive(rig.exit, shedOnly);
  assert.equal(rig.exit.drops['handshake-queue-full'] - drops0['handshake-queue-full'], 5, 'what the bind shed is counted');
  assert.equal(rig.exit.drops['too-short'] - drops0['too-short'], 2);
  assert.deepEqual([...shedOnly.shed], [0, 0, 0, 0, 0], 'and taken');
  assert.ok(rig.exit.isUnderLoad(), 'the bind shed for want of room: under load');

  const limited0 = rig.exit.drops['handshake-source-limited'];
  receive(rig.exit, batchFrom(Array.from({ length: 20 }, () => source(77))));
  assert.equal(rig.exit.drops['handshake-source-limited'] - limited0, 20 - HANDSHAKE_RATE_BURST, 'one address: its burst of 5 under load, not 128');
  while (rig.exit.processHandshakes(100) > 0);

  // 600 initiations a second from 100 addresses (6/s each, within the share) for three seconds: the load lasts.
  for (let t = 0; t < 30; t++) {
    rig.clock.advance(100);
    receive(rig.exit, batchFrom(Array.from({ length: 60 }, (_, i) => source(1000 + ((t * 60 + i) % 100)))));
    while (rig.exit.processHandshakes(100) > 0);
    assert.ok(rig.exit.isUnderLoad(), `still under load at ${(t + 1) * 100} ms`);
  }
  // Then 100/s: the load ends within the hold.
  for (let t = 0; t < 12; t++) {
    rig.clock.advance(100);
    receive(rig.exit, batchFrom(Array.from({ length: 10 }, (_, i) => source(1000 + i))));
    while (rig.exit.processHandshakes(100) > 0);
  }
  assert.equal(rig.exit.isUnderLoad(), false, 'the load ended once fewer than 512/s got in');
});
