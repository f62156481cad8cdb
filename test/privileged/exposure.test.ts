// What a client of `tunnelbyte serve` can reach through the tunnel, inside
// network namespaces this test makes:
//
//   nsI "internet"  203.0.113.1/24, 2001:db8:ff::1/64 — HTTP on :8000
//   nsE "exit"      203.0.113.2/24, 2001:db8:ff::2/64 (default route); 198.51.100.1/24 towards the client;
//                   192.168.77.1/24, fd77::1/64 to the LAN; 169.254.169.1/16, fd00:ec2::1/64 to the
//                   metadata service; runs `tunnelbyte serve` (API on 0.0.0.0:8080) and services
//                   bound to 0.0.0.0:9000 and [::]:9001
//   nsL "LAN"       192.168.77.2/24, fd77::2/64 — HTTP on :8000, no route to the client pools
//   nsM "metadata"  169.254.169.254/16, fd00:ec2::254/64 — HTTP on :8000
//   nsC "client"    198.51.100.2: Debian's wireguard-go with the API's config, every range above routed into it
//
// The same client config goes through four exits in turn: the default (nft), --allow-private for the LAN
// (TB_ALLOW_PRIVATE), the default with only iptables on the PATH, and --no-nat with forwarding and NAT
// the test sets up itself (so only the device's own policy stands between the client and the ranges).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Netns, privilegedSkipReason, veth, waitFor } from '../support/netns.js';
import { ifname, startInterface } from '../support/wg.js';
import { REPO_ROOT } from '../support/repo.js';
import { fetchAll, fetchText, httpServerScript, loadSessionConfig, signupAndSession, startInternet } from '../support/exit-net.js';

const skip = privilegedSkipReason(['ip', 'wg', 'wireguard-go', 'curl', 'nft', 'iptables', 'ip6tables']);
const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');
const API = 'http://198.51.100.1:8080';
const TUN = ifname('tbz');
const WG = ifname('wgz');
const ROUTES = ['203.0.113.0/24', '2001:db8:ff::/64', '192.168.77.0/24', 'fd77::/64', '169.254.0.0/16', 'fd00:ec2::/64', '10.64.0.1/32'];

const INTERNET = ['http://203.0.113.1:8000/ip', 'http://[2001:db8:ff::1]:8000/ip'];
const LAN = ['http://192.168.77.2:8000/ip', 'http://[fd77::2]:8000/ip'];
const METADATA = ['http://169.254.169.254:8000/ip', 'http://[fd00:ec2::254]:8000/ip'];
/** The exit itself: its API on the pool gateway, and a service bound to 0.0.0.0 (and one to [::]) on each of its addresses. */
const EXIT_ITSELF = ['http://10.64.0.1:8080/v1/health', 'http://10.64.0.1:9000/ip', 'http://203.0.113.2:9000/ip', 'http://[2001:db8:ff::2]:9001/ip', 'http://192.168.77.1:9000/ip', 'http://169.254.169.1:9000/ip'];

