/**
 * `tunnelbyte serve --netstack` as a real process on loopback ports, with
 * the library Tunnel (src/userspace) as the client: no TUN, no namespace, no
 * root. As root (CI), serve runs as uid 65534 in a user namespace (unshare
 * --map-user, as cli-customer.test.ts does): it has no capabilities there.
 *
 *   Tunnel (netstack) ─ UDP over lo ─▶ serve --netstack (netstack, forwarder) ─ host sockets ─▶ 127.0.0.1 servers
 *
 * Checked: a download and an upload byte-exact through the relay, a UDP
 * echo, a refused port seen as ECONNREFUSED, the API's own port refused even
 * though --allow-private opens loopback, a private range not opened refused,
 * usage counted in /v1/usage, --tun refused with --netstack.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Tunnel } from '../../src/userspace/tunnel.js';
import { REPO_ROOT } from '../support/repo.js';

const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');

/** Deterministic bytes: byte i is i % 251. */
function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i % 251;
  return b;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A port the kernel says is free now (TCP or UDP). */
async function freePort(kind: 'tcp' | 'udp'): Promise<number> {
  if (kind === 'udp') {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    const p = s.address().port;
    await new Promise<void>((r) => s.close(() => r()));
    return p;
  }
  const s = createTcpServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** Runs `fn` until it returns true or `ms` pass. */
async function waitFor(what: string, fn: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** Runs `fn` until it resolves (each failure retried after a pause) or `ms` pass. */
async function retry<T>(fn: () => Promise<T>, ms: number): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > until) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** Everything read from a tunnel socket until its end. */
function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('end', () => resolve(Buffer.concat(parts)));
    s.on('error', reject);
  });
}

