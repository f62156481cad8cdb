// `tunnelbyte serve --netstack` end to end, inside network namespaces this test makes,
// the exit running as uid 65534 with no capabilities (test/support/unprivileged.ts):
//
//   nsI "internet"  203.0.113.1/24, 2001:db8:ff::1/64 — HTTP :8000 (/blob/N: pattern bytes), DNS :53
//                   (web.inet.test), a TCP sink :9001 for uploads; no route to the clients
//   nsE "exit"      203.0.113.2/24, 2001:db8:ff::2/64 (default route), 10.20.0.1/24 towards a LAN,
//                   198.51.100.1/24 and 198.51.101.1/24 towards clients; runs `tunnelbyte serve --netstack`:
//                   no TUN, no nft, no sysctl of its own — its only network is its UDP socket and host sockets
//   nsL "LAN"       10.20.0.2/24 — an HTTP server the exit can reach, a private address its clients must not
//   nsC, nsD        clients at 198.51.100.2 and 198.51.101.2: Debian's wireguard-go loaded with the API's config
//
// Root is needed only for the namespaces and the clients' wireguard-go. The
// exit namespace starts with net.ipv4.ping_group_range at a new namespace's
// "1 0" (no group may open a ping socket: echo is answered for the gateway
// only); the test opens it there, and only there, before the restart.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Netns, privilegedSkipReason, veth, waitFor } from '../support/netns.js';
import { ifname, ping, startInterface } from '../support/wg.js';
import { REPO_ROOT } from '../support/repo.js';
import { curlApi, fetchText, httpServerScript, loadSessionConfig, signupAndSession } from '../support/exit-net.js';
import { startKernelPeer } from '../support/kernel-peer-run.js';
import { blobSha } from '../support/proxy-peer.js';
import { dropMode, NOBODY, privateDir, processFacts, removeDir, unprivilegedArgv, type Drop } from '../support/unprivileged.js';

const skip = privilegedSkipReason(['ip', 'wg', 'wireguard-go', 'curl', 'ping', 'setpriv', 'unshare']);
const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');
const PEER = join(REPO_ROOT, 'dist/test/support/kernel-peer.js');
const FAR = join(REPO_ROOT, 'dist/test/support/proxy-peer.js');
const API = 'http://198.51.100.1:8080';
const GATEWAY = '10.64.0.1'; // the default pool's first address: the exit's own
const POOL6 = 'fd00:6464::/64';
const GATEWAY6 = 'fd00:6464::1'; // the --pool6 pool's first address: the exit's own
const NAME = 'web.inet.test';
const BLOB = 4 * 1024 * 1024 + 17;
const UPLOAD = 3 * 1024 * 1024 + 5;
const WG1 = ifname('wgn');
const WG2 = ifname('wgn');


interface Client {
  ns: Netns;
  fp: string;
  token: string;
  session: any;
  addr4: string;
}

