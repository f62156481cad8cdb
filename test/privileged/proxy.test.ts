// The rootless proxy end to end: `tunnelbyte proxy` runs as uid 65534 in a
// user namespace (no capabilities, no TUN) and sends through its userspace
// WireGuard tunnel to a stock wireguard-go peer; curl talks SOCKS5 (names
// resolved through the tunnel's DNS, IPv4 and IPv6 literals) and HTTP (absolute
// URIs and CONNECT) to it; every body is checked byte-exact by sha256. A small
// SOCKS5 UDP client (test/support/socks5-udp-client.ts; curl has no UDP) sends
// datagrams through UDP ASSOCIATE to a UDP echo behind the peer, to IPv4 and
// IPv6 literals and to a name, and checks the echoes byte for byte.
//
//   ns: curl ─▶ 127.0.0.1 ─▶ tunnelbyte proxy (uid 65534, user namespace) ─ UDP over lo ─▶ wireguard-go wgP
//       192.0.2.1 / 2001:db8:2::1: HTTP server and UDP echo :8000, DNS :53 (web.proxy.test) — the kernel's TCP/UDP behind the peer
//
// Root is needed only to make the namespace and wireguard-go's interface.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Netns, privilegedSkipReason, waitFor } from '../support/netns.js';
import { configure, genKeys, ifname, startInterface } from '../support/wg.js';
import { pattern } from '../support/kernel-peer.js';
import { BLOB_SEED } from '../support/proxy-peer.js';
import { REPO_ROOT } from '../support/repo.js';

const skip = privilegedSkipReason(['ip', 'wg', 'wireguard-go', 'curl', 'unshare']);
const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');
const PEER = join(REPO_ROOT, 'dist/test/support/proxy-peer.js');
const UDP_CLIENT = join(REPO_ROOT, 'dist/test/support/socks5-udp-client.js');
const NAME = 'web.proxy.test';
const BLOB = 3 * 1024 * 1024 + 17;

function blobSha(n: number): string {
  const h = createHash('sha256');
  for (let off = 0; off < n; off += 65536) h.update(pattern(BLOB_SEED, off / 65536, Math.min(65536, n - off)));
  return h.digest('hex');
}

let ns: Netns;
let dir: string;
let proxy: ChildProcess;
let out = '';
let err = '';
let socksAt = '';
let httpAt = '';

/** curl inside the namespace; the body's sha256 and length, or the failure. */
function curl(args: string[]): { status: number | null; sha: string; bytes: number; stderr: string } {
  const file = join(dir, `body-${Math.random().toString(36).slice(2)}`);
  const r = spawnSync('ip', ['netns', 'exec', ns.name, 'curl', '-sS', '--max-time', '60', '-o', file, ...args], { encoding: 'utf8', timeout: 90_000 });
  let body = Buffer.alloc(0);
  try {
    body = readFileSync(file);
  } catch {
    // no body
  }
  rmSync(file, { force: true });
  return { status: r.status, sha: createHash('sha256').update(body).digest('hex'), bytes: body.length, stderr: r.stderr };
}

