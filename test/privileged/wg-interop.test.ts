// Interop with Debian's wireguard-go as the peer, configured with wg(8),
// inside network namespaces this test creates and removes.
//
//   nsA: wireguard-go "wgA"   198.51.100.1 / 2001:db8:1::1  inner 192.0.2.1, 2001:db8:2::1
//   nsB: tunnelbyte-wg "wgB"  198.51.100.2 / 2001:db8:1::2  inner 192.0.2.2, 2001:db8:2::2
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Netns, privilegedSkipReason, veth, waitFor } from '../support/netns.js';
import { configure, genKeys, genPsk, ifname, keyDir, ping, startInterface, waitPing, wgShow, type WgKeys } from '../support/wg.js';

const skip = privilegedSkipReason(['ip', 'wg', 'wireguard-go', 'ping', 'iperf3', 'iptables']);

interface Rig {
  a: Netns;
  b: Netns;
  A: string; // wireguard-go's interface in a
  B: string; // tunnelbyte-wg's interface in b
  ka: WgKeys;
  kb: WgKeys;
  destroy(): void;
}

function rig(opts: { outer?: 4 | 6; psk?: boolean; mtu?: number; bKnowsA?: boolean; aKnowsB?: boolean; pathMtu?: number } = {}): Rig {
  const a = Netns.create('A');
  const b = Netns.create('B');
  const keys = keyDir();
  const A = ifname('wgA');
  const B = ifname('wgB');
  try {
    veth(a, ['198.51.100.1/24', '2001:db8:1::1/64'], b, ['198.51.100.2/24', '2001:db8:1::2/64'], { mtu: opts.pathMtu });
    const ka = genKeys();
    const kb = genKeys();
    startInterface(a, 'wireguard-go', A);
    startInterface(b, 'tunnelbyte-wg', B);
    configure(a, A, { privFile: keys.write('a', ka.priv), port: 51820, addrs: ['192.0.2.1/24', '2001:db8:2::1/64'], mtu: opts.mtu });
    configure(b, B, { privFile: keys.write('b', kb.priv), port: 51821, addrs: ['192.0.2.2/24', '2001:db8:2::2/64'], mtu: opts.mtu });
    const epA = opts.outer === 6 ? '[2001:db8:1::1]:51820' : '198.51.100.1:51820';
    const epB = opts.outer === 6 ? '[2001:db8:1::2]:51821' : '198.51.100.2:51821';
    const pskArgs = opts.psk ? ['preshared-key', keys.write('psk', genPsk())] : [];
    a.run('wg', ['set', A, 'peer', kb.pub, 'allowed-ips', '192.0.2.2/32,2001:db8:2::2/128', ...pskArgs, ...(opts.aKnowsB === false ? [] : ['endpoint', epB])]);
    b.run('wg', ['set', B, 'peer', ka.pub, 'allowed-ips', '192.0.2.1/32,2001:db8:2::1/128', ...pskArgs, ...(opts.bKnowsA === false ? [] : ['endpoint', epA])]);
    return {
      a,
      b,
      A,
      B,
      ka,
      kb,
      destroy() {
        a.destroy();
        b.destroy();
      },
    };
  } catch (e) {
    a.destroy();
    b.destroy();
    throw e;
  } finally {
    keys.cleanup();
  }
}

async function withRig(opts: Parameters<typeof rig>[0], fn: (r: Rig) => Promise<void>): Promise<void> {
  const r = rig(opts);
  try {
    await fn(r);
  } finally {
    r.destroy();
  }
}

