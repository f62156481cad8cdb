// `tunnelbyte serve --netstack` as an ordinary user, with no network namespace
// at all: the exit and its client are processes of uid 65534 (test/support/
// unprivileged.ts: started as root, the test drops to it) on loopback ports of
// the machine's own network, never 8080/51820.
//
//   this process: an HTTP server on 127.0.0.1 (N bytes of pattern(seed 11)), the /v1 calls with fetch
//   uid 65534:    tunnelbyte serve --netstack --allow-private 127.0.0.0/8 (API, metrics: port 0; WireGuard: a free UDP port)
//   uid 65534:    tunnelbyte proxy --config <the session's config> (its HTTP proxy on 127.0.0.1:0)
//
//   GET http://127.0.0.1:WEB/blob/N via the proxy: proxy netstack ─ WireGuard over lo ─▶ serve's netstack ─▶ net.connect(127.0.0.1:WEB)
//
// signup → session → a download byte-exact (sha256) → usage counted in GET
// /v1/usage → the tier's small quota used up cuts the tunnel → an admin upgrade
// restores it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { chownSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { blobSha, serveBlob } from '../support/proxy-peer.js';
import { waitFor } from '../support/netns.js';
import { fetchApi } from '../support/exit-net.js';
import { REPO_ROOT } from '../support/repo.js';
import { dropMode, NOBODY, privateDir, processFacts, removeDir, spawnUnprivileged, type Drop } from '../support/unprivileged.js';

const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');
const BLOB = 4 * 1024 * 1024 + 17;
const QUOTA_MIB = 24;


/** A UDP port free on this machine (IPv4 and IPv6 when it has IPv6; bound and released: serve binds it right after). */
function freeUdpPort(type: 'udp6' | 'udp4' = 'udp6'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createSocket({ type });
    s.once('error', (e) => (type === 'udp6' ? freeUdpPort('udp4').then(resolve, reject) : reject(e)));
    s.bind(0, type === 'udp6' ? '::' : '0.0.0.0', () => {
      const port = s.address().port;
      s.close(() => (port === 8080 || port === 51820 ? freeUdpPort(type).then(resolve, reject) : resolve(port)));
    });
  });
}

/** One child process and everything it printed. */
class Proc {
  out = '';
  readonly exited: Promise<number | null>;
  constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.out += d.toString()));
    this.exited = new Promise((r) => child.once('exit', (code) => r(code)));
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }
}

/**
 * GET `url` through the HTTP proxy at `proxy` (an absolute-URI request): the
 * body's sha256 and length, or the length that arrived before `timeoutMs` or
 * an error ended it (a cut tunnel: a 502 from the proxy, a stall).
 */
function viaProxy(proxy: { host: string; port: number }, url: string, timeoutMs: number): Promise<{ status: number; bytes: number; sha: string }> {
  return new Promise((resolve) => {
    const h = createHash('sha256');
    let bytes = 0;
    let status = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ status, bytes, sha: h.digest('hex') });
    };
    const req = request({ host: proxy.host, port: proxy.port, path: url, headers: { host: new URL(url).host }, agent: false }, (res) => {
      status = res.statusCode ?? 0;
      res.on('data', (d: Buffer) => {
        h.update(d);
        bytes += d.length;
      });
      res.on('end', finish);
      res.on('error', finish);
    });
    const timer = setTimeout(finish, timeoutMs);
    req.on('error', finish);
    req.end();
  });
}

