// An exit's destination policy on the receive path, over the in-memory
// adapters: A is the client, B the exit (10.0.0.2, with the policy).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makePair, settle } from '../support/pair.js';
import { ipv4Udp, ipv6Udp, text } from '../support/packets.js';
import { DestinationPolicy } from '../../src/device/destination-policy.js';

const dstOf = (p: Uint8Array) => (p[0]! >>> 4 === 4 ? p.subarray(16, 20).join('.') : Buffer.from(p.subarray(24, 40)).toString('hex'));

test('the exit passes internet destinations to its TUN and drops refused ones, counted; replacing the policy takes effect at once', async () => {
  const policy = new DestinationPolicy({ own: ['10.0.0.2', 'fd00::2', '10.0.0.0/24'], allow: [] });
  const p = makePair({ b: { destinationPolicy: policy, isolatePeers: true } });
  try {
    const { a, b } = p;
    const send = async (pkts: Uint8Array[]) => {
      b.tun.written.length = 0;
      for (const pkt of pkts) a.tun.inject(pkt);
      await settle();
      return b.tun.written.map(dstOf);
    };
    // A's allowed IPs on its own side route everything to B, as a client's config does.
    a.rt.device.allowedIps.insert(4, new Uint8Array(4), 0, a.peer);
    a.rt.device.allowedIps.insert(6, new Uint8Array(16), 0, a.peer);
    const passed = await send([
      ipv4Udp('10.0.0.1', '8.8.8.8', text('internet')),
      ipv4Udp('10.0.0.1', '169.254.169.254', text('metadata')),
      ipv4Udp('10.0.0.1', '10.0.0.2', text('the exit')),
      ipv4Udp('10.0.0.1', '192.168.1.5', text('a LAN')),
      ipv4Udp('10.0.0.1', '127.0.0.1', text('loopback')),
      ipv6Udp('fd00::1', 'fd00:ec2::254', text('metadata v6')),
      ipv6Udp('fd00::1', '2606:4700:4700::1111', text('internet v6')),
      ipv6Udp('fd00::1', 'ff02::1', text('multicast')),
    ]);
    assert.deepEqual(passed, ['8.8.8.8', '26064700470000000000000000001111']);
    assert.equal(b.rt.device.drops['destination-refused'], 6);

    b.rt.device.destinationPolicy = new DestinationPolicy({ own: ['10.0.0.2', 'fd00::2', '10.0.0.0/24'], allow: ['192.168.1.0/24', '10.0.0.0/8'] });
    const opened = await send([ipv4Udp('10.0.0.1', '192.168.1.5', text('a LAN')), ipv4Udp('10.0.0.1', '10.0.0.2', text('the exit'))]);
    assert.deepEqual(opened, ['192.168.1.5'], 'the LAN opens; the exit stays refused');
    assert.equal(b.rt.device.drops['destination-refused'], 7);
  } finally {
    p.close();
  }
});
