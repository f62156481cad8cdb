// The SOCKS5 (RFC 1928/1929) and HTTP-proxy parsers on arbitrary input: they
// never throw, every answer is one of the protocol's (more / a value / the
// reply code), a valid message parses to what was encoded whatever follows it,
// and every proper prefix of a valid message asks for more.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatIPv4, formatIPv6 } from '../../src/io/ip-address.js';
import {
  ATYP_DOMAIN,
  ATYP_IPV4,
  ATYP_IPV6,
  encodeDatagram,
  encodeReply,
  MAX_GREETING,
  MAX_REQUEST,
  MAX_USERPASS,
  parseDatagram,
  parseGreeting,
  parseRequest,
  parseUserPass,
  Rep,
} from '../../src/userspace/socks5-wire.js';
import { endToEndHeaders, parseAbsoluteUri, parseAuthority, parseBasicCredentials } from '../../src/userspace/http-proxy-wire.js';

const bytes = fc.uint8Array({ maxLength: 600 });
const REPS = new Set<number>(Object.values(Rep));

test('SOCKS5 parsers: any bytes give more, a value within the input, or an error; never a throw', () => {
  fc.assert(
    fc.property(bytes, (b) => {
      for (const r of [parseGreeting(b), parseUserPass(b), parseRequest(b)]) {
        assert.ok(['more', 'ok', 'error', 'reject'].includes(r.kind));
        if (r.kind === 'ok') assert.ok(r.used <= b.length && r.used > 0);
        if (r.kind === 'reject') assert.ok(REPS.has(r.rep) && r.rep !== Rep.succeeded);
      }
      const d = parseDatagram(b);
      if (d) assert.ok(d.data.length <= b.length);
    }),
    { numRuns: 3000 },
  );
});

test('SOCKS5 parsers: a message never needs more than its phase bound (the server may close at the bound)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: MAX_USERPASS, maxLength: MAX_USERPASS + 10 }), (b) => {
      assert.notEqual(parseGreeting(b.subarray(0, MAX_GREETING)).kind, 'more');
      assert.notEqual(parseUserPass(b.subarray(0, MAX_USERPASS)).kind, 'more');
      assert.notEqual(parseRequest(b.subarray(0, MAX_REQUEST)).kind, 'more');
    }),
    { numRuns: 2000 },
  );
});

const domain = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,60}$/).filter((s) => !/^[0-9.]+$/.test(s));
const address = fc.oneof(
  fc.uint8Array({ minLength: 4, maxLength: 4 }).map((a) => ({ atyp: ATYP_IPV4, raw: a, host: formatIPv4(a), type: 'ip' as const })),
  fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => ({ atyp: ATYP_IPV6, raw: a, host: formatIPv6(a), type: 'ip' as const })),
  domain.map((d) => ({ atyp: ATYP_DOMAIN, raw: Buffer.concat([Buffer.from([d.length]), Buffer.from(d)]), host: d, type: 'domain' as const })),
);

test('SOCKS5 request: encoded CONNECT/UDP ASSOCIATE parse back, with any trailing bytes left alone; prefixes need more', () => {
  fc.assert(
    fc.property(fc.constantFrom(1, 3), address, fc.integer({ min: 0, max: 65535 }), fc.uint8Array({ maxLength: 40 }), (cmd, a, port, tail) => {
      const msg = Buffer.concat([Buffer.from([5, cmd, 0, a.atyp]), a.raw, Buffer.from([port >> 8, port & 0xff])]);
      const r = parseRequest(Buffer.concat([msg, tail]));
      assert.equal(r.kind, 'ok');
      if (r.kind !== 'ok') return;
      assert.deepEqual(r.value, { cmd, address: { type: a.type, host: a.host }, port });
      assert.equal(r.used, msg.length);
      for (let i = 0; i < msg.length; i++) assert.equal(parseRequest(msg.subarray(0, i)).kind, 'more', `prefix ${i}`);
    }),
    { numRuns: 1000 },
  );
});

test('SOCKS5 request: BIND and unknown commands get REP 07, unknown address types REP 08', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 255 }).filter((c) => c !== 1 && c !== 3), address, (cmd, a) => {
      const r = parseRequest(Buffer.concat([Buffer.from([5, cmd, 0, a.atyp]), a.raw, Buffer.from([0, 80])]));
      assert.deepEqual(r.kind === 'reject' && r.rep, Rep.commandNotSupported);
    }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 255 }).filter((t) => t !== 1 && t !== 3 && t !== 4), (atyp) => {
      const r = parseRequest(Buffer.from([5, 1, 0, atyp, 1, 2, 3, 4, 0, 80]));
      assert.deepEqual(r.kind === 'reject' && r.rep, Rep.addressTypeNotSupported);
    }),
  );
});