describe('serve --netstack as an unprivileged user, no network namespace: signup to quota through tunnelbyte proxy', () => {
  let drop: Drop;
  let dir: string;
  let web: Server;
  let webPort = 0;
  let serve: Proc;
  let proxy: Proc | null = null;
  let api = '';
  let proxyAt = { host: '127.0.0.1', port: 0 };
  let token = '';
  const fp = `fp-unpriv-${process.pid}`;
  let env: NodeJS.ProcessEnv;

  const call = (method: string, path: string, body?: unknown) => fetchApi(api, method, path, { fp, body, ...(token ? { token } : {}) });
  const blob = (n: number, timeoutMs = 60_000) => viaProxy(proxyAt, `http://127.0.0.1:${webPort}/blob/${n}`, timeoutMs);
  const tb = (args: string[]) => new Proc(spawnUnprivileged(drop, process.execPath, [TB, ...args], { env }));

  before(async () => {
    drop = dropMode();
    dir = privateDir(drop, 'tb-unpriv-serve-');
    env = {
      PATH: process.env.PATH,
      HOME: dir,
      XDG_DATA_HOME: join(dir, 'data-home'),
      XDG_CONFIG_HOME: join(dir, 'config'),
      XDG_CACHE_HOME: join(dir, 'cache'),
    };
    web = createServer(async (req, res) => {
      if (await serveBlob(req, res)) return;
      res.statusCode = 404;
      res.end();
    });
    webPort = await new Promise<number>((r) => web.listen(0, '127.0.0.1', () => r((web.address() as AddressInfo).port)));

    const wgPort = await freeUdpPort();
    serve = tb([
      'serve', '--netstack',
      '--data', join(dir, 'state'),
      '--listen-port', String(wgPort),
      '--endpoint', '127.0.0.1',
      '--exit-address', '127.0.0.1',
      '--api-listen', '127.0.0.1:0',
      '--metrics-listen', '127.0.0.1:0',
      '--allow-private', '127.0.0.0/8',
      '--sync-interval', '1',
      '--anonymous-quota', `${QUOTA_MIB}MiB`,
      '--log-level', 'info',
    ]);
    const line = await waitFor(`serve --netstack running (${serve.out.slice(-2000)})`, () => serve.child.exitCode !== null || serve.out.split('\n').find((l) => l.includes('tunnelbyte exit running')), 60_000, 50);
    if (line === true) throw new Error(`serve exited ${serve.child.exitCode}: ${serve.out.slice(-3000)}`);
    const running = JSON.parse(line!) as { apiListen: string; endpoint: string };
    api = running.apiListen.replace(/\/$/, '');
    assert.equal(running.endpoint, `127.0.0.1:${wgPort}`);
  });

  after(async () => {
    await proxy?.stop();
    await serve?.stop();
    await new Promise((r) => web?.close(r));
    removeDir(dir);
    if (process.exitCode) console.error(`serve:\n${serve?.out.slice(-4000)}\nproxy:\n${proxy?.out.slice(-2000)}`);
  });

  test(`serve runs as uid ${NOBODY} (or the ordinary user running the suite) with no capabilities, in this process's network namespace`, () => {
    const f = processFacts(serve.child.pid!);
    assert.match(f.capEff, /^0+$/, 'no effective capabilities');
    assert.equal(f.uid, drop === 'none' ? process.getuid!() : NOBODY);
    assert.ok(f.sameNetns, 'no network namespace of its own');
  });

  test('signup, a session; its config through tunnelbyte proxy downloads byte-exact from 127.0.0.1', async () => {
    const signup = await call('POST', '/v1/signup', { fingerprint: fp });
    assert.ok(signup.status === 201 || signup.status === 200, JSON.stringify(signup));
    token = signup.body.token;
    const session = await call('POST', '/v1/sessions', { region: 'local' });
    assert.equal(session.status, 201, JSON.stringify(session.body));
    const config = String(session.body.config);
    assert.match(config, /^Endpoint = 127\.0\.0\.1:\d+$/m);
    const file = join(dir, 'session.conf');
    writeFileSync(file, config, { mode: 0o600 });
    if (drop === 'setuid') chownSync(file, NOBODY, NOBODY);

    proxy = tb(['proxy', '--config', file, '--no-socks', '--http', '127.0.0.1:0']);
    const p = proxy;
    const at = await waitFor(`the proxy prints where it listens (${p.out})`, () => p.child.exitCode !== null || /http proxy on 127\.0\.0\.1:(\d+)/.exec(p.out), 60_000, 50);
    if (at === true) throw new Error(`proxy exited ${p.child.exitCode}: ${p.out}`);
    proxyAt = { host: '127.0.0.1', port: Number(at![1]) };

    const got = await blob(BLOB);
    assert.equal(got.status, 200, `serve:\n${serve.out.slice(-2000)}`);
    assert.equal(got.bytes, BLOB);
    assert.equal(got.sha, blobSha(BLOB));
  });

  test("--allow-private 127.0.0.0/8 opens the host's loopback, not the exit's own API on it", async () => {
    const health = await viaProxy(proxyAt, `${api}/v1/health`, 15_000);
    assert.equal(health.status, 502, 'the proxy could not connect: the exit refused the API port');
    assert.equal((await blob(1000)).sha, blobSha(1000), 'while the web server on the same loopback answers');
  });

  test('the download is counted: GET /v1/usage and the session show its bytes within a few sync intervals', async () => {
    const usage = await waitFor('usage counted', async () => {
      const u = await call('GET', '/v1/usage');
      return u.body.bytes.total >= BLOB ? u.body : null;
    }, 15_000, 250);
    assert.equal(usage.quota_exhausted, false);
    const sessions = await call('GET', '/v1/sessions');
    const s = (sessions.body.sessions as any[])[0];
    assert.ok(s.last_handshake_at, 'a handshake is recorded');
    assert.ok(s.rx_bytes >= BLOB, `rx_bytes ${s.rx_bytes}`);
  });

  test(`the ${QUOTA_MIB} MiB quota used up cuts the tunnel; an admin upgrade restores it`, async () => {
    // Each round moves 8 MiB; the quota ends in at most four (the bound of this loop).
    for (let i = 0; i < 6; i++) {
      const u = await call('GET', '/v1/usage');
      if (u.body.quota_exhausted) break;
      await blob(8 * 1024 * 1024, 30_000);
      await new Promise((r) => setTimeout(r, 1500)); // one sync interval and a half: the counters reach SQLite
    }
    await waitFor('quota exhausted', async () => (await call('GET', '/v1/usage')).body.quota_exhausted === true, 15_000, 250);
    await waitFor('the tunnel cut', async () => (await blob(100_000, 4000)).bytes < 100_000, 20_000, 500);
    assert.equal((await call('POST', '/v1/sessions', { region: 'local' })).status, 429, 'no new session either');

    const account = (await call('GET', '/v1/usage')).body.account_id as string;
    const admin = tb(['admin', '--data', join(dir, 'state'), 'account', 'set-tier', account, 'paid']);
    assert.equal(await admin.exited, 0, admin.out);
    await waitFor('the tunnel restored', async () => {
      const r = await blob(BLOB, 20_000);
      return r.bytes === BLOB && r.sha === blobSha(BLOB);
    }, 60_000, 500);
  });
});
