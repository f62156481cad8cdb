// The HTTP proxy over real loopback sockets, through a dialer on the host's own
// sockets (test/support/loopback-dialer.ts): absolute-URI requests forwarded
// with hop-by-hop fields removed (both ways), bodies both ways, CONNECT, and
// the error replies (400, 407, 502) for garbage, bad targets and unreachable
// destinations.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer, request, type Server as HttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import fc from 'fast-check';
import { createHttpProxy } from '../../src/userspace/http-proxy.js';
import { loopbackDialer } from '../support/loopback-dialer.js';

const listen = (s: Server | HttpServer): Promise<number> => new Promise((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));

/** Raw bytes in, everything until close out. */
function raw(port: number, bytes: Buffer | string, endAfter = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => reject(new Error(`no close within 10 s; got ${JSON.stringify(got)}`)), 10_000);
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    s.on('error', () => {});
    s.on('connect', () => (endAfter ? s.end(bytes) : s.write(bytes)));
  });
}

let origin: HttpServer;
let originPort: number;
let echo: Server;
let echoPort: number;
let proxy: Server;
let proxyPort: number;
const dialer = loopbackDialer({ 'origin.test': ['127.0.0.1'] });

before(async () => {
  // The origin answers with what it received: method, path, fields, body; and sets hop-by-hop fields of its own.
  origin = createHttpServer((req, res) => {
    const body: Buffer[] = [];
    req.on('data', (d) => body.push(d));
    req.on('end', () => {
      res.setHeader('Connection', 'close, X-Origin-Hop');
      res.setHeader('X-Origin-Hop', 'dropped');
      res.setHeader('Keep-Alive', 'timeout=5');
      res.setHeader('X-End', 'kept');
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.rawHeaders, body: Buffer.concat(body).toString() }));
    });
  });
  originPort = await listen(origin);
  echo = createServer((s) => s.on('data', (d) => s.write(d)));
  echoPort = await listen(echo);
  proxy = createHttpProxy({ dialer, headersTimeoutMs: 2000 });
  proxyPort = await listen(proxy);
});
after(() => {
  origin.close();
  echo.close();
  proxy.close();
});

function viaProxy(method: string, url: string, headers: Record<string, string>, body?: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port: proxyPort, method, path: url, headers, agent: false }, (res) => {
      const b: Buffer[] = [];
      res.on('data', (d: Buffer) => b.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(b).toString() }));
    });
    r.on('error', reject);
    r.end(body);
  });
}

describe('HTTP proxy: absolute-URI requests', () => {
  test('GET by name and by IP: forwarded in origin form, hop-by-hop fields (and those Connection names) removed both ways', async () => {
    for (const host of ['origin.test', '127.0.0.1']) {
      const r = await viaProxy('GET', `http://${host}:${originPort}/p/q?x=1`, {
        'Proxy-Connection': 'keep-alive',
        Connection: 'X-Secret-Hop',
        'X-Secret-Hop': 'no',
        TE: 'trailers',
        'Proxy-Authorization': 'Basic Zm9vOmJhcg==',
        'X-Mine': 'yes',
      });
      assert.equal(r.status, 200);
      const seen = JSON.parse(r.body) as { method: string; url: string; headers: string[] };
      assert.equal(seen.method, 'GET');
      assert.equal(seen.url, '/p/q?x=1');
      const names = seen.headers.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
      assert.ok(names.includes('x-mine'));
      for (const n of ['proxy-connection', 'x-secret-hop', 'te', 'proxy-authorization', 'keep-alive']) assert.ok(!names.includes(n), n);
      assert.equal(seen.headers[seen.headers.findIndex((n) => n.toLowerCase() === 'host') + 1], `${host}:${originPort}`);
      assert.equal(r.headers['x-end'], 'kept');
      assert.equal(r.headers['x-origin-hop'], undefined);
    }
  });

  test('a POST body goes through byte-exact', async () => {
    const body = 'é'.repeat(50_000);
    const r = await viaProxy('POST', `http://origin.test:${originPort}/up`, { 'Content-Type': 'text/plain' }, body);
    const got = (JSON.parse(r.body) as { body: string }).body;
    assert.equal(got.length, body.length);
    assert.ok(got === body, 'the body arrived byte-exact');
  });

  test('origin-form and https targets get 400; an unreachable destination 502; an unknown name 502', async () => {
    assert.equal((await viaProxy('GET', '/index.html', {})).status, 400);
    assert.equal((await viaProxy('GET', 'https://origin.test/', {})).status, 400);
    const free = createServer();
    const freePort = await listen(free);
    await new Promise((r) => free.close(r));
    const refused = await viaProxy('GET', `http://127.0.0.1:${freePort}/`, {});
    assert.equal(refused.status, 502);
    assert.match(refused.body, /ECONNREFUSED/);
    assert.equal((await viaProxy('GET', 'http://nowhere.test/', {})).status, 502);
  });
});