describe('tunnelbyte-wg ⇄ wireguard-go', { skip: skip ?? false }, () => {
  test('handshake started by tunnelbyte-wg; IPv4 and IPv6 inner traffic both ways', () =>
    withRig({}, async ({ a, b, A, B, ka, kb }) => {
      assert.ok(await waitPing(b, '192.0.2.1'), 'B → A over IPv4');
      assert.ok(ping(b, '2001:db8:2::1'), 'B → A over IPv6');
      assert.ok(ping(a, '192.0.2.2'), 'A → B over IPv4');
      assert.ok(ping(a, '2001:db8:2::2'), 'A → B over IPv6');
      assert.notEqual(wgShow(a, A, 'latest-handshakes').get(kb.pub), '0');
      assert.notEqual(wgShow(b, B, 'latest-handshakes').get(ka.pub), '0');
      const [rx, tx] = wgShow(b, B, 'transfer').get(ka.pub)!.split('\t').map(Number);
      assert.ok(rx! > 0 && tx! > 0, 'transfer counters move');
    }));

  test('handshake started by wireguard-go (we only learn its endpoint from it)', () =>
    withRig({ bKnowsA: false }, async ({ a, b, B, ka }) => {
      assert.ok(await waitPing(a, '192.0.2.2'), 'A → B');
      assert.equal(wgShow(b, B, 'endpoints').get(ka.pub), '198.51.100.1:51820');
      assert.ok(ping(b, '2001:db8:2::1'));
    }));

  test('IPv6 outer endpoints, with a preshared key', () =>
    withRig({ outer: 6, psk: true }, async ({ a, b, A, kb }) => {
      assert.ok(await waitPing(b, '192.0.2.1'));
      assert.ok(ping(a, '2001:db8:2::2'));
      assert.equal(wgShow(a, A, 'endpoints').get(kb.pub), '[2001:db8:1::2]:51821');
    }));

  test('a TCP stream with iperf3, both directions', () =>
    withRig({}, async ({ a, b }) => {
      assert.ok(await waitPing(b, '192.0.2.1'));
      const server = a.spawn('iperf3', ['-s', '-B', '192.0.2.1', '-1']);
      try {
        await waitFor('iperf3 server', () => a.try('sh', ['-c', 'ss -ltn | grep -q ":5201"']).status === 0, 30_000);
        const up = JSON.parse(b.run('iperf3', ['-c', '192.0.2.1', '-t', '2', '-J'], { timeoutMs: 30_000 }));
        assert.ok(up.end.sum_received.bytes > 1_000_000, `received ${up.end.sum_received.bytes} bytes`);
      } finally {
        server.kill();
      }
      const server2 = a.spawn('iperf3', ['-s', '-B', '192.0.2.1', '-1']);
      try {
        await waitFor('iperf3 server', () => a.try('sh', ['-c', 'ss -ltn | grep -q ":5201"']).status === 0, 30_000);
        const down = JSON.parse(b.run('iperf3', ['-c', '192.0.2.1', '-t', '2', '-R', '-J'], { timeoutMs: 30_000 }));
        assert.ok(down.end.sum_received.bytes > 1_000_000, `received ${down.end.sum_received.bytes} bytes`);
      } finally {
        server2.kill();
      }
    }));

  test('roaming: wireguard-go moves to another port and we follow', () =>
    withRig({}, async ({ a, b, A, B, ka }) => {
      assert.ok(await waitPing(b, '192.0.2.1'));
      a.run('wg', ['set', A, 'listen-port', '51830']);
      assert.ok(await waitPing(a, '192.0.2.2'), 'A → B from the new port');
      assert.equal(wgShow(b, B, 'endpoints').get(ka.pub), '198.51.100.1:51830');
      assert.ok(ping(b, '192.0.2.1'), 'B answers A at its new port');
    }));

  test('allowed IPs: a more specific peer steals 192.0.2.1/32 and traffic to the old peer stops', () =>
    withRig({}, async ({ a, b, B, ka }) => {
      assert.ok(await waitPing(b, '192.0.2.1'));
      const thief = genKeys();
      b.run('wg', ['set', B, 'peer', thief.pub, 'allowed-ips', '192.0.2.1/32']);
      assert.equal(wgShow(b, B, 'allowed-ips').get(ka.pub), '2001:db8:2::1/128');
      assert.equal(ping(b, '192.0.2.1', { count: 2, timeoutS: 1 }), false, 'B → 192.0.2.1 now routes to the thief');
      assert.equal(ping(a, '192.0.2.2', { count: 2, timeoutS: 1 }), false, 'A\'s packets from 192.0.2.1 are refused by source');
      assert.ok(ping(b, '2001:db8:2::1'), 'the IPv6 route to A still works');
    }));

  test('large MTU: 34 KB inner packets across a 1500-byte path', () =>
    withRig({ mtu: 40000, pathMtu: 1500 }, async ({ a, b }) => {
      assert.ok(await waitPing(b, '192.0.2.1'));
      assert.ok(ping(b, '192.0.2.1', { size: 34000, count: 2 }), 'B → A 34 KB');
      assert.ok(ping(a, '192.0.2.2', { size: 34000, count: 2 }), 'A → B 34 KB');
    }));
});