describe('serve --netstack on loopback, the library Tunnel as client, without root', { timeout: 180_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tb-nsexit-'));
  const DOWNLOAD = pattern(3 * 1024 * 1024 + 17);
  let serve: ChildProcess;
  let log = '';
  let web: Server;
  let webPort = 0;
  let api = '';
  let apiPort = 0;
  let tunnel: Tunnel;
  let token = '';
  let uploadSha = '';
  let uploadLen = 0;
  let udpEcho: ReturnType<typeof createSocket>;
  let closedPort = 0;
  let serveArgs: string[] = [];
  let accountId = '';

  /** Starts serve (as uid 65534 when we are root) and waits for its API. */
  async function startServe(): Promise<void> {
    const argv = process.getuid?.() === 0 ? ['unshare', '--user', '--map-user=65534', '--map-group=65534', process.execPath, ...serveArgs] : [process.execPath, ...serveArgs];
    log = '';
    const proc = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, XDG_DATA_HOME: join(dir, 'xdg') }, stdio: ['ignore', 'pipe', 'pipe'] });
    serve = proc;
    proc.stdout!.on('data', (d) => (log += d));
    proc.stderr!.on('data', (d) => (log += d));
    await waitFor('the API', async () => {
      if (proc.exitCode !== null) assert.fail(`serve exited ${proc.exitCode}:\n${log}`);
      return fetch(`${api}/v1/health`).then((r) => r.ok).catch(() => false);
    });
  }

  async function usageTotal(): Promise<number> {
    const r = await fetch(`${api}/v1/usage`, { headers: { authorization: `Bearer ${token}`, 'x-tb-fingerprint': `nsexit-${process.pid}` } });
    return ((await r.json()) as { bytes: { total: number } }).bytes.total;
  }
  let metricsPort = 0;
  let fp2 = '';
  let session2: { config: string; client: { addresses: string[] } } | null = null;

  before(async () => {
    web = createServer((req, res) => {
      if (req.url === '/file') {
        res.setHeader('content-length', DOWNLOAD.length);
        res.end(DOWNLOAD);
        return;
      }
      if (req.url === '/big') {
        // 32 MiB: more than the 24 MiB quota.
        const n = 32 * 1024 * 1024;
        res.setHeader('content-length', n);
        let left = n;
        const pump = (): void => {
          while (left > 0) {
            const c = DOWNLOAD.subarray(0, Math.min(left, 1 << 20));
            left -= c.length;
            if (!res.write(c)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
        return;
      }
      if (req.url === '/upload') {
        const h = createHash('sha256');
        let n = 0;
        req.on('data', (d: Buffer) => {
          h.update(d);
          n += d.length;
        });
        req.on('end', () => {
          uploadSha = h.digest('hex');
          uploadLen = n;
          res.end('ok');
        });
        return;
      }
      res.statusCode = 404;
      res.end();
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    webPort = (web.address() as AddressInfo).port;
    udpEcho = createSocket('udp4');
    udpEcho.on('message', (m, r) => udpEcho.send(Buffer.concat([Buffer.from('echo:'), m]), r.port, r.address));
    await new Promise<void>((r) => udpEcho.bind(0, '127.0.0.1', r));
    closedPort = await freePort('tcp');

    const wgPort = await freePort('udp');
    apiPort = await freePort('tcp');
    metricsPort = await freePort('tcp');
    api = `http://127.0.0.1:${apiPort}`;
    serveArgs = [TB, 'serve', '--netstack', '--data', join(dir, 'data'), '--listen-port', String(wgPort), '--endpoint', `127.0.0.1:${wgPort}`, '--api-listen', `127.0.0.1:${apiPort}`, '--metrics-listen', `127.0.0.1:${metricsPort}`, '--allow-private', '127.0.0.0/8', '--sync-interval', '1', '--anonymous-quota', '24MiB', '--log-level', 'info'];
    await startServe();
    const fp = `nsexit-${process.pid}`;
    const signup = await fetch(`${api}/v1/signup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ fingerprint: fp }) });
    assert.ok(signup.status === 201 || signup.status === 200, await signup.clone().text());
    const account = (await signup.json()) as { token: string; account_id: string };
    token = account.token;
    accountId = account.account_id;
    const created = await fetch(`${api}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'x-tb-fingerprint': fp }, body: JSON.stringify({ region: 'local' }) });
    assert.equal(created.status, 201, await created.clone().text());
    const session = (await created.json()) as { config: string };
    tunnel = await Tunnel.start({ config: session.config });
    // A second customer, for isolation.
    fp2 = `nsexit2-${process.pid}`;
    const signup2 = await fetch(`${api}/v1/signup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ fingerprint: fp2 }) });
    const token2 = ((await signup2.json()) as { token: string }).token;
    const created2 = await fetch(`${api}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token2}`, 'x-tb-fingerprint': fp2 }, body: JSON.stringify({ region: 'local' }) });
    assert.equal(created2.status, 201, await created2.clone().text());
    session2 = (await created2.json()) as { config: string; client: { addresses: string[] } };
  });

  after(async () => {
    tunnel?.close();
    if (serve && serve.exitCode === null) {
      const gone = new Promise((r) => serve.once('exit', r));
      serve.kill('SIGTERM');
      await gone;
    }
    web?.close();
    udpEcho?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('serve runs with no capabilities: not root where it runs', () => {
    const status = spawnSync('cat', [`/proc/${serve.pid}/status`], { encoding: 'utf8' }).stdout;
    // Through unshare the pid is unshare's until it execs node: the same process, now node as 65534 (or the caller's own uid).
    const capEff = /CapEff:\s*([0-9a-f]+)/.exec(status)?.[1];
    if (process.getuid?.() === 0) {
      const uidMap = spawnSync('cat', [`/proc/${serve.pid}/uid_map`], { encoding: 'utf8' }).stdout.trim().split(/\s+/);
      assert.equal(uidMap[0], '65534', 'uid 65534 inside its user namespace');
    } else {
      assert.equal(capEff, '0000000000000000');
    }
    assert.match(log, /netstack exit/, 'the echo mode is logged');
  });

  test('a download through the relay arrives byte-exact', async () => {
    const res = await tunnel.fetch(`http://127.0.0.1:${webPort}/file`);
    assert.equal(res.status, 200);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(body.length, DOWNLOAD.length);
    assert.equal(sha(body), sha(DOWNLOAD));
  });

  test('an upload through the relay arrives byte-exact (client FIN carried to the host)', async () => {
    const up = pattern(2 * 1024 * 1024 + 5);
    const s = tunnel.connect(webPort, '127.0.0.1');
    const reply = readAll(s);
    s.write(`POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: ${up.length}\r\nconnection: close\r\n\r\n`);
    s.end(up);
    const text = (await reply).toString('latin1');
    assert.match(text, /^HTTP\/1\.1 200/);
    assert.equal(uploadLen, up.length);
    assert.equal(uploadSha, sha(up));
  });

  test('UDP: a datagram relayed to a host socket and its reply back', async () => {
    const u = tunnel.udp();
    const got = new Promise<Buffer>((resolve) => u.once('message', (m: Buffer) => resolve(m)));
    u.send('ping-1', udpEcho.address().port, '127.0.0.1');
    assert.equal((await got).toString(), 'echo:ping-1');
    u.close();
  });

  test('a closed port is refused (RST → ECONNREFUSED), not left to time out', async () => {
    const s = tunnel.connect(closedPort, '127.0.0.1');
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => s.once('error', resolve));
    assert.equal(err.code, 'ECONNREFUSED');
  });

  test("the exit's own API port is refused although --allow-private opens 127.0.0.0/8", async () => {
    const s = tunnel.connect(apiPort, '127.0.0.1');
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => s.once('error', resolve));
    assert.equal(err.code, 'ECONNREFUSED');
  });

  test('a private range that was not opened is refused', async () => {
    const s = tunnel.connect(80, '10.9.8.7');
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => s.once('error', resolve));
    assert.equal(err.code, 'ECONNREFUSED');
  });

  test('the traffic is counted: /v1/usage within a few sync intervals', async () => {
    await waitFor('usage counted', async () => {
      const r = await fetch(`${api}/v1/usage`, { headers: { authorization: `Bearer ${token}`, 'x-tb-fingerprint': `nsexit-${process.pid}` } });
      const u = (await r.json()) as { bytes: { total: number } };
      return u.bytes.total >= DOWNLOAD.length;
    }, 15_000);
  });

  test("client isolation: one client's datagrams to another client's address never reach it", async () => {
    const other = await Tunnel.start({ config: session2!.config });
    try {
      const heard: string[] = [];
      const sock = other.udp({ port: 5555 });
      sock.on('message', (m: Buffer) => heard.push(m.toString()));
      // The other client says something first, so its handshake with the exit is done.
      const u = other.udp();
      const echoed = new Promise<void>((resolve) => u.once('message', () => resolve()));
      u.send('hello', udpEcho.address().port, '127.0.0.1');
      await echoed;
      const before = await dropsOf('client-to-client');
      const mine = tunnel.udp();
      const target = session2!.client.addresses.find((a) => !a.includes(':'))!.split('/')[0]!;
      await waitFor('the device drops client-to-client', async () => {
        mine.send('psst', 5555, target);
        return (await dropsOf('client-to-client')) > before;
      });
      assert.deepEqual(heard, []);
      mine.close();
      sock.close();
      u.close();
    } finally {
      other.close();
    }
  });

  test('/metrics has the netstack relays: host connections opened, refusals by reason', async () => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const opened = Number(/tunnelbyte_netstack_opened\{kind="tcp"\} (\d+)/.exec(text)?.[1] ?? -1);
    assert.ok(opened >= 2, `tcp opened: ${opened}`);
    const refused = Number(/tunnelbyte_netstack_drops\{reason="tcp-refused-by-policy"\} (\d+)/.exec(text)?.[1] ?? -1);
    assert.ok(refused >= 2, `refused by policy: ${refused}`);
    assert.match(text, /tunnelbyte_netstack_relays\{kind="udp"\} \d+/);
  });

  /** The device's drops of one reason, from /metrics. */
  async function dropsOf(reason: string): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    return Number(new RegExp(`tunnelbyte_device_drops\\{reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  }

  test('kill -9, then a restart on the same data directory: the session is restored and the same client gets through again', { timeout: 120_000 }, async () => {
    await waitFor('counters flushed', async () => (await usageTotal()) >= DOWNLOAD.length);
    const before = await usageTotal();
    const gone = new Promise((r) => serve.once('exit', r));
    serve.kill('SIGKILL');
    await gone;
    await startServe();
    assert.match(log, /active sessions restored/);
    // The client's WireGuard session died with the old process: it handshakes again when its data goes unanswered (whitepaper §6.2).
    const body = await retry(async () => {
      const res = await tunnel.fetch(`http://127.0.0.1:${webPort}/file`, { signal: AbortSignal.timeout(20_000) });
      return Buffer.from(await res.arrayBuffer());
    }, 100_000);
    assert.equal(sha(body), sha(DOWNLOAD));
    await waitFor('the new traffic counted on top of the old', async () => (await usageTotal()) >= before + DOWNLOAD.length);
  });

  test('the quota used up cuts the tunnel; an admin upgrade restores it', { timeout: 120_000 }, async () => {
    const usage = async (): Promise<{ quota_exhausted: boolean }> =>
      (await fetch(`${api}/v1/usage`, { headers: { authorization: `Bearer ${token}`, 'x-tb-fingerprint': `nsexit-${process.pid}` } })).json() as Promise<{ quota_exhausted: boolean }>;
    // The download runs past the quota: it is cut part-way, or it completes and the next request is not answered.
    await tunnel
      .fetch(`http://127.0.0.1:${webPort}/big`, { signal: AbortSignal.timeout(30_000) })
      .then((r) => r.arrayBuffer())
      .catch(() => null);
    await waitFor('quota exhausted', async () => (await usage()).quota_exhausted);
    await waitFor('the tunnel cut', async () => {
      const ok = await tunnel
        .fetch(`http://127.0.0.1:${webPort}/file`, { signal: AbortSignal.timeout(3_000) })
        .then((r) => r.arrayBuffer())
        .then(() => true)
        .catch(() => false);
      return !ok;
    });
    const admin = spawnSync(process.execPath, [TB, 'admin', '--data', join(dir, 'data'), 'account', 'set-tier', accountId, 'paid'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(admin.status, 0, admin.stderr);
    assert.equal((await usage()).quota_exhausted, false);
    const body = await retry(async () => {
      const res = await tunnel.fetch(`http://127.0.0.1:${webPort}/file`, { signal: AbortSignal.timeout(20_000) });
      return Buffer.from(await res.arrayBuffer());
    }, 100_000);
    assert.equal(sha(body), sha(DOWNLOAD), 'through again after the upgrade');
  });

  test('--tun and --no-nat are refused with --netstack, with a clear message', () => {
    const r = spawnSync(process.execPath, [TB, 'serve', '--netstack', '--tun', 'tb9', '--data', join(dir, 'other')], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--tun \(TB_TUN\) only apply to the TUN exit/);
    const n = spawnSync(process.execPath, [TB, 'serve', '--netstack', '--no-nat', '--data', join(dir, 'other')], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(n.status, 2);
    assert.match(n.stderr, /--no-nat \(TB_NAT=0\) only apply to the TUN exit/);
  });

  test('--udp-idle-timeout and --dns-idle-timeout: refused without --netstack and outside 1..86400 s, before the data directory is made', () => {
    const other = join(dir, 'idle');
    const tun = spawnSync(process.execPath, [TB, 'serve', '--udp-idle-timeout', '60', '--data', other], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, TB_DNS_IDLE_TIMEOUT: '5' } });
    assert.equal(tun.status, 2);
    assert.match(tun.stderr, /--udp-idle-timeout \(TB_UDP_IDLE_TIMEOUT\) and --dns-idle-timeout \(TB_DNS_IDLE_TIMEOUT\) only apply to --netstack/);
    for (const [flag, v] of [['--udp-idle-timeout', '0'], ['--dns-idle-timeout', '86401'], ['--udp-idle-timeout', '1.5']] as const) {
      const r = spawnSync(process.execPath, [TB, 'serve', '--netstack', flag, v, '--data', other], { encoding: 'utf8', timeout: 30_000 });
      assert.notEqual(r.status, 0, `${flag} ${v}`);
      assert.match(r.stderr, new RegExp(`${flag} must be 1\\.\\.86400 seconds`));
    }
    assert.equal(existsSync(other), false);
  });

  test('SIGTERM: a clean stop (exit 0, counters flushed, "stopped")', async () => {
    const exited = new Promise<number | null>((r) => serve.once('exit', (code) => r(code)));
    serve.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.match(log, /"msg":"stopped"/);
  });
});
