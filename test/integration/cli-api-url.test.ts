/**
 * `--api` / `TB_API` as people write them: the base URL with or without
 * `/v1`, with or without a trailing slash, all reaching the same routes of a
 * real API over HTTP (the control plane app on an ephemeral 127.0.0.1 port,
 * the real CLI in a child process), and over HTTPS through a TLS-terminating
 * proxy in front of it (a certificate made here with openssl, trusted by the
 * CLI through NODE_EXTRA_CA_CERTS). A URL that points beside the API gets one
 * error naming the URL the CLI asked and how the base URL is written.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { apiBaseUrl } from '../../src/cli/customer/api-client.js';
import { CliError } from '../../src/cli/customer/errors.js';
import { startHarness, type Harness } from '../control/harness.js';
import { REPO_ROOT } from '../support/repo.js';

const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');

describe('apiBaseUrl', () => {
  it('drops a trailing slash and a trailing /v1, keeps scheme, port and any prefix', () => {
    for (const raw of ['http://exit:8080', 'http://exit:8080/', 'http://exit:8080/v1', 'http://exit:8080/v1/', 'http://exit:8080//v1//']) {
      assert.equal(apiBaseUrl(raw), 'http://exit:8080', raw);
    }
    assert.equal(apiBaseUrl('https://vpn.example/v1'), 'https://vpn.example');
    assert.equal(apiBaseUrl('https://vpn.example:443/'), 'https://vpn.example');
    assert.equal(apiBaseUrl('https://example.org/vpn/v1/'), 'https://example.org/vpn');
    assert.equal(apiBaseUrl('http://[::1]:8080/v1'), 'http://[::1]:8080');
    assert.equal(apiBaseUrl('http://exit:8080/v10'), 'http://exit:8080/v10', 'only a whole /v1 segment is the version');
  });

  it('refuses what is not an http(s) base URL', () => {
    assert.throws(() => apiBaseUrl('exit:8080'), CliError);
    assert.throws(() => apiBaseUrl('ftp://exit/'), /must be http or https/);
    assert.throws(() => apiBaseUrl('http://exit:8080/v1?x=1'), /no query or fragment/);
    assert.throws(() => apiBaseUrl('not a url'), /not a URL/);
  });
});

describe('tunnelbyte --api / TB_API over HTTP', () => {
  let h: Harness;
  let other: Server;
  let otherUrl: string;
  let tls: Server;
  let tlsUrl: string;
  let caFile: string;
  const dirs: string[] = [];

  /** The CLI as a person runs it, on a machine of its own (config dir), with `env` added. */
  const cli = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> => {
    const home = mkdtempSync(join(tmpdir(), 'tb-cli-url-'));
    dirs.push(home);
    const base = { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: join(home, 'config'), TB_FINGERPRINT: `fp-url-${Math.random().toString(36).slice(2)}` };
    return new Promise((resolve) => {
      execFile(process.execPath, [TB, ...args], { env: { ...base, ...env }, timeout: 30_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  };

  before(async () => {
    h = await startHarness();
    // Not the API: a web server that answers 404 pages (what a wrong host or port often is).
    other = createServer((_req, res) => {
      res.statusCode = 404;
      res.setHeader('content-type', 'text/html');
      res.end('<html><body>404 Not Found</body></html>');
    });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;

    const certDir = mkdtempSync(join(tmpdir(), 'tb-cli-url-tls-'));
    dirs.push(certDir);
    caFile = join(certDir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(certDir, 'key.pem'), '-out', caFile], { stdio: 'ignore' });
    tls = createHttpsServer({ key: readFileSync(join(certDir, 'key.pem')), cert: readFileSync(caFile) }, (req, res) => {
      const up = request(h.url + req.url, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode!, r.headers);
        r.pipe(res);
      });
      req.pipe(up);
    });
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    tlsUrl = `https://127.0.0.1:${(tls.address() as AddressInfo).port}`;
  });

  after(async () => {
    await h.close();
    for (const srv of [other, tls]) {
      srv.closeAllConnections();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  for (const suffix of ['', '/', '/v1', '/v1/']) {
    it(`TB_API=…${suffix || ' (bare)'} and --api …${suffix || ' (bare)'} reach the API`, async () => {
      for (const [args, env] of [
        [['regions', '--json'], { TB_API: h.url + suffix }],
        [['regions', '--json', '--api', h.url + suffix], {}],
      ] as const) {
        const r = await cli([...args], env);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(JSON.parse(r.stdout).regions.map((x: { id: string }) => x.id), ['local']);
      }
      // an authenticated round trip too: signup, then usage with the cached token
      const s = await cli(['signup'], { TB_API: h.url + suffix });
      assert.equal(s.code, 0, s.stderr);
    });
  }

  for (const suffix of ['', '/v1/']) {
    it(`https: TB_API=https://…${suffix || ' (bare)'} reaches the API through TLS`, async () => {
      const r = await cli(['regions', '--json'], { TB_API: tlsUrl + suffix, NODE_EXTRA_CA_CERTS: caFile });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout).regions.map((x: { id: string }) => x.id), ['local']);
    });
  }

  it('a base URL beside the API: one error naming the URL asked, and how the base URL is written', async () => {
    const r = await cli(['regions'], { TB_API: `${h.url}/api` });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines[0], `tunnelbyte: GET ${h.url}/api/v1/regions answered 404 not found: no tunnelbyte API route there`);
    assert.match(lines[1]!, /--api \/ TB_API is the server's base URL, http\(s\):\/\/HOST\[:PORT\]/);
    assert.equal(lines.length, 2);
  });

  it('a server that is not the API (an HTML 404) gets the same error', async () => {
    const r = await cli(['regions', '--api', `${otherUrl}/v1/`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^tunnelbyte: GET ${otherUrl}/v1/regions answered 404 not found`));
  });

  it("a 404 from the API's own handlers keeps the API's message", async () => {
    const env = { TB_API: `${h.url}/v1` };
    const home = mkdtempSync(join(tmpdir(), 'tb-cli-url-'));
    dirs.push(home);
    const same = { ...env, HOME: home, XDG_CONFIG_HOME: join(home, 'config'), TB_FINGERPRINT: `fp-url-own-${process.pid}` };
    assert.equal((await cli(['signup'], same)).code, 0);
    const r = await cli(['status', 'ses_doesnotexist'], same);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'tunnelbyte: no such session\n');
  });
});
