/**
 * What the privileged tests of `tunnelbyte serve` share: an "internet" HTTP
 * server in its own namespace, the /v1 API called with curl from inside a
 * namespace, a session's config loaded into a stock wireguard-go, and a
 * download through the tunnel. The namespaces and the processes in them are
 * the tests' own (test/support/netns.ts removes them).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { waitFor, type Netns } from './netns.js';
import { REPO_ROOT } from './repo.js';

const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');

/**
 * A node script for an HTTP server on host:port (the internet, a LAN host, a
 * metadata service, a service on the exit): GET /ip answers the caller's
 * address, GET /file?n=N sends N deterministic bytes.
 */
export function httpServerScript(port: number, host: string): string {
  return `
const http = require('node:http');
const s = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  if (u.pathname === '/ip') { res.end(req.socket.remoteAddress.replace(/^::ffff:/, '')); return; }
  if (u.pathname === '/file') {
    const n = Number(u.searchParams.get('n'));
    res.setHeader('content-length', n);
    const chunk = Buffer.alloc(65536);
    for (let i = 0; i < chunk.length; i++) chunk[i] = i % 251;
    let left = n;
    const pump = () => { while (left > 0) { const c = chunk.subarray(0, Math.min(left, chunk.length)); left -= c.length; if (!res.write(c)) { res.once('drain', pump); return; } } res.end(); };
    pump(); return;
  }
  res.statusCode = 404; res.end();
});
s.listen(${port}, ${JSON.stringify(host)});
`;
}

/** The "internet": the HTTP server above on [::]:8000. */
export const INTERNET_SERVER = httpServerScript(8000, '::');

/** Starts the internet's HTTP server on port 8000 in `ns` and waits until it answers. */
export async function startInternet(ns: Netns): Promise<void> {
  ns.spawn('node', ['-e', INTERNET_SERVER]);
  await waitFor('internet HTTP', () => ns.try('curl', ['-sf', 'http://127.0.0.1:8000/ip']).status === 0);
}

/** One /v1 call with curl from inside `ns`: the status and the parsed JSON body. */
export function curlApi(ns: Netns, base: string, method: string, path: string, opts: { token?: string; fp?: string; body?: unknown } = {}): { status: number; body: any } {
  const args = ['-s', '-X', method, '-w', '\n%{http_code}', '-H', 'content-type: application/json'];
  if (opts.token) args.push('-H', `authorization: Bearer ${opts.token}`);
  if (opts.fp) args.push('-H', `x-tb-fingerprint: ${opts.fp}`);
  if (opts.body !== undefined) args.push('--data', JSON.stringify(opts.body));
  const out = ns.run('curl', [...args, base + path]);
  const nl = out.lastIndexOf('\n');
  const text = out.slice(0, nl);
  return { status: Number(out.slice(nl + 1)), body: text ? JSON.parse(text) : null };
}

/** The same /v1 call with fetch from this process (an API on loopback): the status and the parsed JSON body. */
export async function fetchApi(base: string, method: string, path: string, opts: { token?: string; fp?: string; body?: unknown } = {}): Promise<{ status: number; body: any }> {
  const r = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json', ...(opts.fp ? { 'x-tb-fingerprint': opts.fp } : {}), ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}) },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/** An anonymous signup and a session in region `local`, as a customer's script does it. */
export function signupAndSession(ns: Netns, base: string, fp: string): { token: string; session: any } {
  const signup = curlApi(ns, base, 'POST', '/v1/signup', { body: { fingerprint: fp } });
  assert.ok(signup.status === 201 || signup.status === 200, JSON.stringify(signup));
  const token = signup.body.token as string;
  const created = curlApi(ns, base, 'POST', '/v1/sessions', { token, fp, body: { region: 'local' } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return { token, session: created.body };
}

/**
 * Loads a session's config into the wireguard-go interface `ifname` in `ns`
 * (the wg-quick-only keys stripped, since `wg setconf` does not take them),
 * gives it the session's addresses and routes `routes` through it.
 */
export function loadSessionConfig(ns: Netns, ifname: string, session: any, o: { endpoint: string; routes: string[] }): void {
  const config = String(session.config);
  assert.ok(config.split('\n').some((l) => l.trim() === `Endpoint = ${o.endpoint}`), `the config's endpoint is ${o.endpoint}:\n${config}`);
  assert.match(config, /\[Interface\][\s\S]*PrivateKey = [\s\S]*\[Peer\]/);
  const wgOnly = config
    .split('\n')
    .filter((l) => !/^\s*(Address|DNS|MTU|Table|PreUp|PostUp|PreDown|PostDown|SaveConfig)\s*=/i.test(l))
    .join('\n');
  const dir = mkdtempSync(join(tmpdir(), 'tb-cfg-'));
  try {
    const f = join(dir, 'c.conf');
    writeFileSync(f, wgOnly, { mode: 0o600 });
    ns.run('wg', ['setconf', ifname, f]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  ns.run('ip', ['addr', 'flush', 'dev', ifname]);
  for (const a of session.client.addresses as string[]) ns.run('ip', ['addr', 'add', a, 'dev', ifname, ...(a.includes(':') ? ['nodad'] : [])]);
  ns.run('ip', ['link', 'set', ifname, 'up']);
  for (const r of o.routes) ns.run('ip', [...(r.includes(':') ? ['-6'] : []), 'route', 'replace', r, 'dev', ifname]);
}

/** Downloads N bytes from the internet's server at `host` (default 203.0.113.1); the byte count that arrived. */
export function fetchFile(ns: Netns, n: number, timeoutS = 20, host = '203.0.113.1'): number {
  const r = ns.try('curl', ['-s', '-o', '/dev/null', '-w', '%{size_download}', '--max-time', String(timeoutS), `http://${host}:8000/file?n=${n}`], { timeoutMs: (timeoutS + 5) * 1000 });
  return Number(r.stdout || 0);
}

/** The body of GET url from `ns`, or null when no answer came within the timeout. */
export function fetchText(ns: Netns, url: string, timeoutS = 5): string | null {
  const r = ns.try('curl', ['-sf', '--max-time', String(timeoutS), url], { timeoutMs: (timeoutS + 5) * 1000 });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** GETs every url at once from `ns`; for each, the body or null when no answer came within the timeout. */
export function fetchAll(ns: Netns, urls: string[], timeoutS = 3): Promise<(string | null)[]> {
  return Promise.all(
    urls.map(
      (url) =>
        new Promise<string | null>((resolve) => {
          const child = ns.spawn('curl', ['-sf', '--max-time', String(timeoutS), url]);
          let out = '';
          child.stdout!.on('data', (d) => (out += d));
          child.once('exit', (code) => resolve(code === 0 ? out.trim() : null));
        }),
    ),
  );
}

/** A `tunnelbyte serve` in `exit` (API on 8080, endpoint 198.51.100.1), its output collected; resolves once /v1/health answers. */
export async function startServe(exit: Netns, dataDir: string, tun: string, extra: string[] = []): Promise<{ proc: ChildProcess; log: () => string }> {
  const proc = exit.spawn('node', [TB, 'serve', '--data', dataDir, '--endpoint', '198.51.100.1', '--tun', tun, '--sync-interval', '1', ...extra]);
  let log = '';
  proc.stdout!.on('data', (d) => (log += d));
  proc.stderr!.on('data', (d) => (log += d));
  await waitFor('API up', () => exit.try('curl', ['-sf', 'http://127.0.0.1:8080/v1/health']).status === 0, 20_000);
  return { proc, log: () => log };
}
