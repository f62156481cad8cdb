/**
 * The netstack exit (src/server/netstack-exit/: the forwarder's udpReply,
 * under the ExitStack the device runs over) hands the device the UDP replies
 * read in one event-loop turn as one batch.
 * A destination on 127.0.0.1 answers one datagram from a client with a burst,
 * all of it queued on the flow's host socket before the exit's loop polls it;
 * the device (here: the test, started on the exit's NetstackTun as the
 * WireGuard device would be) must receive the burst in one batch, in order —
 * not one batch per datagram, which costs the device one seal and one
 * sendmmsg per datagram and throttled QUIC through the exit.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { afterEach, test } from 'node:test';
import { DestinationPolicy } from '../../src/device/destination-policy.js';
import { PacketBatch } from '../../src/io/batch.js';
import { finish, sumBytes } from '../../src/netstack/checksum.js';
import { ExitForwarder } from '../../src/server/netstack-exit/forwarder.js';
import { ExitStack } from '../../src/server/netstack-exit/exit-stack.js';
import { ipv4Udp } from '../support/packets.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanups.splice(0).reverse()) f();
});

/** How many datagrams the destination sends back at once (libuv reads up to 32 per readable socket). */
const BURST = 16;
const HEADROOM = 16;

test('a burst of UDP replies read in one turn reaches the device as one batch, in order', async () => {
  const dest = createSocket('udp4');
  dest.on('message', (_m, r) => {
    // All of the burst is in the flow socket's queue before the exit's loop reads any of it.
    for (let i = 0; i < BURST; i++) dest.send(Buffer.from(`reply ${i}`), r.port, r.address);
  });
  await new Promise<void>((r) => dest.bind(0, '127.0.0.1', r));
  cleanups.push(() => dest.close());

  const forwarder = new ExitForwarder({
    policy: new DestinationPolicy({ own: ['10.0.0.0/24'], allow: ['127.0.0.0/8'], host: [] }),
    ownPorts: { tcp: [], udp: [] },
    clock: { now: () => performance.now() },
  });
  const exit = new ExitStack({ addresses: ['10.0.0.2'], mtu: 1420, forwarder });
  cleanups.push(() => exit.close());

  const batches: string[][] = [];
  exit.tun.start((b) => {
    const replies: string[] = [];
    for (let i = 0; i < b.count; i++) {
      const p = b.packet(i);
      // IPv4/UDP from the destination to the client's port: the payload behind the 28 header bytes.
      if (p[9] === 17 && p.readUInt16BE(22) === 40000) replies.push(p.subarray(28).toString());
    }
    if (replies.length > 0) batches.push(replies);
  }, HEADROOM);

  const ask = ipv4Udp('10.0.0.1', '127.0.0.1', Buffer.from('go'), 40000, dest.address().port);
  const sum = finish(sumBytes(ask, 0, 20, 0));
  ask[10] = sum >>> 8;
  ask[11] = sum & 0xff;
  const input = new PacketBatch(1, 2048);
  input.data.set(ask, input.start(0));
  input.lengths[0] = ask.length;
  input.count = 1;
  exit.tun.write(input);

  const until = Date.now() + 10_000;
  while (batches.flat().length < BURST && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(batches.flat(), Array.from({ length: BURST }, (_, i) => `reply ${i}`));
  assert.equal(batches.length, 1, `the burst came in ${batches.length} batches: ${batches.map((b) => b.length).join(', ')}`);
  assert.equal(forwarder.opened.udp, 1);
});
