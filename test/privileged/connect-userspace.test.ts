// `tunnelbyte connect --userspace` end to end against a real `tunnelbyte serve`:
// the CLI runs as uid 65534 in a user namespace (no root, no TUN), creates a
// session through the /v1 API and runs the SOCKS5/HTTP proxy through it; curl
// reaches the "internet" through the exit; stopping the CLI closes the session.
//
//   nsI "internet"  203.0.113.1/24 — an HTTP server (test/support/exit-net.ts)
//   nsE "exit"      203.0.113.2/24 (default route), 198.51.101.1/24 towards the client,
//                   198.51.100.1/32 on lo: the API and the WireGuard endpoint; `tunnelbyte serve` with NAT
//   nsC "client"    198.51.101.2/24, default route via the exit; the CLI (unprivileged) and curl
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Netns, privilegedSkipReason, veth, waitFor } from '../support/netns.js';
import { ifname } from '../support/wg.js';
import { REPO_ROOT } from '../support/repo.js';
import { startInternet, startServe } from '../support/exit-net.js';

const skip = privilegedSkipReason(['ip', 'curl', 'nft', 'unshare']);
const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');
const API = 'http://198.51.100.1:8080';
const FILE_BYTES = 2 * 1024 * 1024;
const NOBODY = ['unshare', '--user', '--map-user=65534', '--map-group=65534'];

describe('tunnelbyte connect --userspace against tunnelbyte serve', { skip: skip ?? false }, () => {
  let inet: Netns, exit: Netns, client: Netns;
  let dataDir: string, home: string;
  let server: { proc: ChildProcess; log: () => string } | null = null;
  let env: NodeJS.ProcessEnv;

  const tb = (args: string[]) => client.run(NOBODY[0]!, [...NOBODY.slice(1), process.execPath, TB, ...args], { env, timeoutMs: 60_000 });

  before(async () => {
    inet = Netns.create('uI');
    exit = Netns.create('uE');
    client = Netns.create('uC');
    dataDir = mkdtempSync(join(tmpdir(), 'tb-us-serve-'));
    home = mkdtempSync(join(tmpdir(), 'tb-us-home-'));
    env = { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: join(home, 'config'), TB_API: API, TB_FINGERPRINT: `fp-userspace-${process.pid}` };
    veth(inet, ['203.0.113.1/24'], exit, ['203.0.113.2/24']);
    exit.run('ip', ['route', 'add', 'default', 'via', '203.0.113.1']);
    exit.run('ip', ['addr', 'add', '198.51.100.1/32', 'dev', 'lo']);
    veth(exit, ['198.51.101.1/24'], client, ['198.51.101.2/24']);
    client.run('ip', ['route', 'add', 'default', 'via', '198.51.101.1']);
    await startInternet(inet);
    server = await startServe(exit, dataDir, ifname('tbu'), ['--log-level', 'warn']);
  });

  after(() => {
    server?.proc.kill('SIGTERM');
    for (const ns of [client, exit, inet]) ns?.destroy();
    for (const d of [dataDir, home]) if (d) rmSync(d, { recursive: true, force: true });
    if (process.exitCode) console.error(server?.log().slice(-4000));
  });

  test('connect --userspace as uid 65534: a session, a proxy through it, the exit\'s address seen; Ctrl-C closes the session', async () => {
    assert.match(tb(['signup']), /signed up/);
    const cli = client.spawn(NOBODY[0]!, [...NOBODY.slice(1), process.execPath, TB, 'connect', '--userspace', '--socks', '127.0.0.1:0', '--http', '127.0.0.1:0'], { env });
    let out = '';
    let err = '';
    cli.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    cli.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => cli.once('exit', r));
    try {
      await waitFor(`connect --userspace listens (stdout ${out}, stderr ${err})`, () => /http proxy on/.test(out), 30_000, 50);
      const socks = /socks5 proxy on (\S+)/.exec(out)![1]!;
      const http = /http proxy on (\S+)/.exec(out)![1]!;
      const sessionId = /session (ses_\S+) in region local/.exec(out)?.[1];
      assert.ok(sessionId, out);
      assert.match(out, /through WireGuard to 198\.51\.100\.1:51820/);

      const got = client.run('curl', ['-sS', '--max-time', '60', '-o', '/dev/null', '-w', '%{size_download}', '--socks5-hostname', socks, `http://203.0.113.1:8000/file?n=${FILE_BYTES}`]);
      assert.equal(Number(got), FILE_BYTES);
      assert.equal(client.run('curl', ['-sS', '--max-time', '20', '--socks5', socks, 'http://203.0.113.1:8000/ip']).trim(), '203.0.113.2', 'the internet sees the exit');
      assert.equal(client.run('curl', ['-sS', '--max-time', '20', '-x', `http://${http}`, 'http://203.0.113.1:8000/ip']).trim(), '203.0.113.2');
      const active = JSON.parse(tb(['sessions', '--json'])) as { sessions: { id: string; state: string }[] };
      assert.ok(active.sessions.some((s) => s.id === sessionId && s.state === 'active'), JSON.stringify(active));

      cli.kill('SIGINT');
      assert.equal(await exited, 0, err);
      assert.match(err, new RegExp(`session ${sessionId} closed`));
      const left = JSON.parse(tb(['sessions', '--json'])) as { sessions: { id: string; state: string }[] };
      assert.ok(!left.sessions.some((s) => s.id === sessionId && s.state === 'active'), JSON.stringify(left));
    } finally {
      cli.kill('SIGKILL');
    }
  });
});
