// tunnel.resolve and tunnel.fetch between two userspace tunnels: a DNS
// responder and HTTP/HTTPS servers (node:http/https fed with TunnelSockets)
// on one side, undici's fetch through the other — no root, no sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as httpServer } from 'node:http';
import { createServer as httpsServer } from 'node:https';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryNetwork } from '../../src/io/memory.js';
import { generateKeyPair } from '../../src/crypto/wireguard-keys.js';
import { Tunnel } from 'tunnelbyte';
import { buildQuery } from '../../src/userspace/dns.js';

/** A self-signed certificate for svc.test (openssl). */
function certificate(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tb-cert-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=svc.test', '-addext', 'subjectAltName=DNS:svc.test', '-keyout', join(dir, 'k'), '-out', join(dir, 'c')], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'k'), 'utf8'), cert: readFileSync(join(dir, 'c'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Answers A/AAAA for svc.test (and a CNAME alias), NXDOMAIN for the rest. */
function dnsAnswer(q: Buffer): Buffer {
  const qend = q.indexOf(0, 12) + 5;
  const name = [];
  for (let o = 12; q[o]! > 0; o += q[o]! + 1) name.push(q.toString('latin1', o + 1, o + 1 + q[o]!));
  const type = q.readUInt16BE(qend - 4);
  const fqdn = name.join('.');
  const head = Buffer.from(q.subarray(0, qend));
  head.writeUInt16BE(0x8180, 2);
  const known = fqdn === 'svc.test' || fqdn === 'alias.test';
  if (!known) {
    head.writeUInt16BE(0x8183, 2); // NXDOMAIN
    head.writeUInt16BE(0, 6);
    return head;
  }
  const rrs: Buffer[] = [];
  let owner = Buffer.from([0xc0, 12]);
  if (fqdn === 'alias.test') {
    const target = buildQuery(0, 'svc.test', 1).subarray(12, 12 + 10);
    const rr = Buffer.alloc(12);
    owner.copy(rr, 0);
    rr.writeUInt16BE(5, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(60, 6);
    rr.writeUInt16BE(target.length, 10);
    rrs.push(rr, Buffer.from(target));
    owner = Buffer.from([0xc0, qend + 12]);
  }
  const data = type === 1 ? Buffer.from([10, 9, 0, 1]) : Buffer.from('fd090000000000000000000000000001', 'hex');
  const rr = Buffer.alloc(12);
  owner.copy(rr, 0);
  rr.writeUInt16BE(type, 2);
  rr.writeUInt16BE(1, 4);
  rr.writeUInt32BE(60, 6);
  rr.writeUInt16BE(data.length, 10);
  rrs.push(rr, data);
  head.writeUInt16BE(fqdn === 'alias.test' ? 2 : 1, 6);
  return Buffer.concat([head, ...rrs]);
}

test('resolve through the tunnel; fetch over HTTP and HTTPS by name', async () => {
  const ka = generateKeyPair();
  const kb = generateKeyPair();
  const net = new MemoryNetwork();
  const { key, cert } = certificate();
  const a = await Tunnel.start({
    config: `[Interface]\nPrivateKey = ${ka.privateKey}\nAddress = 10.9.0.1/24, fd09::1/64\n[Peer]\nPublicKey = ${kb.publicKey}\nAllowedIPs = 10.9.0.2/32, fd09::2/128\n`,
    bind: net.bind('192.0.2.1', 51820),
  });
  const b = await Tunnel.start({
    config: `[Interface]\nPrivateKey = ${kb.privateKey}\nAddress = 10.9.0.2/32, fd09::2/128\nDNS = 10.9.0.1, example.internal\n[Peer]\nPublicKey = ${ka.publicKey}\nEndpoint = 192.0.2.1:51820\nAllowedIPs = 10.9.0.0/24, fd09::/64\n`,
    bind: net.bind('192.0.2.2', 40000),
    tls: { ca: cert },
  });
  try {
    const dns = a.udp({ port: 53 });
    dns.on('message', (m: Buffer, r: { address: string; port: number }) => dns.send(dnsAnswer(m), r.port, r.address));
    assert.deepEqual(await b.resolve('svc.test'), ['10.9.0.1', 'fd09::1']);
    assert.deepEqual(await b.resolve('alias.test'), ['10.9.0.1', 'fd09::1'], 'CNAME followed');
    await assert.rejects(b.resolve('nope.test'), /ENOTFOUND/);
    assert.deepEqual(await b.resolve('10.9.0.1'), ['10.9.0.1']);

    const body = Buffer.alloc(3 << 20, 'x');
    const handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
      let n = 0;
      req.on('data', (d: Buffer) => (n += d.length));
      req.on('end', () => {
        if (req.url === '/big') res.end(body);
        else res.end(JSON.stringify({ method: req.method, url: req.url, host: req.headers.host, received: n, remote: req.socket.remoteAddress }));
      });
    };
    const web = httpServer(handler);
    const secure = httpsServer({ key, cert }, handler);
    a.listen(80, (s) => web.emit('connection', s));
    a.listen(443, (s) => secure.emit('connection', s));

    const r1 = await b.fetch('http://svc.test/hello?x=1', { method: 'POST', body: 'abc' });
    assert.equal(r1.status, 200);
    assert.deepEqual(await r1.json(), { method: 'POST', url: '/hello?x=1', host: 'svc.test', received: 3, remote: '10.9.0.2' });
    const r2 = await b.fetch('http://svc.test/big');
    assert.equal((await r2.arrayBuffer()).byteLength, body.length);
    const r3 = await b.fetch('https://svc.test/tls');
    const j3 = (await r3.json()) as Record<string, unknown>;
    assert.deepEqual([j3.method, j3.url, j3.host], ['GET', '/tls', 'svc.test'], 'HTTPS with the certificate checked for svc.test');
    const r4 = await b.fetch('http://[fd09::1]/six');
    assert.equal(((await r4.json()) as { remote: string }).remote, 'fd09::2');

    // tunnel.connect with a host name, like net.connect: resolved through the tunnel's DNS before the SYN.
    // The request is written before the name resolved: it waits in the socket and goes out after.
    const byName = b.connect(80, 'svc.test');
    const lookedUp = new Promise<unknown[]>((r) => byName.once('lookup', (...args: unknown[]) => r(args)));
    assert.equal(byName.remoteAddress, undefined, 'no address before the lookup');
    byName.write('GET /by-name HTTP/1.1\r\nHost: svc.test\r\nConnection: close\r\n\r\n');
    const reply = await new Promise<string>((resolve, reject) => {
      const parts: Buffer[] = [];
      byName.on('data', (d: Buffer) => parts.push(d));
      byName.on('end', () => resolve(Buffer.concat(parts).toString()));
      byName.on('error', reject);
    });
    assert.deepEqual(await lookedUp, [null, '10.9.0.1', 4, 'svc.test']);
    assert.equal(byName.remoteAddress, '10.9.0.1');
    assert.equal(byName.remotePort, 80);
    assert.match(reply, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(reply, /"url":"\/by-name","host":"svc.test","received":0,"remote":"10.9.0.2"/);
    // end() before the name resolved: the bytes and then the FIN go out once the connection exists (half-close).
    a.listen(81, (srv) => {
      const got: Buffer[] = [];
      srv.on('data', (d: Buffer) => got.push(d));
      srv.on('end', () => srv.end(`got ${Buffer.concat(got).toString()}`));
    }, { allowHalfOpen: true });
    const early = b.connect({ port: 81, host: 'svc.test', allowHalfOpen: true, noDelay: true });
    early.end('written early');
    const back: Buffer[] = [];
    early.on('data', (d: Buffer) => back.push(d));
    await new Promise((r) => early.once('end', r));
    assert.equal(Buffer.concat(back).toString(), 'got written early');
    assert.equal(early.connection.noDelay, true, 'the option set before the lookup reached the connection');
    // A name the tunnel's DNS does not know: net.connect's error, and no query left the tunnel for the host's resolver.
    const unknown = b.connect({ port: 80, host: 'nope.test' });
    const err = await new Promise<NodeJS.ErrnoException & { hostname?: string }>((r) => unknown.once('error', r));
    assert.deepEqual([err.code, err.syscall, err.hostname], ['ENOTFOUND', 'getaddrinfo', 'nope.test']);
    assert.throws(() => b.connect(0, 'svc.test'), RangeError);
    web.close();
    secure.close();
  } finally {
    a.close();
    b.close();
  }
});
