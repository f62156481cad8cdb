// QUIC (RFC 9000) through `tunnelbyte serve --netstack`: a real QUIC client and server — ngtcp2's
// examples from Debian's ngtcp2-client and ngtcp2-server (gtlsclient, gtlsserver: HTTP/0.9-style
// GETs over QUIC v1 with TLS 1.3 from GnuTLS) — inside network namespaces this test makes:
//
//   nsI "internet"  203.0.113.1/24, 2001:db8:ff::1/64: gtlsserver on UDP 4433 (both families),
//                   serving files of random bytes from an htdocs directory; a DNS responder on :53
//   nsE "exit"      203.0.113.2/24, 2001:db8:ff::2/64 (default routes), 198.51.100.1/24 towards the
//                   client; `tunnelbyte serve --netstack` as uid 65534 with no capabilities, its UDP
//                   idle times shortened with the operator flags --dns-idle-timeout and
//                   --udp-idle-timeout so that the test can watch flows end
//   nsC             198.51.100.2: Debian's wireguard-go loaded with the session's config; gtlsclient
//
// Each QUIC connection is one UDP flow of the exit (src/server/netstack-exit/udp-flows.ts): the
// client's address and port and the server's, on one host socket. What is asserted: the handshake
// completes and a download of some MiB arrives byte-exact (sha256), over IPv4 and IPv6; two
// connections at once are two flows and both complete; a connection that is silent for longer than
// the DNS idle time keeps its flow (the server sees one source port before and after the pause, in a
// capture on its own link) while a DNS flow of the same moment ends; and the flows end once idle for
// the UDP idle time (tunnelbyte_netstack_relays{kind="udp"} on /metrics back to 0). The key and
// certificate are made with openssl in a temporary directory that is removed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Netns, privilegedSkipReason, veth, waitFor } from '../support/netns.js';
import { ifname, startInterface } from '../support/wg.js';
import { REPO_ROOT } from '../support/repo.js';
import { loadSessionConfig, signupAndSession } from '../support/exit-net.js';
import { startCapture } from '../support/capture.js';
import { udpDatagrams } from '../support/pcap.js';
import { dropMode, privateDir, removeDir, unprivilegedArgv } from '../support/unprivileged.js';

const skip = privilegedSkipReason(['ip', 'wg', 'wireguard-go', 'curl', 'setpriv', 'unshare', 'openssl', 'tcpdump', 'gtlsclient', 'gtlsserver']);
const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');
const FAR = join(REPO_ROOT, 'dist/test/support/proxy-peer.js');
const API = 'http://198.51.100.1:8080';
const QUIC_PORT = 4433;
const NAME = 'web.inet.test';
/** The exit's idle times in this test (s): a DNS flow's, and any other flow's (QUIC's). */
const DNS_IDLE_S = 3;
const UDP_IDLE_S = 15;
const WG = ifname('wgq');
/** The files gtlsserver serves, by name: sizes in bytes. */
const FILES: Record<string, number> = { big: 8 * 1024 * 1024 + 13, one: 3 * 1024 * 1024 + 1, two: 3 * 1024 * 1024 + 2, late: 2 * 1024 * 1024 + 3 };

