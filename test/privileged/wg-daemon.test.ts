// The wireguard-go command-line contract of tunnelbyte-wg (docs/contract.md §3): readiness,
// exit on interface deletion / socket removal / SIGTERM, moving the interface
// to another namespace, UAPI through wg(8) with a very large config, and
// wg-quick with tunnelbyte-wg as its userspace implementation.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Netns, privilegedSkipReason, veth, waitFor } from '../support/netns.js';
import { configure, genKeys, ifname, keyDir, ping, startInterface, TB_WG, waitPing, wgShow } from '../support/wg.js';

const skip = privilegedSkipReason(['ip', 'wg', 'wg-quick', 'wireguard-go', 'ping']);
const sock = (name: string) => `/var/run/wireguard/${name}.sock`;
const linkExists = (ns: Netns, name: string) => ns.try('ip', ['link', 'show', name]).status === 0;
/** Interface names unique to this run (UAPI sockets are host-wide). */
const N = Object.fromEntries(["tbdup0", "tbstale0", "tbdel0", "tbsock0", "tbmove0", "tbbig0", "tbbig1", "tbbad0", "wgmA", "wgqP", "tbq0"].map((n) => [n, ifname(n.slice(0, 5))])) as Record<string, string>;

async function withNs(tags: string[], fn: (...ns: Netns[]) => Promise<void>): Promise<void> {
  const list = tags.map((t) => Netns.create(t));
  try {
    await fn(...list);
  } finally {
    for (const n of list) n.destroy();
  }
}

