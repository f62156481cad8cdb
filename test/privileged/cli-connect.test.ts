// `tunnelbyte connect` / `status` / `disconnect` end to end, in namespaces this test makes:
//
//   nsI "internet"  203.0.113.1/24, 2001:db8:ff::1/64 — an HTTP server; no route to the client
//   nsE "exit"      203.0.113.2/24, 2001:db8:ff::2/64 (default route), 198.51.101.1/24 and 2001:db8:c::1/64
//                   towards the client, 198.51.100.1/32 on lo: the API and the WireGuard endpoint;
//                   runs `tunnelbyte serve` with NAT
//   nsC "client"    198.51.101.2/24, 2001:db8:c::2/64, default routes via the exit's link address, so the
//                   endpoint and the API are reached through the *default* route: the case where the
//                   fwmark (endpoint) and the API rule matter. Runs the CLI as a person would.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Netns, privilegedSkipReason, veth, waitFor } from '../support/netns.js';
import { ifname } from '../support/wg.js';
import { REPO_ROOT } from '../support/repo.js';
import { startInternet, startServe } from '../support/exit-net.js';

const skip = privilegedSkipReason(['ip', 'curl', 'nft']);
const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');
const API = 'http://198.51.100.1:8080';
const FILE_BYTES = 4 * 1024 * 1024;
const TUN = ifname('tbx');
const IF = ifname('tbc');