describe('persistent keepalive through a NAT', { skip: skip ?? false }, () => {
  // nsA: wireguard-go server 198.51.100.1 (no endpoint for B)
  // nsR: router, 198.51.100.254 towards A, 203.0.113.1 towards B, masquerading B's traffic
  // nsB: tunnelbyte-wg client 203.0.113.2, persistent keepalive 1 s
  let a: Netns, r: Netns, b: Netns;
  let ka: WgKeys, kb: WgKeys;
  const A = ifname('wgA');
  const B = ifname('wgB');
  before(() => {
    a = Netns.create('A');
    r = Netns.create('R');
    b = Netns.create('B');
    const keys = keyDir();
    try {
      veth(a, ['198.51.100.1/24'], r, ['198.51.100.254/24']);
      veth(r, ['203.0.113.1/24'], b, ['203.0.113.2/24']);
      b.run('ip', ['route', 'add', 'default', 'via', '203.0.113.1']);
      r.run('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      r.run('iptables', ['-t', 'nat', '-A', 'POSTROUTING', '-s', '203.0.113.0/24', '-j', 'MASQUERADE']);
      ka = genKeys();
      kb = genKeys();
      startInterface(a, 'wireguard-go', A);
      startInterface(b, 'tunnelbyte-wg', B);
      configure(a, A, { privFile: keys.write('a', ka.priv), port: 51820, addrs: ['192.0.2.1/24'] });
      configure(b, B, { privFile: keys.write('b', kb.priv), addrs: ['192.0.2.2/24'] });
      a.run('wg', ['set', A, 'peer', kb.pub, 'allowed-ips', '192.0.2.2/32']);
      b.run('wg', ['set', B, 'peer', ka.pub, 'allowed-ips', '192.0.2.1/32', 'endpoint', '198.51.100.1:51820', 'persistent-keepalive', '1']);
    } finally {
      keys.cleanup();
    }
  });
  after(() => {
    for (const ns of [a, r, b]) ns?.destroy();
  });

  test('the server reaches the client behind the NAT without the client sending data', async () => {
    // The keepalive alone brings up the session and opens the NAT mapping.
    await waitFor('handshake from behind the NAT', () => wgShow(a, A, 'latest-handshakes').get(kb.pub) !== '0', 10_000);
    const ep = wgShow(a, A, 'endpoints').get(kb.pub)!;
    assert.match(ep, /^198\.51\.100\.254:\d+$/, 'A sees the NAT\'s address');
    const rx1 = Number(wgShow(a, A, 'transfer').get(kb.pub)!.split('\t')[0]);
    await new Promise((res) => setTimeout(res, 3500));
    const rx2 = Number(wgShow(a, A, 'transfer').get(kb.pub)!.split('\t')[0]);
    assert.ok(rx2 - rx1 >= 2 * 32, `keepalives keep arriving (${rx2 - rx1} bytes in 3.5 s)`);
    assert.equal(wgShow(b, B, 'persistent-keepalive').get(ka.pub), '1');
    assert.ok(ping(a, '192.0.2.2'), 'A → B through the NAT');
  });
});
