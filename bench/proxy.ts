/**
 * The rootless proxy: `tunnelbyte proxy` (as uid 65534 in a user namespace,
 * no capabilities) with its userspace tunnel to Debian's wireguard-go in a
 * network namespace, whose kernel serves N bytes over HTTP
 * (test/support/proxy-peer.ts); curl downloads through SOCKS5
 * (--socks5-hostname, the name resolved through the tunnel), the HTTP proxy
 * (absolute URI) and a CONNECT tunnel. Each run is checked for its length.
 * Needs root for the namespace only.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Netns, waitFor } from '../test/support/netns.js';
import { configure, genKeys, ifname, startInterface } from '../test/support/wg.js';
import { REPO_ROOT } from '../test/support/repo.js';
import type { Row } from './in-process.js';
import { median } from './stats.js';

export async function benchProxy(opts: { rounds: number; bytes: number }): Promise<{ rows: Row[]; samples: Record<string, number[]> }> {
  const ns = Netns.create('pxb');
  const dir = mkdtempSync(join(tmpdir(), 'tb-bench-proxy-'));
  try {
    const IF = ifname('wgX');
    const ka = genKeys();
    const kb = genKeys();
    writeFileSync(join(dir, 'peer.key'), ka.priv + '\n', { mode: 0o600 });
    startInterface(ns, 'wireguard-go', IF);
    configure(ns, IF, { privFile: join(dir, 'peer.key'), port: 51820, addrs: ['192.0.2.1/24'], mtu: 1420 });
    ns.run('wg', ['set', IF, 'peer', kb.pub, 'allowed-ips', '192.0.2.2/32']);
    const far = ns.spawn(process.execPath, [join(REPO_ROOT, 'dist/test/support/proxy-peer.js'), '::', '8000', '192.0.2.1', 'web.proxy.test', '192.0.2.1', '2001:db8:2::1']);
    let farOut = '';
    far.stdout!.on('data', (d: Buffer) => (farOut += d.toString()));
    await waitFor('proxy-peer ready', () => farOut.includes('ready'), 15_000, 20);
    writeFileSync(
      join(dir, 'tunnel.conf'),
      `[Interface]\nPrivateKey = ${kb.priv}\nAddress = 192.0.2.2/32\nDNS = 192.0.2.1\nMTU = 1420\n[Peer]\nPublicKey = ${ka.pub}\nEndpoint = 127.0.0.1:51820\nAllowedIPs = 192.0.2.0/24\n`,
      { mode: 0o600 },
    );
    const proxy = ns.spawn('unshare', ['--user', '--map-user=65534', '--map-group=65534', process.execPath, join(REPO_ROOT, 'bin/tunnelbyte.js'), 'proxy', '--config', join(dir, 'tunnel.conf'), '--socks', '127.0.0.1:1080', '--http', '127.0.0.1:3128']);
    let out = '';
    proxy.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('the proxy listens', () => out.includes('http proxy on'), 30_000, 50);
    const url = `http://web.proxy.test:8000/blob/${opts.bytes}`;
    const ways: [string, string[]][] = [
      ['SOCKS5 (curl --socks5-hostname)', ['--socks5-hostname', '127.0.0.1:1080']],
      ['HTTP proxy, absolute URI (curl -x)', ['-x', 'http://127.0.0.1:3128']],
      ['HTTP proxy, CONNECT (curl -p -x)', ['-p', '-x', 'http://127.0.0.1:3128']],
    ];
    const samples: Record<string, number[]> = {};
    for (let r = 0; r < opts.rounds; r++) {
      for (const [name, args] of ways) {
        const c = spawnSync('ip', ['netns', 'exec', ns.name, 'curl', '-sS', '--max-time', '120', '-o', '/dev/null', '-w', '%{size_download} %{speed_download}', ...args, url], { encoding: 'utf8', timeout: 150_000 });
        const [n, bytesPerSecond] = c.stdout.split(' ').map(Number);
        if (n !== opts.bytes) throw new Error(`${name}: ${n} of ${opts.bytes} bytes (${c.stderr})`);
        (samples[name] ??= []).push((bytesPerSecond! * 8) / 1e6);
      }
    }
    proxy.kill('SIGTERM');
    const rows = ways.map(([name]) => ({
      name: `download through tunnelbyte proxy, ${name}`,
      value: median(samples[name]!),
      unit: 'Mbit/s',
      note: `${(opts.bytes / 2 ** 20).toFixed(0)} MiB, ${opts.rounds} rounds, range ${Math.min(...samples[name]!).toFixed(0)}–${Math.max(...samples[name]!).toFixed(0)}`,
    }));
    return { rows, samples };
  } finally {
    ns.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