describe('tunnelbyte serve --netstack: a stock wireguard-go client through an unprivileged exit', { skip: skip ?? false }, () => {
  let inet: Netns, exit: Netns, lan: Netns, c1: Netns, c2: Netns;
  let drop: Drop;
  let dir: string;
  let server: ChildProcess | null = null;
  let serverLog = '';
  let first: Client;
  let second: Client;

  const startServer = async () => {
    const [cmd, args] = unprivilegedArgv(drop, process.execPath, [TB, 'serve', '--netstack', '--data', join(dir, 'state'), '--endpoint', '198.51.100.1', '--sync-interval', '1', '--dns', '203.0.113.1', '--pool6', POOL6, '--log-level', 'info']);
    const env = { PATH: process.env.PATH, HOME: dir, XDG_CACHE_HOME: join(dir, 'cache') };
    const s = exit.spawn(cmd, args, { env });
    server = s;
    s.stdout!.on('data', (d) => (serverLog += d));
    s.stderr!.on('data', (d) => (serverLog += d));
    await waitFor('API up', () => s.exitCode !== null || exit.try('curl', ['-sf', 'http://127.0.0.1:8080/v1/health']).status === 0, 60_000);
    if (s.exitCode !== null) throw new Error(`serve --netstack exited ${s.exitCode}: ${serverLog.slice(-3000)}`);
  };

  /** The exit's `tunnelbyte_netstack_drops{reason}` on its /metrics (loopback of its namespace). */
  const netstackDrops = (reason: string): number => {
    const text = exit.run('curl', ['-sf', 'http://127.0.0.1:9090/metrics']);
    const m = new RegExp(`^tunnelbyte_netstack_drops\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text);
    assert.ok(m, `tunnelbyte_netstack_drops{reason="${reason}"} on /metrics`);
    return Number(m[1]);
  };
  const api = (c: Client, method: string, path: string, body?: unknown) => curlApi(c.ns, API, method, path, { token: c.token, fp: c.fp, body });
  const usage = (c: Client) => api(c, 'GET', '/v1/usage').body.bytes.total as number;

  const connect = (ns: Netns, name: string, wg: string): Client => {
    const fp = `fp-ns-${name}-${process.pid}`;
    const { token, session } = signupAndSession(ns, API, fp);
    loadSessionConfig(ns, wg, session, { endpoint: '198.51.100.1:51820', routes: ['203.0.113.0/24', '2001:db8:ff::/64', '10.20.0.0/24', `${GATEWAY}/32`, `${GATEWAY6}/128`] });
    const addr4 = (session.client.addresses as string[]).find((a) => !a.includes(':'))!.split('/')[0]!;
    return { ns, fp, token, session, addr4 };
  };

  /** GET url from `ns` into a file: curl's exit status, the body's length and sha256. */
  const download = (ns: Netns, url: string, timeoutS = 60): { status: number | null; bytes: number; sha: string } => {
    const file = join(dir, `body-${Math.random().toString(36).slice(2)}`);
    const r = ns.try('curl', ['-sS', '--max-time', String(timeoutS), '-o', file, url], { timeoutMs: (timeoutS + 10) * 1000 });
    let body = Buffer.alloc(0);
    try {
      body = readFileSync(file);
    } catch {
      // nothing arrived
    }
    rmSync(file, { force: true });
    return { status: r.status, bytes: body.length, sha: createHash('sha256').update(body).digest('hex') };
  };

  before(async () => {
    drop = dropMode();
    dir = privateDir(drop, 'tb-serve-netstack-');
    inet = Netns.create('I');
    exit = Netns.create('E');
    lan = Netns.create('L');
    c1 = Netns.create('C');
    c2 = Netns.create('D');
    veth(inet, ['203.0.113.1/24', '2001:db8:ff::1/64'], exit, ['203.0.113.2/24', '2001:db8:ff::2/64']);
    exit.run('ip', ['route', 'add', 'default', 'via', '203.0.113.1']);
    exit.run('ip', ['-6', 'route', 'add', 'default', 'via', '2001:db8:ff::1']);
    veth(exit, ['10.20.0.1/24'], lan, ['10.20.0.2/24']);
    veth(exit, ['198.51.100.1/24'], c1, ['198.51.100.2/24']);
    veth(exit, ['198.51.101.1/24'], c2, ['198.51.101.2/24']);
    c2.run('ip', ['route', 'add', '198.51.100.0/24', 'via', '198.51.101.1']);

    const far = inet.spawn(process.execPath, [FAR, '::', '8000', '203.0.113.1', NAME, '203.0.113.1', '2001:db8:ff::1']);
    let farOut = '';
    far.stdout!.on('data', (d: Buffer) => (farOut += d.toString()));
    far.stderr!.on('data', (d: Buffer) => (farOut += d.toString()));
    await waitFor(`the internet's HTTP and DNS (${farOut})`, () => farOut.includes('ready'), 20_000, 20);
    lan.spawn(process.execPath, ['-e', httpServerScript(8000, '0.0.0.0')]);
    await waitFor('the LAN service', () => lan.try('curl', ['-sf', 'http://10.20.0.2:8000/ip']).status === 0, 20_000);
    startInterface(c1, 'wireguard-go', WG1);
    startInterface(c2, 'wireguard-go', WG2);
    assert.equal(exit.run('sysctl', ['-n', 'net.ipv4.ping_group_range']).trim().split(/\s+/).join(' '), '1 0', 'a new namespace allows no group a ping socket');
    await startServer();
  });

  after(() => {
    server?.kill('SIGKILL');
    for (const ns of [c1, c2, lan, exit, inet]) ns?.destroy();
    removeDir(dir);
    if (process.exitCode) console.error(serverLog.slice(-4000));
  });

  test(`the exit runs as uid ${NOBODY} with no capabilities, and makes no interface or firewall table`, () => {
    const f = processFacts(server!.pid!);
    assert.match(f.capEff, /^0+$/, 'no effective capabilities');
    assert.equal(f.uid, NOBODY);
    assert.deepEqual(exit.links().filter((l) => !l.startsWith('va') && !l.startsWith('vb')), ['lo'], 'no TUN or other interface');
    const nft = exit.try('nft', ['list', 'tables']);
    if (nft.status === 0) assert.equal(nft.stdout.trim(), '', 'no nftables table');
  });

  test('TCP both ways through the exit, byte-exact (sha256), seen from the exit\'s address; IPv6 too', async () => {
    first = connect(c1, 'one', WG1);
    const down = download(c1, `http://203.0.113.1:8000/blob/${BLOB}`);
    assert.equal(down.status, 0, serverLog.slice(-2000));
    assert.equal(down.bytes, BLOB);
    assert.equal(down.sha, blobSha(BLOB));

    const sink = await startKernelPeer(inet, 'sink', '203.0.113.1', 9001);
    const up = c1.run(process.execPath, [PEER, 'upload', '203.0.113.1', '9001', String(UPLOAD), '7'], { timeoutMs: 120_000 });
    const lines = up.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, string>);
    const sent = lines.find((l) => l.sent)!.sent;
    const received = await sink.result();
    assert.equal(received.bytes, UPLOAD);
    assert.equal(received.sha, sent, 'the internet received the bytes sent');
    assert.equal(lines.find((l) => l.reply !== undefined)?.reply, sent, 'and its answer came back after the half-close');

    const from = JSON.parse(fetchText(c1, 'http://203.0.113.1:8000/echo')!).from as string;
    assert.equal(from.replace(/^::ffff:/, ''), '203.0.113.2', 'the internet sees the exit');
    const v6 = download(c1, 'http://[2001:db8:ff::1]:8000/blob/100000');
    assert.equal(v6.sha, blobSha(100_000), 'IPv6 byte-exact');
    assert.equal(JSON.parse(fetchText(c1, 'http://[2001:db8:ff::1]:8000/echo')!).from, '2001:db8:ff::2');
  });

  test("a closed port's refusal comes back to the client as a RST (ECONNREFUSED), at once", () => {
    // node's connect error code in the client namespace says what the client's kernel got.
    const t0 = Date.now();
    const code = c1.run(process.execPath, ['-e', `require('node:net').connect(9, '203.0.113.1').on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => console.log(e.code)).setTimeout(40000, () => { console.log('timeout'); process.exit(0); })`], { timeoutMs: 60_000 }).trim();
    assert.equal(code, 'ECONNREFUSED', "nothing listens on the internet host's port 9");
    assert.ok(Date.now() - t0 < 30_000, 'not a timeout');
  });

  test('connects to unreachable on-link addresses all fail with EHOSTUNREACH (ICMP host unreachable from the exit), none hangs; IPv6 too', (t) => {
    // 203.0.113.100.. and 2001:db8:ff::100..: on the exit's internet link, nobody answers ARP or neighbour
    // solicitation. The exit's own connect gets EHOSTUNREACH after the neighbour's probes (~3 s); the held
    // SYN is answered with ICMP host unreachable (ICMPv6 address unreachable), which aborts the client's
    // connect. All at once from one client, so that SYN retransmissions and other clients' SYNs arrive while
    // connects are pending. A connect still pending after 40 s (its client retransmitting into silence) fails.
    const hosts = [...Array.from({ length: 12 }, (_, i) => `203.0.113.${100 + i}`), ...Array.from({ length: 4 }, (_, i) => `2001:db8:ff::${100 + i}`)];
    const n = hosts.length;
    const unreachableBefore = netstackDrops('tcp-connect-unreachable');
    const script = `const net = require('node:net'); const t0 = Date.now(); const out = [];
      for (const host of ${JSON.stringify(hosts)}) {
        let done = false;
        const end = (code) => { if (done) return; done = true; s.destroy(); out.push({ host, code, ms: Date.now() - t0 }); if (out.length === ${n}) { console.log(JSON.stringify(out)); process.exit(0); } };
        const s = net.connect(80, host).on('connect', () => end('connected')).on('error', (e) => end(e.code));
        s.setTimeout(40000, () => end('timeout'));
      }`;
    const results = JSON.parse(c1.run(process.execPath, ['-e', script], { timeoutMs: 60_000 })) as { host: string; code: string; ms: number }[];
    const wrong = results.filter((r) => r.code !== 'EHOSTUNREACH');
    assert.deepEqual(wrong, [], `${wrong.length} of ${n} connects did not get EHOSTUNREACH: ${JSON.stringify(results)}`);
    // One host connect per client SYN: its retransmissions 1 s and 2 s later (tcp_syn_linear_timeouts), well
    // within the ~3 s of neighbour probes, find the held SYN. The one 3 s later races the refusal: arriving
    // after it, it is a new SYN that gets a host connect (and an ICMP) of its own, hence up to 2n. A
    // retransmission that does not find its held SYN makes it 3n or more.
    const connects = netstackDrops('tcp-connect-unreachable') - unreachableBefore;
    t.diagnostic(`${n} connects: EHOSTUNREACH after ${Math.min(...results.map((r) => r.ms))}..${Math.max(...results.map((r) => r.ms))} ms; ${connects} host connects`);
    assert.ok(connects >= n && connects <= 2 * n, `${connects} host connects failed unreachable for ${n} client connects`);
  });

  test('UDP: a DNS query through the exit to the internet\'s resolver', () => {
    const script = `const { Resolver } = require('node:dns').promises; const r = new Resolver({ timeout: 3000, tries: 3 }); r.setServers(['203.0.113.1']);
      Promise.all([r.resolve4('${NAME}'), r.resolve6('${NAME}')]).then(([a, b]) => console.log(JSON.stringify([a, b])), (e) => { console.error(e.code); process.exit(1); });`;
    const [a, aaaa] = JSON.parse(c1.run(process.execPath, ['-e', script], { timeoutMs: 30_000 })) as [string[], string[]];
    assert.deepEqual(a, ['203.0.113.1']);
    assert.deepEqual(aaaa, ['2001:db8:ff::1']);
  });

  test('ping without a ping socket (ping_group_range "1 0" in the exit\'s namespace): the gateways answer, the internet does not; IPv6 too', () => {
    assert.match(serverLog, /"echo":"gateway-only"/, 'serve says so at start');
    assert.ok(ping(c1, GATEWAY, { count: 2, timeoutS: 3 }), `the exit's gateway ${GATEWAY} answers echo itself`);
    assert.equal(ping(c1, '203.0.113.1', { count: 2, timeoutS: 2 }), false, 'no echo through the exit without a ping socket');
    assert.ok(ping(inet, '203.0.113.1', { count: 1 }), 'the internet itself answers echo (the namespace is sound)');
    assert.ok(ping(c1, GATEWAY6, { count: 2, timeoutS: 3 }), `the exit's IPv6 gateway ${GATEWAY6} answers echo itself`);
    assert.equal(ping(c1, '2001:db8:ff::1', { count: 2, timeoutS: 2 }), false, 'no ICMPv6 echo through the exit without a ping socket');
    assert.ok(ping(inet, '2001:db8:ff::1', { count: 1 }), 'the internet itself answers ICMPv6 echo');
  });

  test('private destinations and the exit\'s own addresses are refused; the exit itself reaches them', () => {
    assert.equal(exit.try('curl', ['-sf', '--max-time', '5', 'http://10.20.0.2:8000/ip']).status, 0, 'the LAN service is there, seen from the exit');
    assert.equal(fetchText(c1, 'http://10.20.0.2:8000/ip', 4), null, 'a client cannot reach the LAN behind the exit');
    assert.equal(fetchText(c1, 'http://203.0.113.2:8080/v1/health', 4), null, "nor the exit's API on its own address");
    assert.equal(fetchText(c1, `http://${GATEWAY}:8080/v1/health`, 4), null, 'nor on its gateway address');
    assert.ok(fetchText(c1, 'http://203.0.113.1:8000/echo'), 'the internet still is');
  });

  test('two clients cannot reach each other through the exit', async () => {
    second = connect(c2, 'two', WG2);
    assert.ok(fetchText(c2, 'http://203.0.113.1:8000/echo'), 'the second client reaches the internet');
    c1.spawn(process.execPath, ['-e', httpServerScript(8000, first.addr4)]);
    c2.spawn(process.execPath, ['-e', httpServerScript(8000, second.addr4)]);
    await waitFor('the clients\' own servers', () => c1.try('curl', ['-sf', `http://${first.addr4}:8000/ip`]).status === 0 && c2.try('curl', ['-sf', `http://${second.addr4}:8000/ip`]).status === 0);
    c2.run('ip', ['route', 'replace', `${first.addr4}/32`, 'dev', WG2]);
    c1.run('ip', ['route', 'replace', `${second.addr4}/32`, 'dev', WG1]);
    assert.equal(fetchText(c2, `http://${first.addr4}:8000/ip`, 4), null, 'TCP from the second to the first');
    assert.equal(fetchText(c1, `http://${second.addr4}:8000/ip`, 4), null, 'TCP from the first to the second');
    assert.equal(ping(c2, first.addr4, { count: 2, timeoutS: 1 }), false);
    assert.ok(fetchText(c1, 'http://203.0.113.1:8000/echo'), 'both still reach the internet');
  });

  test('kill -9 during a transfer; a restart (now with ping_group_range open in the exit\'s namespace) brings the clients back with their old configs, counters consistent, echo relayed to the internet', async () => {
    const before = await waitFor('the first download counted', () => {
      const u = usage(first);
      return u >= BLOB + UPLOAD ? u : 0;
    }, 15_000, 250);
    const transfer = c1.spawn('curl', ['-s', '-o', '/dev/null', '--limit-rate', '2M', '--max-time', '30', `http://203.0.113.1:8000/blob/${64 * 1024 * 1024}`]);
    await new Promise((r) => setTimeout(r, 1500));
    const killed = server!;
    killed.kill('SIGKILL');
    await new Promise((r) => killed.once('exit', r));
    transfer.kill();
    // Inside the exit's namespace only: every group may open a ping socket (read by serve at start).
    exit.run('sysctl', ['-w', 'net.ipv4.ping_group_range=0 2147483647']);
    const mark = serverLog.length;
    await startServer();
    assert.match(serverLog.slice(mark), /"echo":"ping-socket"/, 'serve says it relays echo through the ping socket');
    await waitFor('the old config works again', () => download(c1, 'http://203.0.113.1:8000/blob/1000000', 5).bytes === 1_000_000, 60_000, 500);
    const restarted = usage(first);
    assert.ok(restarted >= before, `usage before the kill (${before}) is kept (${restarted})`);
    const again = download(c1, `http://203.0.113.1:8000/blob/${BLOB}`);
    assert.equal(again.sha, blobSha(BLOB));
    await waitFor(`the new download counted on top (${restarted} + ${BLOB})`, () => usage(first) >= restarted + BLOB, 15_000, 250);
    assert.ok(fetchText(c2, 'http://203.0.113.1:8000/echo', 10), 'the second client is back too');

    assert.ok(ping(c1, '203.0.113.1', { count: 3, timeoutS: 3 }), 'echo to the internet through the ping socket');
    assert.ok(ping(c1, GATEWAY, { count: 1, timeoutS: 3 }), 'and the gateway still answers');
    assert.ok(ping(c1, '2001:db8:ff::1', { count: 3, timeoutS: 3 }), 'ICMPv6 echo to the internet through the IPv6 ping socket');
    assert.ok(ping(c1, GATEWAY6, { count: 1, timeoutS: 3 }), 'and the IPv6 gateway still answers');
    assert.equal(ping(c1, '10.20.0.2', { count: 2, timeoutS: 1 }), false, 'echo to the LAN is refused all the same');
  });

  test('SIGTERM: counters flushed, exit 0; a restart shows the last bytes', async () => {
    const before = usage(second);
    assert.equal(download(c2, `http://203.0.113.1:8000/blob/${BLOB}`).bytes, BLOB);
    const s = server!;
    s.kill('SIGTERM');
    const code = await new Promise((r) => s.once('exit', (c) => r(c)));
    assert.equal(code, 0, serverLog.slice(-2000));
    server = null;
    await startServer();
    assert.ok(usage(second) >= before + BLOB, 'the bytes of the download right before SIGTERM are recorded');
  });
});
