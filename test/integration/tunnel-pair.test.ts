// Two userspace tunnels in one process, joined by the in-memory UDP network:
// WireGuard handshakes, TCP both ways, UDP, half-close, through the package's
// exported API — no root, no TUN, no sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { MemoryNetwork } from '../../src/io/memory.js';
import { generateKeyPair } from '../../src/crypto/wireguard-keys.js';
import { Tunnel, parseWgQuick, WgQuickError, type TunnelSocket } from 'tunnelbyte';
import { hashStream } from '../support/kernel-peer.js';

function pairConfigs(): { a: string; b: string } {
  const ka = generateKeyPair();
  const kb = generateKeyPair();
  return {
    a: `[Interface]\nPrivateKey = ${ka.privateKey}\nAddress = 10.9.0.1/24, fd09::1/64\nListenPort = 51820\n\n[Peer]\nPublicKey = ${kb.publicKey}\nAllowedIPs = 10.9.0.2/32, fd09::2/128\n`,
    b: `[Interface]\nPrivateKey = ${kb.privateKey}\nAddress = 10.9.0.2/32, fd09::2/128\nDNS = 10.9.0.1\nMTU = 1380\n\n[Peer]\nPublicKey = ${ka.publicKey}\nEndpoint = 192.0.2.1:51820\nAllowedIPs = 10.9.0.0/24, fd09::/64\nPersistentKeepalive = 25\n`,
  };
}

async function withPair(fn: (a: Tunnel, b: Tunnel) => Promise<void>): Promise<void> {
  const net = new MemoryNetwork();
  const c = pairConfigs();
  const a = await Tunnel.start({ config: c.a, bind: net.bind('192.0.2.1', 51820) });
  const b = await Tunnel.start({ config: c.b, bind: net.bind('192.0.2.2', 40000) });
  try {
    await fn(a, b);
  } finally {
    a.close();
    b.close();
  }
}

test('wg-quick text: the keys a userspace tunnel uses; mistakes name their line', () => {
  const c = parseWgQuick(pairConfigs().b);
  assert.deepEqual(c.addresses, ['10.9.0.2', 'fd09::2']);
  assert.deepEqual(c.dns, ['10.9.0.1']);
  assert.equal(c.mtu, 1380);
  assert.equal(c.peers[0]!.endpoint, '192.0.2.1:51820');
  assert.equal(c.peers[0]!.persistentKeepalive, 25);
  assert.equal(c.peers[0]!.allowedIps.length, 2);
  assert.throws(() => parseWgQuick('[Interface]\nPrivateKey = nope\n'), (e) => e instanceof WgQuickError && /line 2/.test(e.message));
  assert.throws(() => parseWgQuick('[Interface]\nAdress = 10.0.0.1/32\n'), /unknown \[Interface\] key Adress/);
  assert.throws(() => parseWgQuick(pairConfigs().a.replace('Address = 10.9.0.1/24, fd09::1/64\n', '')), /no Address/);
});

test('TCP through two userspace tunnels: 8 MiB each way over IPv4 and IPv6, half-close', () =>
  withPair(async (a, b) => {
    for (const host of ['10.9.0.1', 'fd09::1']) {
      const down = randomBytes(8 << 20);
      const upload = randomBytes(8 << 20);
      const port = host.includes(':') ? 8006 : 8004;
      const served = new Promise<string>((resolve, reject) => {
        const srv = a.listen(
          port,
          (s) => {
            srv.close();
            assert.equal(s.remoteAddress, host.includes(':') ? 'fd09::2' : '10.9.0.2');
            hashStream(s).then((r) => {
              s.end(down); // after the client's FIN: a half-closed connection still carries data
              resolve(r.sha);
            }, reject);
          },
          { allowHalfOpen: true },
        );
      });
      const s: TunnelSocket = b.connect({ port, host, allowHalfOpen: true, noDelay: true });
      const closed = new Promise((res) => s.once('close', res));
      await new Promise((r) => s.once('connect', r));
      assert.equal(s.remotePort, port);
      const got = hashStream(s);
      s.end(upload);
      assert.equal(await served, createHash('sha256').update(upload).digest('hex'));
      const r = await got;
      assert.equal(r.bytes, down.length);
      assert.equal(r.sha, createHash('sha256').update(down).digest('hex'));
      await closed;
    }
  }));

test('UDP through two userspace tunnels; connecting to a closed port is refused', () =>
  withPair(async (a, b) => {
    const server = a.udp({ port: 5353 });
    server.on('message', (m: Buffer, r: { address: string; port: number }) => server.send(Buffer.concat([Buffer.from('re: '), m]), r.port, r.address));
    const client = b.udp();
    const reply = new Promise<string>((r) => client.once('message', (m: Buffer) => r(m.toString())));
    client.send('question', 5353, '10.9.0.1');
    assert.equal(await reply, 're: question');
    const s = b.connect(9, '10.9.0.1');
    const err = await new Promise<NodeJS.ErrnoException>((r) => s.once('error', r));
    assert.equal(err.code, 'ECONNREFUSED');
    assert.equal(err.syscall, 'connect');
    client.close();
    server.close();
  }));
