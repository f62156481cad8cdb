// The device's destination policy against a slow reference: every address
// and prefix as a bigint, "refused" recomputed from the rule in the file
// comment of src/device/destination-policy.ts by plain range checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalPrefix, DestinationPolicy, REFUSED_BY_DEFAULT } from '../../src/device/destination-policy.js';
import { formatPrefix, parseIPv4, parseIPv6 } from '../../src/io/ip-address.js';

const bigOf = (b: Uint8Array): bigint => b.reduce((acc, x) => (acc << 8n) | BigInt(x), 0n);

function rangeOf(cidr: string): { family: 4 | 6; lo: bigint; hi: bigint } {
  const [addr, bits] = cidr.split('/') as [string, string];
  const family = addr.includes(':') ? 6 : 4;
  const width = family === 4 ? 32 : 128;
  const v = bigOf(family === 4 ? parseIPv4(addr)! : parseIPv6(addr)!);
  const host = (1n << BigInt(width - Number(bits))) - 1n;
  return { family, lo: v & ~host, hi: (v & ~host) | host };
}

function referenceRefuses(addr: Uint8Array, own: string[], allow: string[]): boolean {
  const family = addr.length === 4 ? 4 : 6;
  const v = bigOf(addr);
  const inAny = (cidrs: string[]) =>
    cidrs.some((c) => {
      const r = rangeOf(c.includes('/') ? c : `${c}/${c.includes(':') ? 128 : 32}`);
      return r.family === family && v >= r.lo && v <= r.hi;
    });
  return inAny(own) || (inAny(REFUSED_BY_DEFAULT.map((r) => r.cidr)) && !inAny(allow));
}

/** A packet with `addr` as its destination (the policy reads only that field). */
function packetTo(addr: Uint8Array): Uint8Array {
  const p = new Uint8Array(addr.length === 4 ? 20 : 40);
  p.set(addr, addr.length === 4 ? 16 : 24);
  return p;
}

const refuses = (policy: DestinationPolicy, addr: Uint8Array) =>
  addr.length === 4 ? policy.refuses4(packetTo(addr), 0) : policy.refuses6(packetTo(addr), 0);

// Addresses drawn near the interesting ranges as well as anywhere, so both answers are common.
const v4Addr = fc.oneof(
  fc.uint8Array({ minLength: 4, maxLength: 4 }),
  fc.tuple(fc.constantFrom(10, 100, 127, 169, 172, 192, 198, 224, 240, 255), fc.uint8Array({ minLength: 3, maxLength: 3 })).map(([a, rest]) => Uint8Array.of(a, ...rest)),
);
const v6Addr = fc.oneof(
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
  fc.tuple(fc.constantFrom(0x00, 0xfc, 0xfd, 0xfe, 0xff, 0x20), fc.uint8Array({ minLength: 15, maxLength: 15 })).map(([a, rest]) => Uint8Array.of(a, ...rest)),
);
const prefixArb = fc.oneof(
  fc.tuple(v4Addr, fc.integer({ min: 0, max: 32 })).map(([a, c]) => canonicalPrefix(formatPrefix(4, a, c))),
  fc.tuple(v6Addr, fc.integer({ min: 0, max: 128 })).map(([a, c]) => canonicalPrefix(formatPrefix(6, a, c))),
);

test('refused exactly when the reference says so, for any own and allowed ranges', () => {
  fc.assert(
    fc.property(fc.array(prefixArb, { maxLength: 4 }), fc.array(prefixArb, { maxLength: 4 }), fc.array(fc.oneof(v4Addr, v6Addr), { minLength: 1, maxLength: 30 }), (own, allow, addrs) => {
      const policy = new DestinationPolicy({ own, allow });
      for (const a of addrs) assert.equal(refuses(policy, a), referenceRefuses(a, own, allow), `${formatPrefix(a.length === 4 ? 4 : 6, a, a.length * 8)} own=${own} allow=${allow}`);
    }),
    { numRuns: 300 },
  );
});

test('the defaults: internet open; the exit, private, link-local, loopback, multicast and metadata refused', () => {
  const policy = new DestinationPolicy({ own: ['203.0.113.2', '2001:db8:ff::2', '10.64.0.0/10', 'fd12:3456::/64'], allow: [] });
  for (const open of ['1.1.1.1', '8.8.8.8', '198.51.100.7', '2606:4700:4700::1111', '2001:db8:ff::1']) assert.equal(policy.refusesAddress(open), false, open);
  for (const refused of [
    '203.0.113.2', // the exit itself
    '10.64.0.1', // a pool gateway
    '10.1.2.3', '172.16.0.1', '192.168.1.1', // RFC 1918
    '100.64.0.1', '100.100.100.200', // CGNAT, a metadata service inside it
    '169.254.169.254', 'fd00:ec2::254', // the metadata service
    '127.0.0.1', '::1', '0.0.0.0', '::',
    '224.0.0.251', 'ff02::1', '255.255.255.255',
    'fe80::1', 'fd12:3456::1', 'fc00::1',
    '::ffff:10.0.0.1', '::ffff:127.0.0.1',
  ]) {
    assert.equal(policy.refusesAddress(refused), true, refused);
  }
});

test('--allow-private opens a LAN, never the exit itself or its pools', () => {
  const policy = new DestinationPolicy({ own: ['192.168.77.1', '10.64.0.0/10'], allow: ['192.168.77.0/24', '10.0.0.0/8', 'fd77::/64'] });
  assert.equal(policy.refusesAddress('192.168.77.2'), false);
  assert.equal(policy.refusesAddress('fd77::2'), false);
  assert.equal(policy.refusesAddress('10.1.0.1'), false);
  assert.equal(policy.refusesAddress('192.168.77.1'), true, 'the exit\'s own LAN address');
  assert.equal(policy.refusesAddress('10.64.0.1'), true, 'the pool');
  assert.equal(policy.refusesAddress('192.168.78.1'), true, 'outside the allowed range');
  assert.equal(policy.refusesAddress('169.254.169.254'), true);
});

test('configuration ranges: canonical form, and a malformed one is refused', () => {
  assert.equal(canonicalPrefix('192.168.77.9/24'), '192.168.77.0/24');
  assert.equal(canonicalPrefix('fd77::9/64'), 'fd77::/64');
  for (const bad of ['192.168.77.0', '192.168.77.0/33', 'lan/24', 'fd77::/129']) assert.throws(() => canonicalPrefix(bad), RangeError, bad);
});