describe('QUIC (ngtcp2 client and server) through serve --netstack', { skip: skip ?? false }, () => {
  let inet: Netns, exit: Netns, client: Netns;
  let dir: string;
  /** The internet's end of its link to the exit (where the capture runs). */
  let inetLink: string;
  let serverLog = '';
  let quicLog = '';
  const sums: Record<string, string> = {};
  let runs = 0;

  /** The exit's /metrics value of `name{kind="kind"}` (a gauge), read inside its namespace. */
  const metric = (name: string, kind: string): number => {
    const text = exit.run('curl', ['-sf', 'http://127.0.0.1:9090/metrics']);
    const m = new RegExp(`^${name}\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(text);
    assert.ok(m, `${name}{kind="${kind}"} on /metrics`);
    return Number(m[1]);
  };
  const flows = () => metric('tunnelbyte_netstack_relays', 'udp');
  const flowsOpened = () => metric('tunnelbyte_netstack_opened', 'udp');
  /** /metrics asks the device at most every 500 ms (exit-data-plane.ts): a read after this sees what happened before it. */
  const settle = () => new Promise((r) => setTimeout(r, 600));

  /**
   * gtlsclient in the client namespace: a QUIC connection to `host`, GET /`file`, saved in a directory
   * of its own. Resolves with whether it said "QUIC handshake has completed" (its log, without the
   * frame and body dumps: a few MB for 8 MiB, scanned as it comes and not kept) and the sha256 and
   * length of what it saved. Its exit status says nothing: it is 0 after an idle timeout too.
   */
  const quicGet = (host: string, file: string, o: { extra?: string[]; onConfirmed?: (p: ChildProcess) => void } = {}): Promise<{ handshake: boolean; bytes: number; sha: string }> => {
    const out = join(dir, `dl-${++runs}`);
    mkdirSync(out);
    const authority = host.includes(':') ? `[${host}]` : host;
    // --timeout: QUIC's own idle timeout (RFC 9000 §10.1), so a connection that stalls ends by itself.
    const args = ['--no-quic-dump', '--no-http-dump', '--timeout=20s', '--exit-on-all-streams-close', `--download=${out}`, ...(o.extra ?? []), host, String(QUIC_PORT), `https://${authority}:${QUIC_PORT}/${file}`];
    const p = client.spawn('gtlsclient', args);
    let tail = '';
    let handshake = false;
    let confirmed = false;
    // Per stream, with the end of its last chunk: the line may come split over two.
    const scanner = (): ((d: Buffer) => void) => {
      let carry = '';
      return (d) => {
        const text = carry + d.toString();
        if (text.includes('QUIC handshake has completed')) handshake = true;
        // Confirmed (RFC 9001 §4.1.2): the server has the client's Finished and sent HANDSHAKE_DONE.
        if (!confirmed && text.includes('QUIC handshake has been confirmed')) {
          confirmed = true;
          o.onConfirmed?.(p);
        }
        carry = text.slice(-64);
        tail = (tail + d.toString()).slice(-4000);
      };
    };
    p.stdout!.on('data', scanner());
    p.stderr!.on('data', scanner());
    return new Promise((resolve) => {
      p.once('exit', (code) => {
        quicLog += `--- gtlsclient ${args.join(' ')} (exit ${code}, handshake ${handshake})\n${tail.slice(-1500)}\n`;
        let body = Buffer.alloc(0);
        try {
          body = readFileSync(join(out, file));
        } catch {
          // nothing saved
        }
        resolve({ handshake, bytes: body.length, sha: createHash('sha256').update(body).digest('hex') });
      });
    });
  };

  /** A DNS query from the client to the internet's resolver through the exit (a flow to port 53). */
  const resolveName = (): string[] => {
    const script = `const { Resolver } = require('node:dns').promises; const r = new Resolver({ timeout: 3000, tries: 3 }); r.setServers(['203.0.113.1']);
      r.resolve4('${NAME}').then((a) => console.log(JSON.stringify(a)), (e) => { console.error(e.code); process.exit(1); });`;
    return JSON.parse(client.run(process.execPath, ['-e', script], { timeoutMs: 30_000 })) as string[];
  };

  before(async () => {
    const drop = dropMode();
    dir = privateDir(drop, 'tb-quic-');
    inet = Netns.create('Q');
    exit = Netns.create('E');
    client = Netns.create('C');
    inetLink = veth(inet, ['203.0.113.1/24', '2001:db8:ff::1/64'], exit, ['203.0.113.2/24', '2001:db8:ff::2/64']).aIf;
    exit.run('ip', ['route', 'add', 'default', 'via', '203.0.113.1']);
    exit.run('ip', ['-6', 'route', 'add', 'default', 'via', '2001:db8:ff::1']);
    veth(exit, ['198.51.100.1/24'], client, ['198.51.100.2/24']);

    // The server's key and self-signed certificate (the example client does not verify it) and its files.
    const tls = mkdtempSync(join(tmpdir(), 'tb-quic-tls-'));
    inet.onDestroy(() => removeDir(tls));
    const htdocs = join(tls, 'htdocs');
    mkdirSync(htdocs);
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(tls, 'key.pem'), '-out', join(tls, 'cert.pem'), '-days', '1', '-subj', `/CN=${NAME}`], { encoding: 'utf8' });
    assert.equal(made.status, 0, `openssl: ${made.stderr}`);
    chmodSync(join(tls, 'key.pem'), 0o600);
    for (const [name, size] of Object.entries(FILES)) {
      const body = randomBytes(size);
      writeFileSync(join(htdocs, name), body);
      sums[name] = createHash('sha256').update(body).digest('hex');
    }
    const server: ChildProcess = inet.spawn('gtlsserver', ['--quiet', `--htdocs=${htdocs}`, '*', String(QUIC_PORT), join(tls, 'key.pem'), join(tls, 'cert.pem')]);
    let serverOut = '';
    server.once('exit', (code, signal) => (quicLog += `--- gtlsserver exited (${code ?? signal}): ${serverOut.slice(-2000)}\n`));
    server.stdout!.on('data', (d) => (serverOut += d));
    server.stderr!.on('data', (d) => (serverOut += d));
    await waitFor(`gtlsserver on UDP ${QUIC_PORT}, both families (${serverOut})`, () => {
      const ss = inet.run('ss', ['-Huln', `sport = :${QUIC_PORT}`]);
      return ss.includes(`0.0.0.0:${QUIC_PORT}`) && ss.includes(`[::]:${QUIC_PORT}`);
    }, 20_000, 50);
    const far = inet.spawn(process.execPath, [FAR, '::', '8000', '203.0.113.1', NAME, '203.0.113.1', '2001:db8:ff::1']);
    let farOut = '';
    far.stdout!.on('data', (d: Buffer) => (farOut += d.toString()));
    await waitFor(`the internet's DNS (${farOut})`, () => farOut.includes('ready'), 20_000, 20);

    const [cmd, args] = unprivilegedArgv(drop, process.execPath, [TB, 'serve', '--netstack', '--data', join(dir, 'state'), '--endpoint', '198.51.100.1', '--sync-interval', '1', '--dns-idle-timeout', String(DNS_IDLE_S), '--udp-idle-timeout', String(UDP_IDLE_S), '--log-level', 'info']);
    const serve = exit.spawn(cmd, args, { env: { PATH: process.env.PATH, HOME: dir, XDG_CACHE_HOME: join(dir, 'cache') } });
    serve.stdout!.on('data', (d) => (serverLog += d));
    serve.stderr!.on('data', (d) => (serverLog += d));
    await waitFor('API up', () => serve.exitCode !== null || exit.try('curl', ['-sf', 'http://127.0.0.1:8080/v1/health']).status === 0, 60_000);
    if (serve.exitCode !== null) throw new Error(`serve --netstack exited ${serve.exitCode}: ${serverLog.slice(-3000)}`);

    startInterface(client, 'wireguard-go', WG);
    const { session } = signupAndSession(client, API, `fp-quic-${process.pid}`);
    loadSessionConfig(client, WG, session, { endpoint: '198.51.100.1:51820', routes: ['203.0.113.0/24', '2001:db8:ff::/64'] });
  });

  after(() => {
    for (const ns of [client, exit, inet]) ns?.destroy();
    removeDir(dir);
    if (process.exitCode) console.error(`${quicLog.slice(-4000)}\n--- serve\n${serverLog.slice(-3000)}`);
  });

  const assertDownload = (r: { handshake: boolean; bytes: number; sha: string }, file: string, what: string): void => {
    assert.ok(r.handshake, `${what}: gtlsclient says the QUIC handshake completed`);
    assert.equal(r.bytes, FILES[file], `${what}: all of /${file}`);
    assert.equal(r.sha, sums[file], `${what}: byte-exact`);
  };

  test('IPv4: the QUIC handshake completes and an 8 MiB download arrives byte-exact', async () => {
    assertDownload(await quicGet('203.0.113.1', 'big'), 'big', 'IPv4');
  });

  test('IPv6: the same over 2001:db8:ff::1', async () => {
    assertDownload(await quicGet('2001:db8:ff::1', 'big'), 'big', 'IPv6');
  });

  test('two QUIC connections at once (one IPv4, one IPv6) are two flows, and both downloads arrive byte-exact', async () => {
    await settle();
    const opened = flowsOpened();
    const [a, b] = await Promise.all([quicGet('203.0.113.1', 'one'), quicGet('2001:db8:ff::1', 'two')]);
    assertDownload(a, 'one', 'the IPv4 connection');
    assertDownload(b, 'two', 'the IPv6 connection');
    await settle();
    assert.equal(flowsOpened() - opened, 2, 'one flow per connection');
  });

  test(`a QUIC connection silent for longer than the DNS idle time (${DNS_IDLE_S} s) keeps its flow; a DNS flow of the same moment ends`, async () => {
    // The earlier connections' flows gone first, so that the flows counted below are this test's two.
    await waitFor('the earlier flows ended', () => flows() === 0, (UDP_IDLE_S + 20) * 1000, 500);
    const cap = await startCapture(inet, inetLink, join(dir, 'quic.pcap'), `udp port ${QUIC_PORT}`);
    const opened = flowsOpened();
    // The client is stopped (SIGSTOP) as soon as it reports the handshake confirmed, for DNS_IDLE_S + 6 s:
    // it sends nothing, and whatever the server still has unacknowledged (its last handshake frames, the
    // start of the response if the request went out) is retransmitted with a backoff (RFC 9002 §6.2.1:
    // the PTO doubles) — so more than DNS_IDLE_S pass with no datagram either way. A small stream window
    // (16 KiB) keeps a response from being all sent before the stop.
    let stopped: ChildProcess | null = null;
    const pending = quicGet('203.0.113.1', 'late', {
      extra: ['--max-stream-data-bidi-local=16K'],
      onConfirmed: (p) => {
        p.kill('SIGSTOP');
        stopped = p;
      },
    });
    await waitFor('the QUIC handshake confirmed', () => stopped !== null, 20_000, 20);
    const stoppedAt = Date.now();
    assert.deepEqual(resolveName(), ['203.0.113.1'], 'DNS through the exit');
    // Of the two flows (both counted as opened below) the DNS one ends; the QUIC one, as silent, stays.
    await waitFor(`the DNS flow ended after ${DNS_IDLE_S} s idle`, () => flows() === 1, (DNS_IDLE_S + 10) * 1000, 200);
    await new Promise((r) => setTimeout(r, Math.max(0, stoppedAt + (DNS_IDLE_S + 6) * 1000 - Date.now())));
    stopped!.kill('SIGCONT');
    const r = await pending;
    await cap.stop();
    assertDownload(r, 'late', 'after the pause');
    await settle();
    assert.equal(flowsOpened() - opened, 2, 'one flow for the QUIC connection, one for DNS: no second flow after the pause');
    const seen = udpDatagrams(cap.file);
    const fromExit = seen.filter((d) => d.src === '203.0.113.2' && d.dport === QUIC_PORT);
    assert.equal(new Set(fromExit.map((d) => d.sport)).size, 1, 'the server saw the connection from one exit port throughout');
    let gap = 0;
    for (let i = 1; i < seen.length; i++) gap = Math.max(gap, seen[i]!.time - seen[i - 1]!.time);
    assert.ok(gap > DNS_IDLE_S, `no datagram either way for longer than the DNS idle time (longest gap ${gap.toFixed(1)} s)`);
  });

  test(`the flows end after ${UDP_IDLE_S} s idle; a new connection then opens a new flow`, async () => {
    assert.ok(flows() > 0, "the last connection's flow is there right after it");
    await waitFor('every UDP flow ended', () => flows() === 0, (UDP_IDLE_S + 20) * 1000, 500);
    const opened = flowsOpened();
    assertDownload(await quicGet('203.0.113.1', 'one'), 'one', 'a new connection');
    await settle();
    assert.equal(flowsOpened() - opened, 1);
  });
});