describe('tunnelbyte proxy as an unprivileged user, through wireguard-go', { skip: skip ?? false }, () => {
  before(async () => {
    ns = Netns.create('prx');
    dir = mkdtempSync(join(tmpdir(), 'tb-proxy-'));
    const IF = ifname('wgP');
    const ka = genKeys();
    const kb = genKeys();
    writeFileSync(join(dir, 'peer.key'), ka.priv + '\n', { mode: 0o600 });
    startInterface(ns, 'wireguard-go', IF);
    configure(ns, IF, { privFile: join(dir, 'peer.key'), port: 51820, addrs: ['192.0.2.1/24', '2001:db8:2::1/64'], mtu: 1420 });
    ns.run('wg', ['set', IF, 'peer', kb.pub, 'allowed-ips', '192.0.2.2/32,2001:db8:2::2/128']);

    const far = ns.spawn(process.execPath, [PEER, '::', '8000', '192.0.2.1', NAME, '192.0.2.1', '2001:db8:2::1']);
    let farOut = '';
    far.stdout!.on('data', (d: Buffer) => (farOut += d.toString()));
    far.stderr!.on('data', (d: Buffer) => (farOut += d.toString()));
    await waitFor(`proxy-peer ready (${farOut})`, () => farOut.includes('ready'), 15_000, 20);

    const config = [
      '[Interface]',
      `PrivateKey = ${kb.priv}`,
      'Address = 192.0.2.2/32, 2001:db8:2::2/128',
      'DNS = 192.0.2.1',
      'MTU = 1420',
      '[Peer]',
      `PublicKey = ${ka.pub}`,
      'Endpoint = 127.0.0.1:51820',
      'AllowedIPs = 192.0.2.0/24, 2001:db8:2::/64',
      'PersistentKeepalive = 25',
      '',
    ].join('\n');
    writeFileSync(join(dir, 'tunnel.conf'), config, { mode: 0o600 });
    // uid 65534 with no capabilities: `unshare --user` maps it in a new user namespace (see cli-customer.test.ts).
    proxy = ns.spawn('unshare', ['--user', '--map-user=65534', '--map-group=65534', process.execPath, TB, 'proxy', '--config', join(dir, 'tunnel.conf'), '--socks', '127.0.0.1:0', '--http', '127.0.0.1:0']);
    proxy.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proxy.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    await waitFor(`the proxy prints where it listens (stdout ${out}, stderr ${err})`, () => /http proxy on/.test(out), 30_000, 50);
    socksAt = /socks5 proxy on (\S+)/.exec(out)![1]!;
    httpAt = /http proxy on (\S+)/.exec(out)![1]!;
  });

  after(() => {
    proxy?.kill('SIGTERM');
    ns?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the proxy runs without root: uid 65534 and no capabilities', () => {
    // the node process running bin/tunnelbyte.js among the namespace's processes (ip netns exec and unshare exec in place)
    const node = ns.pids().find((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('tunnelbyte.js');
      } catch {
        return false;
      }
    });
    assert.ok(node, 'found the proxy process');
    const status = readFileSync(`/proc/${node}/status`, 'utf8');
    assert.match(status, /^CapEff:\s+0+$/m, 'no effective capabilities');
    const uidMap = readFileSync(`/proc/${node}/uid_map`, 'utf8').trim().split(/\s+/);
    assert.equal(uidMap[0], '65534', 'uid 65534 inside its user namespace');
    const id = spawnSync('ip', ['netns', 'exec', ns.name, 'unshare', '--user', '--map-user=65534', 'id', '-u'], { encoding: 'utf8' });
    assert.equal(id.stdout.trim(), '65534');
  });

  test('curl --socks5-hostname: a name resolved through the tunnel, 3 MiB byte-exact', () => {
    const r = curl(['--socks5-hostname', socksAt, `http://${NAME}:8000/blob/${BLOB}`]);
    assert.equal(r.status, 0, r.stderr + err);
    assert.equal(r.bytes, BLOB);
    assert.equal(r.sha, blobSha(BLOB));
  });

  test('curl --socks5 to IPv4 and IPv6 literals (ATYP 01 and 04)', () => {
    for (const url of ['http://192.0.2.1:8000/blob/100000', 'http://[2001:db8:2::1]:8000/blob/100000']) {
      const r = curl(['--socks5', socksAt, url]);
      assert.equal(r.status, 0, `${url}: ${r.stderr}${err}`);
      assert.equal(r.sha, blobSha(100_000), url);
    }
  });

  test('curl -x http://: an absolute-URI GET and a CONNECT tunnel (-p), byte-exact', () => {
    const get = curl(['-x', `http://${httpAt}`, `http://${NAME}:8000/blob/${BLOB}`]);
    assert.equal(get.status, 0, get.stderr + err);
    assert.equal(get.sha, blobSha(BLOB));
    const tunnelled = curl(['-p', '-x', `http://${httpAt}`, `http://${NAME}:8000/blob/${BLOB}`]);
    assert.equal(tunnelled.status, 0, tunnelled.stderr + err);
    assert.equal(tunnelled.sha, blobSha(BLOB));
  });

  test('SOCKS5 UDP ASSOCIATE through the peer: IPv4, IPv6 and a name (ATYP 01, 04, 03), echoes byte-exact', () => {
    const targets = [
      { host: '192.0.2.1', port: 8000, data: randomBytes(1).toString('base64') },
      { host: '2001:db8:2::1', port: 8000, data: randomBytes(1200).toString('base64') },
      { host: NAME, port: 8000, data: randomBytes(517).toString('base64') },
      { host: '192.0.2.1', port: 8000, data: Buffer.alloc(0).toString('base64') },
    ];
    const [host, port] = [socksAt.slice(0, socksAt.lastIndexOf(':')), socksAt.slice(socksAt.lastIndexOf(':') + 1)];
    const r = spawnSync('ip', ['netns', 'exec', ns.name, process.execPath, UDP_CLIENT, host, port, JSON.stringify(targets)], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr + err);
    const got = JSON.parse(r.stdout) as { target: string; from?: { host: string; port: number }; data?: string; error?: string }[];
    assert.equal(got.length, targets.length);
    // The relay names the datagram's real source (§7: DST.ADDR of the reply header), the name's address for a name.
    const sources = ['192.0.2.1', '2001:db8:2:0:0:0:0:1', '192.0.2.1', '192.0.2.1'];
    targets.forEach((t, i) => {
      const g = got[i]!;
      assert.equal(g.error, undefined, `${t.host}: ${g.error}`);
      assert.equal(g.data, t.data, `${t.host}: the echo is the datagram sent, byte for byte (${Buffer.from(t.data, 'base64').length} bytes)`);
      assert.deepEqual(g.from, { host: sources[i], port: 8000 }, t.host);
    });
  });

  test('a name the tunnel DNS does not know: SOCKS REP 04 and HTTP 502; the proxy keeps serving', () => {
    const s = curl(['--socks5-hostname', socksAt, 'http://nowhere.proxy.test:8000/']);
    assert.notEqual(s.status, 0);
    assert.match(s.stderr, /SOCKS|unreachable|resolve/i);
    const h = spawnSync('ip', ['netns', 'exec', ns.name, 'curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', `http://${httpAt}`, 'http://nowhere.proxy.test:8000/'], { encoding: 'utf8' });
    assert.equal(h.stdout, '502');
    const again = curl(['--socks5-hostname', socksAt, `http://${NAME}:8000/blob/1000`]);
    assert.equal(again.sha, blobSha(1000));
  });
});