describe('tunnelbyte connect / status / disconnect', { skip: skip ?? false }, () => {
  let inet: Netns, exit: Netns, client: Netns;
  let dataDir: string, home: string;
  let server: { proc: ChildProcess; log: () => string } | null = null;
  let env: NodeJS.ProcessEnv;

  /** The CLI in the client namespace; stdout on success, throws with stderr on failure. */
  const tb = (args: string[]) => client.run('node', [TB, ...args], { env, timeoutMs: 60_000 });
  const tbTry = (args: string[]) => client.try('node', [TB, ...args], { env, timeoutMs: 60_000 });

  /** Everything connect may change in the client namespace. */
  const snapshot = () => ({
    rules4: client.run('ip', ['-4', 'rule', 'show']),
    rules6: client.run('ip', ['-6', 'rule', 'show']),
    routes4: client.run('ip', ['-4', 'route', 'show', 'table', 'all']),
    routes6: client.run('ip', ['-6', 'route', 'show', 'table', 'all']),
    links: client.run('ip', ['-o', 'link', 'show']).replace(/\\\s+link\/.*$/gm, ''),
    srcValidMark: client.run('sysctl', ['-n', 'net.ipv4.conf.all.src_valid_mark']),
  });

  const fetchFile = (n: number, timeoutS = 20): number =>
    Number(client.try('curl', ['-s', '-o', '/dev/null', '-w', '%{size_download}', '--max-time', String(timeoutS), `http://203.0.113.1:8000/file?n=${n}`], { timeoutMs: (timeoutS + 5) * 1000 }).stdout || 0);

  before(async () => {
    inet = Netns.create('I');
    exit = Netns.create('E');
    client = Netns.create('C');
    dataDir = mkdtempSync(join(tmpdir(), 'tb-cli-serve-'));
    home = mkdtempSync(join(tmpdir(), 'tb-cli-home-'));
    env = { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: join(home, 'config'), TB_API: API, TB_FINGERPRINT: `fp-cli-connect-${process.pid}` };
    client.onDestroy(() => rmSync(`/var/run/wireguard/${IF}.sock`, { force: true }));
    veth(inet, ['203.0.113.1/24', '2001:db8:ff::1/64'], exit, ['203.0.113.2/24', '2001:db8:ff::2/64']);
    exit.run('ip', ['route', 'add', 'default', 'via', '203.0.113.1']);
    exit.run('ip', ['-6', 'route', 'add', 'default', 'via', '2001:db8:ff::1']);
    exit.run('ip', ['addr', 'add', '198.51.100.1/32', 'dev', 'lo']);
    veth(exit, ['198.51.101.1/24', '2001:db8:c::1/64'], client, ['198.51.101.2/24', '2001:db8:c::2/64']);
    client.run('ip', ['route', 'add', 'default', 'via', '198.51.101.1']);
    client.run('ip', ['-6', 'route', 'add', 'default', 'via', '2001:db8:c::1']);
    // the veth's link-local address finishes DAD later; the snapshots must not see it appear mid-test
    await waitFor('client link-local address', () => /fe80::/.test(client.run('ip', ['-6', 'addr', 'show'])) && client.run('ip', ['-6', 'addr', 'show', 'tentative']).trim() === '');
    await startInternet(inet);
    server = await startServe(exit, dataDir, TUN, ['--log-level', 'warn']);
  });

  after(() => {
    // a failed test may leave the tunnel up: the namespace goes, and with it everything in it
    server?.proc.kill('SIGTERM');
    for (const ns of [client, exit, inet]) ns?.destroy();
    for (const d of [dataDir, home]) if (d) rmSync(d, { recursive: true, force: true });
    if (process.exitCode) console.error(server?.log().slice(-4000));
  });

  let before0: ReturnType<typeof snapshot>;
  let sessionId: string;

  test('connect brings the tunnel up; a download through it succeeds, seen from the exit\'s address', async () => {
    before0 = snapshot();
    assert.match(tb(['signup']), /signed up/);
    const out = tb(['connect', '--interface', IF]);
    assert.match(out, /^connected to region local through 198\.51\.100\.1:51820 \(first handshake after [\d.]+ s\)$/m);
    assert.match(out, /addresses {2}10\.64\.\d+\.\d+\/32, fd[0-9a-f:]+\/128/);
    sessionId = /session {4}(ses_\S+)/.exec(out)![1]!;

    // traffic to the internet is routed into the tunnel, the endpoint and the API are not
    assert.match(client.run('ip', ['route', 'get', '203.0.113.1']), new RegExp(`dev ${IF} table \\d+`));
    assert.match(client.run('ip', ['-6', 'route', 'get', '2001:db8:ff::1']), new RegExp(`dev ${IF} table \\d+`));
    assert.doesNotMatch(client.run('ip', ['route', 'get', '198.51.100.1']), new RegExp(`dev ${IF}`), 'the API stays outside the tunnel');
    const mark = /not from all fwmark 0x([0-9a-f]+) lookup (\d+)/.exec(client.run('ip', ['-4', 'rule', 'show']));
    assert.ok(mark, 'the wg-quick rule');
    assert.doesNotMatch(client.run('ip', ['route', 'get', '198.51.100.1', 'mark', String(parseInt(mark[1]!, 16))]), new RegExp(`dev ${IF}`), 'marked packets (the endpoint) take the main table');

    assert.equal(fetchFile(FILE_BYTES), FILE_BYTES, 'the whole file arrived');
    assert.equal(client.run('curl', ['-s', '--max-time', '5', 'http://203.0.113.1:8000/ip']).trim(), '203.0.113.2');
    assert.equal(client.run('curl', ['-s', '--max-time', '5', 'http://[2001:db8:ff::1]:8000/ip']).trim(), '2001:db8:ff::2');
  });

  test('a second connect says it is connected already', () => {
    const r = tbTry(['connect', '--interface', ifname('tbc')]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, new RegExp(`already connected: region local, session ${sessionId}, interface ${IF}`));
  });

  test('status shows the connection, the handshake and the bytes the exit counted', async () => {
    const s = await waitFor('status with the download counted', () => {
      const j = JSON.parse(tb(['status', '--json']));
      return j.session.rx_bytes >= FILE_BYTES ? j : null;
    }, 15_000, 500);
    assert.equal(s.connected, true);
    assert.equal(s.session.id, sessionId);
    assert.equal(s.local.interface, IF);
    assert.ok(s.local.last_handshake_at, 'a handshake, read from the UAPI');
    assert.ok(s.local.rx_bytes >= FILE_BYTES);
    const text = tb(['status']);
    assert.match(text, new RegExp(`^connected: region local, session ${sessionId} \\(active\\)`));
    assert.match(text, /handshake {2}\d+ s ago/);
    assert.match(tb(['sessions']), new RegExp(`^${sessionId} \\*`, 'm'));
  });

  test('disconnect closes the session and leaves no interface, route, rule or socket behind', () => {
    assert.match(tb(['disconnect']), new RegExp(`disconnected from region local: interface ${IF} removed`));
    assert.deepEqual(snapshot(), before0);
    assert.notEqual(client.try('ip', ['link', 'show', IF]).status, 0);
    assert.ok(!existsSync(`/var/run/wireguard/${IF}.sock`), 'UAPI socket removed');
    assert.ok(!existsSync(join(home, 'config', 'tunnelbyte', 'connection.json')));
    assert.equal(JSON.parse(tb(['status', sessionId, '--json'])).session.state, 'closed');
    assert.doesNotMatch(client.run('ip', ['route', 'get', '203.0.113.1']), new RegExp(IF));
    assert.match(tb(['status']), /^not connected/);
  });

  test('a failed connect (no handshake: UDP blocked) undoes everything and closes its session', () => {
    client.run('nft', ['-f', '-'], { input: 'table inet tbtest {\n chain out {\n  type filter hook output priority 0;\n  udp dport 51820 drop\n }\n}\n' });
    try {
      const r = tbTry(['connect', '--interface', IF, '--timeout', '2']);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /no handshake with the exit 198\.51\.100\.1:51820 within 2 s[\s\S]*the session was closed; nothing was left changed/);
    } finally {
      client.run('nft', ['delete', 'table', 'inet', 'tbtest']);
    }
    assert.deepEqual(snapshot(), before0);
    assert.ok(!existsSync(`/var/run/wireguard/${IF}.sock`));
    assert.deepEqual(JSON.parse(tb(['sessions', '--json'])).sessions, [], 'no active session left');
  });
});