describe('HTTP proxy: CONNECT', () => {
  test('a tunnel to the echo; bytes that came with the request head are delivered first', async () => {
    const got = await new Promise<string>((resolve) => {
      const s = connect(proxyPort, '127.0.0.1');
      let text = '';
      s.on('data', (d) => {
        text += d.toString();
        if (text.endsWith('early-late')) {
          s.destroy();
          resolve(text);
        }
      });
      s.write(`CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\nHost: 127.0.0.1:${echoPort}\r\n\r\nearly-`);
      setTimeout(() => s.write('late'), 100);
    });
    assert.equal(got, 'HTTP/1.1 200 Connection Established\r\n\r\nearly-late');
  });

  test('bad targets 400, refused 502, each with a closed connection', async () => {
    assert.match(await raw(proxyPort, 'CONNECT nohost HTTP/1.1\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await raw(proxyPort, 'CONNECT [::1:80 HTTP/1.1\r\n\r\n'), /^HTTP\/1\.1 400 /);
    const free = createServer();
    const freePort = await listen(free);
    await new Promise((r) => free.close(r));
    assert.match(await raw(proxyPort, `CONNECT 127.0.0.1:${freePort} HTTP/1.1\r\n\r\n`), /^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*ECONNREFUSED/);
  });
});

describe('HTTP proxy: garbage and credentials', () => {
  test('garbage gets a 4xx and a closed connection, whatever the bytes; the proxy keeps serving', async () => {
    assert.match(await raw(proxyPort, '\x00\x01\x02garbage\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await raw(proxyPort, `GET http://x/ HTTP/1.1\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`), /^HTTP\/1\.1 431 /);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 400 }), async (b) => {
        // a line end so that every input is a complete (if malformed) head
        const reply = await raw(proxyPort, Buffer.concat([Buffer.from(b), Buffer.from('\r\n\r\n')]), true);
        if (reply.length > 0) assert.match(reply, /^HTTP\/1\.1 4\d\d /);
      }),
      { numRuns: 80 },
    );
    assert.equal((await viaProxy('GET', `http://127.0.0.1:${originPort}/still`, {})).status, 200);
  });

  test('with credentials: 407 with a challenge without them, 200 with them (GET and CONNECT)', async () => {
    const p = createHttpProxy({ dialer, credentials: { user: 'ann', password: 'pw' } });
    const port = await listen(p);
    const basic = `Basic ${Buffer.from('ann:pw').toString('base64')}`;
    const no = await raw(port, `GET http://127.0.0.1:${originPort}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.match(no, /^HTTP\/1\.1 407 [\s\S]*Proxy-Authenticate: Basic realm="tunnelbyte proxy"/i);
    const yes = await raw(port, `GET http://127.0.0.1:${originPort}/ HTTP/1.1\r\nHost: x\r\nProxy-Authorization: ${basic}\r\nConnection: close\r\n\r\n`);
    assert.match(yes, /^HTTP\/1\.1 200 /);
    assert.match(await raw(port, `CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\nProxy-Authorization: Basic ${Buffer.from('ann:no').toString('base64')}\r\n\r\n`), /^HTTP\/1\.1 407 /);
    p.close();
  });
});