test('SOCKS5 greeting and RFC 1929 request round trips', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 255 }), fc.uint8Array({ maxLength: 255 }), fc.uint8Array({ maxLength: 255 }), (methods, user, pass) => {
      const g = Buffer.concat([Buffer.from([5, methods.length]), methods]);
      const gr = parseGreeting(g);
      assert.deepEqual(gr, { kind: 'ok', value: { methods: Array.from(methods) }, used: g.length });
      const u = Buffer.concat([Buffer.from([1, user.length]), user, Buffer.from([pass.length]), pass]);
      const ur = parseUserPass(u);
      assert.equal(ur.kind, 'ok');
      if (ur.kind === 'ok') {
        assert.deepEqual([...ur.value.user], [...user]);
        assert.deepEqual([...ur.value.password], [...pass]);
      }
      for (let i = 0; i < u.length; i++) assert.equal(parseUserPass(u.subarray(0, i)).kind, 'more');
    }),
  );
});

test('SOCKS5 replies and relayed datagrams: what the server encodes, a client parses back', () => {
  fc.assert(
    fc.property(address.filter((a) => a.type === 'ip'), fc.integer({ min: 0, max: 65535 }), fc.uint8Array({ maxLength: 200 }), (a, port, data) => {
      const rep = encodeReply(Rep.succeeded, a.host, port);
      assert.deepEqual([...rep.subarray(0, 4)], [5, 0, 0, a.atyp]);
      assert.equal(rep.readUInt16BE(rep.length - 2), port);
      const d = parseDatagram(encodeDatagram(a.host, port, data));
      assert.deepEqual(d && { frag: d.frag, address: d.address, port: d.port, data: [...d.data] }, { frag: 0, address: { type: 'ip', host: a.host }, port, data: [...data] });
    }),
  );
});

test('HTTP proxy targets and fields: never a throw on any string; hop-by-hop fields never forwarded', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 100 }), (s, t) => {
      for (const x of [s, t, `http://${s}`, `${s}:${t}`]) {
        const a = parseAuthority(x);
        if (a) assert.ok(a.port >= 1 && a.port <= 65535);
        const u = parseAbsoluteUri(x);
        if (u) assert.ok(u.path.startsWith('/'));
        parseBasicCredentials(x);
      }
    }),
    { numRuns: 3000 },
  );
  const hop = fc.constantFrom('Connection', 'keep-alive', 'Proxy-Authorization', 'TE', 'Trailer', 'Transfer-Encoding', 'Upgrade', 'Proxy-Connection', 'X-Named');
  const field = fc.tuple(fc.oneof(hop, fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,15}$/)), fc.string({ maxLength: 30 }));
  fc.assert(
    fc.property(fc.array(field, { maxLength: 12 }), (fields) => {
      const raw = [...fields.flat(), 'Connection', 'x-named'];
      const out = endToEndHeaders(raw).map(([n]) => n.toLowerCase());
      for (const n of ['connection', 'keep-alive', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection', 'x-named']) assert.ok(!out.includes(n), n);
      // A generated Connection or Proxy-Connection field may name other generated fields: those go too (RFC 9110 §7.6.1).
      const named = new Set(fields.filter(([n]) => /^(proxy-)?connection$/i.test(n)).flatMap(([, v]) => v.split(',').map((t) => t.trim().toLowerCase())));
      const kept = fields.filter(([n]) => !/^(connection|keep-alive|proxy-authorization|te|trailer|transfer-encoding|upgrade|proxy-connection|x-named)$/i.test(n) && !named.has(n.toLowerCase()));
      assert.equal(out.length, kept.length);
    }),
  );
});

test('HTTP proxy targets: authority and absolute forms', () => {
  assert.deepEqual(parseAuthority('example.test:443'), { target: { type: 'domain', host: 'example.test' }, port: 443 });
  assert.deepEqual(parseAuthority('[2001:db8::1]:8443'), { target: { type: 'ip', host: '2001:db8::1' }, port: 8443 });
  assert.deepEqual(parseAuthority('192.0.2.1:80'), { target: { type: 'ip', host: '192.0.2.1' }, port: 80 });
  for (const bad of ['example.test', 'example.test:0', 'example.test:65536', '2001:db8::1:80', ':80', 'a b:80', 'x..y:80']) assert.equal(parseAuthority(bad), null, bad);
  assert.deepEqual(parseAbsoluteUri('http://Example.test:8080/a/b?c=d'), { target: { type: 'domain', host: 'example.test' }, port: 8080, path: '/a/b?c=d', hostHeader: 'example.test:8080' });
  assert.deepEqual(parseAbsoluteUri('http://[2001:db8::2]/'), { target: { type: 'ip', host: '2001:db8::2' }, port: 80, path: '/', hostHeader: '[2001:db8::2]' });
  for (const bad of ['/index.html', 'https://example.test/', 'ftp://x/', 'http://user:pw@x/', 'http://']) assert.equal(parseAbsoluteUri(bad), null, bad);
  assert.deepEqual(parseBasicCredentials(`Basic ${Buffer.from('ann:pa:ss').toString('base64')}`), { user: 'ann', password: 'pa:ss' });
  assert.equal(parseBasicCredentials('Bearer abc'), null);
});
