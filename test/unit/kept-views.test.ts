/**
 * What is kept from a reused buffer must be a copy. Node's Buffer#slice and
 * every subarray are views: the device's receive batch, the stack's input
 * and output batches and the handshake queue's slots are refilled with the
 * next packets, so a view kept past the call that got it changes under its
 * keeper (main ca45e84: a held SYN's addresses, a UDP flow's client, an echo
 * request's destination).
 *
 * Here: the test doubles that hand batches over poison them after the call
 * (io/memory.ts deliverAndPoison, used by the in-memory UDP and TUN and by
 * test/support's netstack link), so a kept view shows at once in any test
 * that goes through them; and the Noise reads return copies of what they
 * return from a message.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nodeX25519 } from '../../src/crypto/x25519.js';
import { PacketBatch } from '../../src/io/batch.js';
import { encodeEndpoint, ENDPOINT_SIZE } from '../../src/io/endpoint.js';
import { deliverAndPoison, MemoryNetwork } from '../../src/io/memory.js';
import type { ForwardedPacket, Forwarder } from '../../src/netstack/forward.js';
import { initialState, readMessage1, readMessage2, writeMessage1, writeMessage2 } from '../../src/protocol/noise.js';
import { Link } from '../support/netstack-link.js';

function batchOf(packets: Uint8Array[], headroom = 16): PacketBatch {
  const b = new PacketBatch(4, 256);
  for (const p of packets) {
    const i = b.count++;
    b.offsets[i] = headroom;
    b.lengths[i] = p.length;
    b.data.set(p, i * b.slotSize + headroom);
    encodeEndpoint({ family: 4, address: `192.0.2.${i + 1}`, port: 51820 }, b.endpoints, i * ENDPOINT_SIZE);
  }
  return b;
}

test('deliverAndPoison: a view kept past the call reads garbage, a copy keeps its bytes, a packet moved inside the batch is poisoned too', () => {
  const p0 = Uint8Array.from({ length: 40 }, (_, i) => i + 1);
  const p1 = Uint8Array.from({ length: 100 }, (_, i) => 200 - i);
  const b = batchOf([p0, p1]);
  let view: Uint8Array | null = null;
  let copy: Uint8Array | null = null;
  let endpoint: Uint8Array | null = null;
  let moved: Uint8Array | null = null;
  deliverAndPoison(b, (x) => {
    view = x.packet(0);
    copy = new Uint8Array(x.packet(0));
    endpoint = x.endpoint(1);
    // As the device's receive path squeezes dropped slots out: packet 1 moves to slot 0, at offset 0.
    x.data.copyWithin(0, x.start(1), x.start(1) + x.lengths[1]!);
    x.offsets[0] = 0;
    x.lengths[0] = x.lengths[1]!;
    x.count = 1;
    moved = x.packet(0);
  });
  assert.deepEqual([...copy!], [...p0], 'the copy is intact');
  assert.notDeepEqual([...view!], [...p0], 'the kept view no longer holds the packet');
  assert.equal(new Set(view!).size, 1, 'it holds one garbage byte throughout');
  assert.notDeepEqual([...moved!], [...p1], 'the moved packet is poisoned as well');
  assert.equal(new Set(endpoint!).size, 1, 'so are the endpoint records');
  // The garbage differs from one delivery to the next.
  const first = view![0];
  deliverAndPoison(batchOf([p0]), (x) => (view = x.packet(0)));
  assert.notEqual(view![0], first);
});

test('deliverAndPoison poisons even when the consumer throws', () => {
  const b = batchOf([Uint8Array.of(1, 2, 3, 4)]);
  let view: Uint8Array | null = null;
  assert.throws(() =>
    deliverAndPoison(b, (x) => {
      view = x.packet(0);
      throw new Error('consumer failed');
    }),
  );
  assert.notDeepEqual([...view!], [1, 2, 3, 4]);
});

test('the in-memory UDP bind poisons its batch once the receiver returns', async () => {
  const net = new MemoryNetwork();
  const a = net.bind('192.0.2.1', 1000);
  const b = net.bind('192.0.2.2', 2000);
  const kept: Uint8Array[] = [];
  const copies: Uint8Array[] = [];
  const got = new Promise<void>((resolve) =>
    b.start((batch) => {
      kept.push(batch.packet(0), batch.endpoint(0));
      copies.push(new Uint8Array(batch.packet(0)), new Uint8Array(batch.endpoint(0)));
      resolve();
    }, 0),
  );
  a.start(() => {}, 0);
  const out = batchOf([Uint8Array.of(9, 8, 7, 6, 5)], 0);
  out.count = 1;
  encodeEndpoint({ family: 4, address: '192.0.2.2', port: 2000 }, out.endpoints, 0);
  a.send(out);
  await got;
  assert.deepEqual([...copies[0]!], [9, 8, 7, 6, 5]);
  assert.notDeepEqual([...kept[0]!], [...copies[0]!], 'the datagram kept as a view is gone');
  assert.notDeepEqual([...kept[1]!], [...copies[1]!], 'so is its source');
  a.close();
  b.close();
});

test("the netstack link poisons the stack's input batch after input(): a forwarder that keeps a view of a datagram's source sees garbage", () => {
  const views: Uint8Array[] = [];
  const copies: Uint8Array[] = [];
  const forwarder: Forwarder = {
    tcp: () => {},
    udp: (p: ForwardedPacket) => {
      views.push(p.buf.subarray(p.srcAt, p.srcAt + p.addrLen));
      copies.push(new Uint8Array(p.buf.subarray(p.srcAt, p.srcAt + p.addrLen)));
    },
    echo: () => {},
  };
  const link = new Link({ b: { forwarder } });
  const u = link.a.udpBind(0, () => {});
  u.send(Uint8Array.of(1, 2, 3), '198.51.100.7', 53);
  link.run(() => copies.length === 1, 50);
  assert.deepEqual([...copies[0]!], [10, 0, 0, 1], 'the copy is the client');
  assert.notDeepEqual([...views[0]!], [10, 0, 0, 1], 'the view was poisoned');
});

test("the netstack link poisons the stack's output batch once the wire has copied it", () => {
  const link = new Link();
  const out: { view: Uint8Array; copy: Uint8Array }[] = [];
  const origSubmit = link.aWire.submit.bind(link.aWire);
  link.aWire.submit = (b) => {
    out.push({ view: b.packet(0), copy: new Uint8Array(b.packet(0)) });
    origSubmit(b);
  };
  link.a.udpBind(0, () => {}).send(Uint8Array.of(1, 2, 3), '10.0.0.2', 9);
  link.settle();
  assert.equal(out.length, 1);
  assert.equal(out[0]!.copy[0]! >>> 4, 4, 'an IPv4 packet went out');
  assert.notDeepEqual([...out[0]!.view], [...out[0]!.copy], 'the batch the stack fills next holds garbage');
});

test("Noise: what readMessage1 and readMessage2 return survives the reuse of the message's buffer (a Buffer, whose slice() is a view)", () => {
  const dh = nodeX25519;
  const prologue = new TextEncoder().encode('kept views');
  const iStatic = dh.generatePrivateKey();
  const iEph = dh.generatePrivateKey();
  const rStatic = dh.generatePrivateKey();
  const rEph = dh.generatePrivateKey();
  const rStaticPub = dh.publicKey(rStatic);
  const psk = new Uint8Array(32).fill(3);
  const ist = initialState(prologue, rStaticPub);
  const rst = initialState(prologue, rStaticPub);
  const msg1 = writeMessage1(ist, dh, {
    staticPublic: dh.publicKey(iStatic),
    ephemeralPrivate: iEph,
    ephemeralPublic: dh.publicKey(iEph),
    remoteStatic: rStaticPub,
    staticStatic: dh.sharedSecret(iStatic, rStaticPub)!,
  }, new Uint8Array(12).fill(7))!;
  // The message sits in a received batch (a Buffer), which is refilled after the read.
  const batch1 = Buffer.alloc(256);
  batch1.set(msg1, 32);
  const read1 = readMessage1(rst, dh, rStatic, batch1.subarray(32, 32 + msg1.length), (rs) => dh.sharedSecret(rStatic, rs))!;
  assert.ok(read1);
  batch1.fill(0xee);
  assert.deepEqual([...read1.remoteEphemeral], [...dh.publicKey(iEph)], "the initiator's ephemeral key");
  assert.deepEqual([...read1.remoteStatic], [...dh.publicKey(iStatic)]);
  assert.deepEqual([...read1.payload], [...new Uint8Array(12).fill(7)]);

  const msg2 = writeMessage2(rst, dh, { ephemeralPrivate: rEph, ephemeralPublic: dh.publicKey(rEph), remoteEphemeral: read1.remoteEphemeral, remoteStatic: read1.remoteStatic, presharedKey: psk }, new Uint8Array(0))!;
  const batch2 = Buffer.alloc(256);
  batch2.set(msg2, 64);
  const read2 = readMessage2(ist, dh, { staticPrivate: iStatic, ephemeralPrivate: iEph, presharedKey: psk }, batch2.subarray(64, 64 + msg2.length))!;
  assert.ok(read2, 'the response authenticates (it used the ephemeral key read from the reused buffer)');
  batch2.fill(0xee);
  assert.deepEqual([...read2.remoteEphemeral], [...dh.publicKey(rEph)], "the responder's ephemeral key");
});