describe('tunnelbyte-wg daemon', { skip: skip ?? false }, () => {
  test('--version and usage', () => {
    const v = spawnSync(TB_WG, ['--version'], { encoding: 'utf8' });
    assert.equal(v.status, 0);
    assert.match(v.stdout, /^tunnelbyte-wg v\d+\.\d+\.\d+/);
    assert.notEqual(spawnSync(TB_WG, [], { encoding: 'utf8' }).status, 0);
    assert.notEqual(spawnSync(TB_WG, ['a', 'b'], { encoding: 'utf8' }).status, 0);
  });

  test('the launcher returns only when the interface exists and the UAPI socket answers', () =>
    withNs(['D'], async (ns) => {
      for (let i = 0; i < 3; i++) {
        const name = ifname(`tbr${i}`);
        startInterface(ns, 'tunnelbyte-wg', name);
        // no sleep: the very next command must work
        assert.ok(linkExists(ns, name));
        assert.equal(ns.run('wg', ['show', name, 'listen-port']).trim().length > 0, true);
      }
    }));

  test('a second instance for the same interface fails', () =>
    withNs(['D'], async (ns) => {
      startInterface(ns, 'tunnelbyte-wg', N.tbdup0);
      assert.notEqual(ns.try(TB_WG, [N.tbdup0]).status, 0);
      assert.ok(existsSync(sock(N.tbdup0)), 'the first instance keeps its socket');
    }));

  test('a stale socket file is replaced', () =>
    withNs(['D'], async (ns) => {
      writeFileSync(sock(N.tbstale0), '');
      startInterface(ns, 'tunnelbyte-wg', N.tbstale0);
      assert.ok(ns.run('wg', ['show', N.tbstale0]).includes(`interface: ${N.tbstale0}`));
    }));

  test('exits when the interface is deleted', () =>
    withNs(['D'], async (ns) => {
      startInterface(ns, 'tunnelbyte-wg', N.tbdel0);
      assert.equal(ns.pids().length, 1);
      ns.run('ip', ['link', 'del', N.tbdel0]);
      await waitFor('daemon exit', () => ns.pids().length === 0, 5000);
      assert.ok(!existsSync(sock(N.tbdel0)), 'socket removed');
    }));

  test('exits when its UAPI socket is removed, taking the interface with it', () =>
    withNs(['D'], async (ns) => {
      startInterface(ns, 'tunnelbyte-wg', N.tbsock0);
      rmSync(sock(N.tbsock0));
      await waitFor('daemon exit', () => ns.pids().length === 0, 5000);
      assert.ok(!linkExists(ns, N.tbsock0));
    }));

  test('exits cleanly on SIGTERM and SIGINT', () =>
    withNs(['D'], async (ns) => {
      for (const sig of ['SIGTERM', 'SIGINT'] as const) {
        const name = ifname(`tbsig${sig === 'SIGTERM' ? 't' : 'i'}`);
        startInterface(ns, 'tunnelbyte-wg', name);
        const [pid] = ns.pids();
        process.kill(pid!, sig);
        await waitFor('daemon exit', () => ns.pids().length === 0, 5000);
        assert.ok(!linkExists(ns, name));
        assert.ok(!existsSync(sock(name)));
      }
    }));

  test('the interface moved to another namespace keeps working; UDP stays where the daemon started', () =>
    withNs(['A', 'B', 'C'], async (a, b, c) => {
      const keys = keyDir();
      try {
        veth(a, ['198.51.100.1/24'], b, ['198.51.100.2/24']);
        const ka = genKeys();
        const kb = genKeys();
        startInterface(a, 'wireguard-go', N.wgmA);
        startInterface(b, 'tunnelbyte-wg', N.tbmove0);
        b.run('ip', ['link', 'set', N.tbmove0, 'netns', c.name]);
        assert.ok(!linkExists(b, N.tbmove0) && linkExists(c, N.tbmove0));
        // The UAPI socket is a file, so wg in namespace C configures it just the same.
        configure(c, N.tbmove0, { privFile: keys.write('b', kb.priv), port: 51821, addrs: ['192.0.2.2/24'] });
        configure(a, N.wgmA, { privFile: keys.write('a', ka.priv), port: 51820, addrs: ['192.0.2.1/24'] });
        a.run('wg', ['set', N.wgmA, 'peer', kb.pub, 'allowed-ips', '192.0.2.2/32', 'endpoint', '198.51.100.2:51821']);
        c.run('wg', ['set', N.tbmove0, 'peer', ka.pub, 'allowed-ips', '192.0.2.1/32', 'endpoint', '198.51.100.1:51820']);
        assert.ok(await waitPing(c, '192.0.2.1'), 'C → A through the moved interface, UDP from B');
        assert.ok(ping(a, '192.0.2.2'));
        assert.equal(wgShow(a, N.wgmA, 'endpoints').get(kb.pub), '198.51.100.2:51821');
      } finally {
        keys.cleanup();
      }
    }));

  test('wg setconf with 130,560 allowed IPs, then wg show lists them all', () =>
    withNs(['D'], async (ns) => {
      startInterface(ns, 'tunnelbyte-wg', N.tbbig0);
      const k = genKeys();
      const peer = genKeys();
      const ips: string[] = [];
      for (let i = 0; i < 130_560; i++) ips.push(`10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}/32`);
      const dir = mkdtempSync(join(tmpdir(), 'tb-conf-'));
      try {
        const conf = join(dir, 'big.conf');
        writeFileSync(conf, `[Interface]\nPrivateKey = ${k.priv}\nListenPort = 51999\n\n[Peer]\nPublicKey = ${peer.pub}\nAllowedIPs = ${ips.join(', ')}\n`, { mode: 0o600 });
        ns.run('wg', ['setconf', N.tbbig0, conf], { timeoutMs: 120_000 });
        const listed = ns.run('wg', ['show', N.tbbig0, 'allowed-ips'], { timeoutMs: 120_000 });
        const got = listed.trim().split('\t')[1]!.split(' ');
        assert.equal(got.length, 130_560);
        assert.equal(new Set(got).size, 130_560);
        const dumped = ns.run('wg', ['showconf', N.tbbig0]);
        assert.ok(dumped.includes(`PublicKey = ${peer.pub}`) && dumped.includes('ListenPort = 51999'));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }));

  test('malformed UAPI requests get errno replies and the daemon lives on', () =>
    withNs(['D'], async (ns) => {
      startInterface(ns, 'tunnelbyte-wg', N.tbbad0);
      const ask = (req: string) =>
        new Promise<string>((resolve, reject) => {
          const c = createConnection(sock(N.tbbad0));
          let out = '';
          c.setEncoding('utf8');
          c.on('data', (d: string) => {
            out += d;
            if (out.endsWith('\n\n')) c.end();
          });
          c.on('close', () => resolve(out));
          c.on('error', reject);
          c.write(req);
          setTimeout(() => c.end(), 2000);
        });
      assert.equal(await ask('set=1\nbogus=1\n\n'), 'errno=-22\n\n');
      assert.equal(await ask('set=1\nno equals sign\n\n'), 'errno=-71\n\n');
      assert.equal(await ask(`set=1\nprivate_key=${'g'.repeat(64)}\n\n`), 'errno=-22\n\n');
      assert.equal(await ask('\x00\x01\x02garbage\n\n'), '');
      assert.equal(await ask('set=1\n' + 'x'.repeat(10_000)), 'errno=-71\n\n');
      assert.match(await ask('get=1\n\n'), /listen_port=\d+\nerrno=0\n\n$/);
      assert.equal(ns.pids().length, 1);
      // the socket is srwx------ (umask 077, as wireguard-go): only its owner (root) may configure the device
      assert.equal(statSync(sock(N.tbbad0)).mode & 0o777, 0o700);
    }));

  test('an unterminated set=1 is capped: errno reply and close, memory bounded, the daemon lives on', () =>
    withNs(['D'], async (ns) => {
      startInterface(ns, 'tunnelbyte-wg', N.tbbig1);
      const [pid] = ns.pids();
      const rssKb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
      const before = rssKb();
      const chunk = Buffer.from('allowed_ip=10.0.0.1/32\n'.repeat(4096));
      // Up to 64 MiB (bounded), never the empty line; stop writing as soon as the daemon answers or closes.
      const r = await new Promise<{ reply: string; sent: number }>((resolve, reject) => {
        const c = createConnection(sock(N.tbbig1));
        let reply = '';
        let sent = 0;
        let done = false;
        c.setEncoding('utf8');
        c.on('data', (d: string) => void (reply += d));
        c.on('close', () => {
          done = true;
          resolve({ reply, sent });
        });
        c.on('error', (e: NodeJS.ErrnoException) => (e.code === 'EPIPE' || e.code === 'ECONNRESET' ? undefined : reject(e)));
        const pump = () => {
          while (!done && sent < 64 << 20) {
            sent += chunk.length;
            if (!c.write(sent === chunk.length ? Buffer.concat([Buffer.from(`set=1\npublic_key=${'ab'.repeat(32)}\n`), chunk]) : chunk)) return void c.once('drain', pump);
          }
          if (!done) c.end();
        };
        pump();
      });
      assert.equal(r.reply, 'errno=-71\n\n', `after ${r.sent} bytes`);
      assert.ok(r.sent < 64 << 20, `closed before the client was done (${r.sent} bytes sent)`);
      const grewMb = (rssKb() - before) / 1024;
      assert.ok(grewMb < 200, `RSS grew ${grewMb.toFixed(0)} MB`);
      assert.match(ns.run('wg', ['show', N.tbbig1, 'listen-port']), /^\d+/);
      assert.equal(ns.run('wg', ['show', N.tbbig1, 'peers']).trim(), '', 'nothing of it was applied');
    }));

  test('wg-quick up and down with WG_QUICK_USERSPACE_IMPLEMENTATION=tunnelbyte-wg', () =>
    withNs(['Q', 'P'], async (q, p) => {
      const dir = mkdtempSync(join(tmpdir(), 'tb-wgq-'));
      const keys = keyDir();
      try {
        veth(q, ['198.51.100.2/24'], p, ['198.51.100.1/24']);
        const kq = genKeys();
        const kp = genKeys();
        startInterface(p, 'wireguard-go', N.wgqP);
        configure(p, N.wgqP, { privFile: keys.write('p', kp.priv), port: 51820, addrs: ['192.0.2.1/24'] });
        p.run('wg', ['set', N.wgqP, 'peer', kq.pub, 'allowed-ips', '192.0.2.2/32']);
        const conf = join(dir, `${N.tbq0}.conf`);
        writeFileSync(
          conf,
          `[Interface]\nPrivateKey = ${kq.priv}\nAddress = 192.0.2.2/24\nMTU = 1380\n\n[Peer]\nPublicKey = ${kp.pub}\nEndpoint = 198.51.100.1:51820\nAllowedIPs = 192.0.2.0/24\nPersistentKeepalive = 25\n`,
          { mode: 0o600 },
        );
        const env = { ...process.env, WG_QUICK_USERSPACE_IMPLEMENTATION: TB_WG, WG_ENDPOINT_RESOLUTION_RETRIES: '1' };
        q.onDestroy(() => rmSync(sock(N.tbq0), { force: true }));
        q.run('wg-quick', ['up', conf], { env });
        assert.ok(await waitPing(q, '192.0.2.1'));
        assert.match(q.run('ip', ['link', 'show', N.tbq0]), /mtu 1380/);
        assert.equal(wgShow(q, N.tbq0, 'persistent-keepalive').get(kp.pub), '25');
        q.run('wg-quick', ['down', conf], { env });
        await waitFor('daemon exit', () => q.pids().length === 0, 5000);
        assert.ok(!linkExists(q, N.tbq0));
      } finally {
        keys.cleanup();
        rmSync(dir, { recursive: true, force: true });
      }
    }));
});
