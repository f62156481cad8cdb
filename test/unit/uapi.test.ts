// The UAPI text protocol against an in-memory device: every key round trips,
// malformed requests get wireguard-go's errno values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Device } from '../../src/device/device.js';
import { ManualClock } from '../../src/protocol/clock.js';
import { DEFAULT_UAPI_LIMITS, UapiError, UapiSession, UAPI_EADDRINUSE, type UapiTarget } from '../../src/device/uapi.js';
import { nodeX25519 } from '../../src/crypto/x25519.js';

function target(): UapiTarget & { sent: number } {
  let port = 0;
  let mark = 0;
  const t = {
    sent: 0,
    device: new Device({ clock: new ManualClock(), sendToNetwork: (b) => void (t.sent += b.count), writeToTun: () => {} }),
    listenPort: () => port,
    setListenPort: (p: number) => {
      if (p === 1) throw new UapiError(UAPI_EADDRINUSE, 'port in use');
      port = p;
    },
    fwmark: () => mark,
    setFwmark: (m: number) => void (mark = m),
    isUp: () => true,
  };
  return t;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('set then get: every key round trips', () => {
  const t = target();
  const s = new UapiSession(t);
  const sk = nodeX25519.generatePrivateKey();
  const peer = nodeX25519.publicKey(nodeX25519.generatePrivateKey());
  const psk = new Uint8Array(32).fill(7);
  const req = [
    'set=1',
    `private_key=${hex(sk)}`,
    'listen_port=51999',
    'fwmark=4660',
    'replace_peers=true',
    `public_key=${hex(peer)}`,
    `preshared_key=${hex(psk)}`,
    'endpoint=[2001:db8::1]:51820',
    'persistent_keepalive_interval=25',
    'replace_allowed_ips=true',
    'allowed_ip=10.0.0.0/8',
    'allowed_ip=fd00::/64',
    'protocol_version=1',
    '',
    '',
  ].join('\n');
  assert.equal(s.feed(req), 'errno=0\n\n');
  const got = s.feed('get=1\n\n');
  assert.match(got, new RegExp(`^private_key=${hex(sk)}\nlisten_port=51999\nfwmark=4660\npublic_key=${hex(peer)}\npreshared_key=${hex(psk)}\nprotocol_version=1\nendpoint=\\[2001:db8::1\\]:51820\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=148\nrx_bytes=0\npersistent_keepalive_interval=25\n`));
  assert.ok(got.includes('allowed_ip=10.0.0.0/8\n') && got.includes('allowed_ip=fd00::/64\n'));
  assert.ok(got.endsWith('errno=0\n\n'));
  // Switching persistent keepalive on sent a handshake initiation (no session yet): tx_bytes=148 above.
  assert.equal(t.sent, 1);

  // update_only for an unknown peer is ignored; remove removes; replace_allowed_ips replaces.
  const other = nodeX25519.publicKey(nodeX25519.generatePrivateKey());
  assert.equal(s.feed(`set=1\npublic_key=${hex(other)}\nupdate_only=true\nallowed_ip=1.2.3.4/32\n\n`), 'errno=0\n\n');
  assert.ok(!s.feed('get=1\n\n').includes(hex(other)));
  assert.equal(s.feed(`set=1\npublic_key=${hex(peer)}\nreplace_allowed_ips=true\nallowed_ip=192.0.2.0/24\n\n`), 'errno=0\n\n');
  const g2 = s.feed('get=1\n\n');
  assert.ok(g2.includes('allowed_ip=192.0.2.0/24') && !g2.includes('10.0.0.0/8'));
  assert.equal(s.feed(`set=1\npublic_key=${hex(peer)}\nremove=true\n\n`), 'errno=0\n\n');
  assert.ok(!s.feed('get=1\n\n').includes('public_key='));
  // a zero private key clears it
  assert.equal(s.feed(`set=1\nprivate_key=${'0'.repeat(64)}\n\n`), 'errno=0\n\n');
  assert.ok(!s.feed('get=1\n\n').includes('private_key='));
});

test('errors: bad keys and values are -22, malformed lines -71, port in use -98; the connection goes on', () => {
  const t = target();
  const s = new UapiSession(t);
  const pk = hex(nodeX25519.publicKey(nodeX25519.generatePrivateKey()));
  const cases: [string, string][] = [
    ['set=1\nfoo=bar\n\n', 'errno=-22\n\n'],
    ['set=1\nfoo\n\n', 'errno=-71\n\n'],
    ['set=1\nlisten_port=abc\n\n', 'errno=-22\n\n'],
    ['set=1\nlisten_port=70000\n\n', 'errno=-22\n\n'],
    ['set=1\nlisten_port=1\n\n', 'errno=-98\n\n'],
    ['set=1\nprivate_key=zz\n\n', 'errno=-22\n\n'],
    [`set=1\npublic_key=${pk}\nallowed_ip=1.2.3.4\n\n`, 'errno=-22\n\n'],
    [`set=1\npublic_key=${pk}\nallowed_ip=1.2.3.4/33\n\n`, 'errno=-22\n\n'],
    [`set=1\npublic_key=${pk}\nendpoint=nothost\n\n`, 'errno=-22\n\n'],
    [`set=1\npublic_key=${pk}\nprotocol_version=2\n\n`, 'errno=-22\n\n'],
    [`set=1\npublic_key=${pk}\npersistent_keepalive_interval=-1\n\n`, 'errno=-22\n\n'],
    [`set=1\npublic_key=${pk}\nlisten_port=1\n\n`, 'errno=-22\n\n'],
    ['set=1\nreplace_peers=yes\n\n', 'errno=-22\n\n'],
  ];
  for (const [req, want] of cases) assert.equal(s.feed(req), want, JSON.stringify(req));
  assert.ok(s.feed('get=1\n\n').endsWith('errno=0\n\n'));
  // An unknown operation closes the connection without a reply, as wireguard-go does.
  assert.equal(s.feed('hello=1\n\n'), '');
  assert.ok(s.closed);
});

test('requests may arrive in arbitrary chunks', () => {
  const s = new UapiSession(target());
  const req = 'set=1\nlisten_port=4242\n\nget=1\n\n';
  let out = '';
  for (const ch of req) out += s.feed(ch);
  assert.equal(out, 'errno=0\n\nlisten_port=4242\nerrno=0\n\n');
});

test('130,560 allowed IPs on one peer: set and listed back', () => {
  const t = target();
  const s = new UapiSession(t);
  const pk = hex(nodeX25519.publicKey(nodeX25519.generatePrivateKey()));
  const lines = ['set=1', `public_key=${pk}`];
  for (let i = 0; i < 130_560; i++) lines.push(`allowed_ip=10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}/32`);
  assert.equal(s.feed(lines.join('\n') + '\n\n'), 'errno=0\n\n');
  const got = s.feed('get=1\n\n');
  assert.equal(got.split('\n').filter((l) => l.startsWith('allowed_ip=')).length, 130_560);
});

test('an unterminated set=1 is capped: errno=-71 and close once the default limit is passed, nothing applied', () => {
  const t = target();
  const s = new UapiSession(t);
  const peer = hex(nodeX25519.publicKey(nodeX25519.generatePrivateKey()));
  assert.equal(s.feed(`set=1\npublic_key=${peer}\n`), '');
  // 2^20 lines of allowed IPs, fed in 64 KiB-ish chunks like a socket delivers them, never the empty line
  const line = 'allowed_ip=10.0.0.1/32\n';
  const chunk = line.repeat(2800);
  let reply = '';
  let lines = 1;
  while (!s.closed && lines < DEFAULT_UAPI_LIMITS.maxSetLines + 10_000) {
    reply += s.feed(chunk);
    lines += 2800;
  }
  assert.ok(s.closed, 'the session closes');
  assert.equal(reply, 'errno=-71\n\n');
  assert.ok(lines <= DEFAULT_UAPI_LIMITS.maxSetLines + 2800, `closed within the limit (${lines} lines)`);
  assert.equal(t.device.peerCount, 0, 'nothing of the oversized operation is applied');
  assert.equal(s.feed('get=1\n\n'), '', 'a closed session answers nothing more');
});

test('set=1 caps count bytes too, and an operation within the caps still applies', () => {
  const t = target();
  const small = { maxSetLines: 100, maxSetBytes: 2000 };
  const peer = hex(nodeX25519.publicKey(nodeX25519.generatePrivateKey()));
  const ok = new UapiSession(t, () => {}, small);
  assert.equal(ok.feed(`set=1\npublic_key=${peer}\n${'allowed_ip=10.0.0.1/32\n'.repeat(20)}\n`), 'errno=0\n\n');
  assert.equal(t.device.peerCount, 1);
  const big = new UapiSession(t, () => {}, small);
  assert.equal(big.feed(`set=1\npublic_key=${peer}\nallowed_ip=${'1'.repeat(1000)}\nallowed_ip=${'1'.repeat(1000)}\n`), 'errno=-71\n\n');
  assert.ok(big.closed);
});