describe('exposure: what a client reaches through the exit', { skip: skip ?? false }, () => {
  let inet: Netns, exit: Netns, lan: Netns, meta: Netns, client: Netns;
  let dataDir: string;
  let binDir: string;
  let server: ChildProcess | null = null;
  let serverLog = '';

  const startServer = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
    if (server) await stopServer();
    serverLog += `\n--- serve ${args.join(' ')} ${JSON.stringify(env)}\n`;
    server = exit.spawn('node', [TB, 'serve', '--data', dataDir, '--endpoint', '198.51.100.1', '--tun', TUN, '--sync-interval', '1', '--dns', '203.0.113.53', ...args], { env: { ...process.env, ...env } });
    server.stdout!.on('data', (d) => (serverLog += d));
    server.stderr!.on('data', (d) => (serverLog += d));
    await waitFor('API up', () => exit.try('curl', ['-sf', 'http://127.0.0.1:8080/v1/health']).status === 0, 20_000);
  };

  /** SIGTERM, and wait: the exit removes its table and interface before it exits. */
  const stopServer = async () => {
    const s = server;
    server = null;
    if (s && s.exitCode === null) {
      s.kill('SIGTERM');
      await new Promise((r) => s.once('exit', r));
    }
  };

  /** The internet through the tunnel (the first fetch may wait for a handshake), seen from the exit's address. */
  const internetWorks = async () => {
    await waitFor('the internet through the tunnel', () => fetchText(client, INTERNET[0]!, 3) === '203.0.113.2', 20_000, 250);
    assert.equal(fetchText(client, INTERNET[1]!), '2001:db8:ff::2', 'IPv6 internet, NATed');
  };

  const unreachable = async (urls: string[]) => {
    const got = await fetchAll(client, urls, 3);
    assert.deepEqual(
      urls.filter((_, i) => got[i] !== null),
      [],
      'reached through the tunnel although refused',
    );
  };

  before(async () => {
    inet = Netns.create('I');
    exit = Netns.create('E');
    lan = Netns.create('L');
    meta = Netns.create('M');
    client = Netns.create('C');
    dataDir = mkdtempSync(join(tmpdir(), 'tb-exposure-'));
    veth(inet, ['203.0.113.1/24', '2001:db8:ff::1/64'], exit, ['203.0.113.2/24', '2001:db8:ff::2/64']);
    exit.run('ip', ['route', 'add', 'default', 'via', '203.0.113.1']);
    exit.run('ip', ['-6', 'route', 'add', 'default', 'via', '2001:db8:ff::1']);
    veth(exit, ['198.51.100.1/24'], client, ['198.51.100.2/24']);
    veth(exit, ['192.168.77.1/24', 'fd77::1/64'], lan, ['192.168.77.2/24', 'fd77::2/64']);
    veth(exit, ['169.254.169.1/16', 'fd00:ec2::1/64'], meta, ['169.254.169.254/16', 'fd00:ec2::254/64']);
    await startInternet(inet);
    for (const ns of [lan, meta]) ns.spawn('node', ['-e', httpServerScript(8000, '::')]);
    exit.spawn('node', ['-e', httpServerScript(9000, '0.0.0.0')]);
    exit.spawn('node', ['-e', httpServerScript(9001, '::')]);
    // Each of them answers the exit itself: a refusal below is the exit's doing, not a broken setup.
    await waitFor('every server up', () => [...INTERNET, ...LAN, ...METADATA, 'http://127.0.0.1:9000/ip', 'http://[::1]:9001/ip'].every((u) => fetchText(exit, u, 2) !== null), 15_000, 200);
    // An iptables-only PATH: the tools the exit uses, without nft.
    binDir = mkdtempSync(join(tmpdir(), 'tb-nonft-'));
    for (const tool of ['ip', 'iptables', 'ip6tables', 'node', 'sh']) {
      const found = exit.run('sh', ['-c', `command -v ${tool}`]).trim();
      symlinkSync(found, join(binDir, tool));
    }
    startInterface(client, 'wireguard-go', WG);
    await startServer([]);
    const { session } = signupAndSession(client, API, `fp-exposure-${process.pid}`);
    loadSessionConfig(client, WG, session, { endpoint: '198.51.100.1:51820', routes: ROUTES });
  });

  after(async () => {
    server?.kill('SIGKILL');
    for (const ns of [client, meta, lan, exit, inet]) ns?.destroy();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    if (binDir) rmSync(binDir, { recursive: true, force: true });
    if (process.exitCode) console.error(serverLog.slice(-6000));
  });

  test('by default: the internet, NATed; not the exit itself, a LAN, the metadata service', async () => {
    await internetWorks();
    await unreachable([...EXIT_ITSELF, ...LAN, ...METADATA]);
    assert.equal(fetchText(client, INTERNET[0]!), '203.0.113.2', 'the internet still works after the refusals');
  });

  test('--allow-private (TB_ALLOW_PRIVATE) opens the LAN, which sees the exit\'s address; the rest stays refused', async () => {
    await startServer([], { TB_ALLOW_PRIVATE: '192.168.77.0/24, fd77::/64' });
    await internetWorks();
    assert.equal(fetchText(client, LAN[0]!), '192.168.77.1', 'the LAN sees the NATed source');
    assert.equal(fetchText(client, LAN[1]!), 'fd77::1', 'IPv6 too');
    await unreachable([...EXIT_ITSELF, ...METADATA]);
  });

  test('the iptables fallback (no nft on the PATH) refuses the same', async () => {
    await startServer(['--allow-private', '192.168.77.0/24'], { PATH: binDir });
    assert.ok(!exit.run('nft', ['list', 'tables']).includes('tunnelbyte'), 'no nft table: iptables rules instead');
    assert.match(exit.run('iptables-save', []), new RegExp(`tunnelbyte_${TUN}`));
    await internetWorks();
    assert.equal(fetchText(client, LAN[0]!), '192.168.77.1', 'the allowed LAN, NATed');
    await unreachable([...EXIT_ITSELF, LAN[1]!, ...METADATA]);
    await stopServer();
    assert.doesNotMatch(exit.run('iptables-save', []), new RegExp(`tunnelbyte_${TUN}`), 'iptables rules removed');
    assert.doesNotMatch(exit.run('ip6tables-save', []), new RegExp(`tunnelbyte_${TUN}`), 'ip6tables rules removed');
  });

  test('--no-nat: with forwarding and NAT made by someone else, the device itself still refuses', async () => {
    await stopServer(); // the previous exit restores the forwarding sysctls it found when it stops
    // What an operator running without our table might have: forwarding on and a masquerade of everything.
    exit.run('sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    exit.run('nft', ['-f', '-'], { input: 'table inet operator {\n chain post {\n  type nat hook postrouting priority srcnat; policy accept;\n  oifname != "lo" masquerade\n }\n}\n' });
    try {
      await startServer(['--no-nat']);
      assert.ok(!exit.run('nft', ['list', 'tables']).includes('tunnelbyte'), 'no table of ours');
      await internetWorks();
      await unreachable([...EXIT_ITSELF, ...LAN, ...METADATA]);
      await stopServer();
    } finally {
      exit.try('nft', ['delete', 'table', 'inet', 'operator']);
    }
  });
});
