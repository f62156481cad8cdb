// `tunnelbyte serve --tls-cert --tls-key` in a network namespace this test
// makes: the API answers HTTPS only (TLS 1.2+, HSTS), /metrics is on its own
// listener and no longer on the API's, SIGHUP reloads the certificate — a
// new connection sees the new one while a keep-alive connection opened before
// keeps working — and the customer CLI verifies the certificate, trusting an
// exit's own CA with --ca / TB_CA. Certificates are made here with openssl.
// Also: `tunnelbyte admin account disable` from another process takes the
// account's peer off the running server's device at its next sync.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Netns, privilegedSkipReason, waitFor } from '../support/netns.js';
import { ifname } from '../support/wg.js';
import { REPO_ROOT } from '../support/repo.js';

const skip = privilegedSkipReason(['ip', 'curl', 'openssl']);
const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');
const API = 'https://127.0.0.1:8443';

/** A self-signed P-256 certificate for 127.0.0.1, valid two days; returns [cert, key] paths and its SHA-256 fingerprint. */
function makeCert(dir: string, name: string): { cert: string; key: string; fp: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=tunnelbyte test ${name}`, '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const fp = execFileSync('openssl', ['x509', '-in', cert, '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' }).split('=')[1]!.trim();
  return { cert, key, fp };
}

// Runs inside the namespace: one keep-alive connection asks, waits for a line on stdin, asks again on the
// same connection, then a new connection asks; each answer is printed with the certificate it was served with.
const CLIENT = `
import https from 'node:https';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
const [url, caFile] = process.argv.slice(2);
const ca = readFileSync(caFile);
const ask = (agent) => new Promise((resolve, reject) => {
  https.get(url + '/v1/health', { agent, ca }, (res) => {
    const fp = res.socket.getPeerCertificate().fingerprint256; // read now: the socket goes back to the agent at 'end'
    const port = res.socket.localPort;
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => resolve({ status: res.statusCode, hsts: res.headers['strict-transport-security'] ?? null, fp, port, body }));
  }).on('error', reject);
});
const keep = new https.Agent({ keepAlive: true, maxSockets: 1 });
console.log(JSON.stringify(await ask(keep)));
await new Promise((r) => createInterface({ input: process.stdin }).once('line', r));
console.log(JSON.stringify(await ask(keep)));
console.log(JSON.stringify(await ask(new https.Agent({ keepAlive: false }))));
const old = await new Promise((resolve) => {
  const s = tls.connect({ host: '127.0.0.1', port: Number(new URL(url).port), ca, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }, () => { resolve('connected ' + s.getProtocol()); s.end(); });
  s.on('error', (e) => resolve('refused ' + (e.code ?? e.message)));
});
console.log(JSON.stringify({ tls11: old }));
keep.destroy();
`;

describe('tunnelbyte serve over TLS', { skip: skip ?? false }, () => {
  let ns: Netns;
  let dir: string;
  let server: ChildProcess | null = null;
  let log = '';
  let a: ReturnType<typeof makeCert>;
  let b: ReturnType<typeof makeCert>;

  before(async () => {
    ns = Netns.create('T');
    dir = mkdtempSync(join(tmpdir(), 'tb-tls-'));
    a = makeCert(dir, 'a');
    b = makeCert(dir, 'b');
    writeFileSync(join(dir, 'server.crt'), readFileSync(a.cert));
    writeFileSync(join(dir, 'server.key'), readFileSync(a.key), { mode: 0o600 });
    writeFileSync(join(dir, 'both.crt'), Buffer.concat([readFileSync(a.cert), readFileSync(b.cert)]));
    writeFileSync(join(dir, 'client.mjs'), CLIENT);
    server = ns.spawn('node', [TB, 'serve', '--data', join(dir, 'data'), '--no-nat', '--endpoint', '192.0.2.1', '--exit-address', '192.0.2.1', '--tun', ifname('tbt'),
      '--sync-interval', '1', '--api-listen', '127.0.0.1:8443', '--tls-cert', join(dir, 'server.crt'), '--tls-key', join(dir, 'server.key'), '--log-level', 'info']);
    server.stdout!.on('data', (d) => (log += d));
    server.stderr!.on('data', (d) => (log += d));
    await waitFor('API up over HTTPS', () => ns.try('curl', ['-sf', '--cacert', a.cert, `${API}/v1/health`]).status === 0, 30_000);
  });

  after(() => {
    server?.kill('SIGTERM');
    ns?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('HTTPS only, HSTS; /metrics on 127.0.0.1:9090 and not on the API', () => {
    const h = ns.run('curl', ['-s', '-D', '-', '-o', '/dev/null', '--cacert', a.cert, `${API}/v1/health`]);
    assert.match(h, /^HTTP\/1\.1 200/);
    assert.match(h, /^strict-transport-security: max-age=31536000\r?$/im);
    assert.notEqual(ns.try('curl', ['-s', '-m', '5', 'http://127.0.0.1:8443/v1/health']).status, 0, 'no plain HTTP on the API port');
    assert.equal(ns.run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', a.cert, `${API}/metrics`]), '404');
    const m = ns.run('curl', ['-sf', 'http://127.0.0.1:9090/metrics']);
    assert.match(m, /^tunnelbyte_device_peers 0$/m);
    assert.match(m, /^tunnelbyte_http_requests_total\{method="GET",route="\/v1\/health",status="200"\} \d+$/m);
  });

  test('the CLI verifies the certificate: refused without --ca, trusted with --ca FILE or TB_CA', () => {
    const cli = (args: string[], env: Record<string, string> = {}) =>
      ns.try('env', [`HOME=${dir}`, `XDG_CONFIG_HOME=${join(dir, 'cfg')}`, 'TB_FINGERPRINT=fp-tls', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, TB, ...args]);
    const untrusted = cli(['regions', '--api', API]);
    assert.notEqual(untrusted.status, 0);
    assert.match(untrusted.stderr, /certificate of https:\/\/127\.0\.0\.1:8443 is not trusted[\s\S]*--ca/);
    const ok = cli(['regions', '--api', API, '--ca', a.cert, '--json']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout).regions.map((r: { id: string }) => r.id), ['local']);
    assert.equal(cli(['regions', '--api', API], { TB_CA: a.cert }).status, 0);
    const wrong = cli(['regions', '--api', API, '--ca', b.cert]);
    assert.notEqual(wrong.status, 0, 'another CA is not enough');
    assert.match(wrong.stderr, /not trusted/);
  });

  test('admin account disable from another process: the running server removes the peer at its next sync', async () => {
    const curl = (method: string, path: string, body?: unknown, token?: string) =>
      JSON.parse(ns.run('curl', ['-s', '-X', method, '--cacert', a.cert, '-H', 'x-tb-fingerprint: fp-admin', ...(token ? ['-H', `authorization: Bearer ${token}`] : []), ...(body ? ['-d', JSON.stringify(body)] : []), `${API}${path}`]));
    const peers = () => Number(/^tunnelbyte_device_peers (\d+)$/m.exec(ns.run('curl', ['-sf', 'http://127.0.0.1:9090/metrics']))?.[1]);
    const signup = curl('POST', '/v1/signup', { fingerprint: 'fp-admin' });
    const session = curl('POST', '/v1/sessions', { region: 'local' }, signup.token);
    assert.match(session.id, /^ses_/);
    await waitFor('peer on the device', () => peers() === 1, 10_000);
    const dis = ns.try(process.execPath, [TB, 'admin', '--data', join(dir, 'data'), 'account', 'disable', signup.account_id]);
    assert.equal(dis.status, 0, dis.stderr);
    const t0 = Date.now();
    await waitFor('peer removed', () => peers() === 0, 10_000);
    console.log(`# peer removed ${Date.now() - t0} ms after admin account disable (sync interval 1 s)`);
    assert.equal(curl('GET', '/v1/usage', undefined, signup.token).error, 'invalid bearer token');
  });

  test('SIGHUP reloads the certificate: new connections get the new one, an open keep-alive connection keeps working; TLS 1.1 refused', async () => {
    const client = ns.spawn('node', [join(dir, 'client.mjs'), API, join(dir, 'both.crt')], { stdio: ['pipe', 'pipe', 'pipe'] });
    let err = '';
    client.stderr!.on('data', (d) => (err += d));
    const lines: string[] = [];
    const rl = createInterface({ input: client.stdout! });
    rl.on('line', (l) => lines.push(l));
    await waitFor('first answer', () => lines.length >= 1, 15_000).catch(() => assert.fail(`client: ${err}`));
    const first = JSON.parse(lines[0]!);
    assert.equal(first.status, 200);
    assert.equal(first.fp, a.fp);
    assert.equal(first.hsts, 'max-age=31536000');
    writeFileSync(join(dir, 'server.crt'), readFileSync(b.cert));
    writeFileSync(join(dir, 'server.key'), readFileSync(b.key), { mode: 0o600 });
    const mark = log.length;
    server!.kill('SIGHUP');
    await waitFor('reload logged', () => log.slice(mark).includes('certificate reloaded'), 10_000);
    client.stdin!.write('go\n');
    await waitFor('three more answers', () => lines.length >= 4, 15_000).catch(() => assert.fail(`client: ${lines.join('\n')}\n${err}`));
    const [, same, fresh, old] = lines.map((l) => JSON.parse(l));
    assert.equal(same.status, 200, 'the keep-alive connection still answers');
    assert.equal(same.port, first.port, 'on the same connection');
    assert.equal(same.fp, a.fp, 'with the certificate it was opened with');
    assert.equal(fresh.status, 200);
    assert.equal(fresh.fp, b.fp, 'a new connection sees the new certificate');
    assert.match(old.tls11, /^refused/);
    assert.equal(server!.exitCode, null, 'the server is still running');
    // a broken pair on SIGHUP keeps the old certificate
    writeFileSync(join(dir, 'server.crt'), 'not a certificate');
    const mark2 = log.length;
    server!.kill('SIGHUP');
    await waitFor('refusal logged', () => log.slice(mark2).includes('certificate not reloaded'), 10_000);
    assert.equal(ns.try('curl', ['-sf', '--cacert', b.cert, `${API}/v1/health`]).status, 0);
  });
});
