import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimiter } from '../../src/protocol/rate-limiter.js';
import { encodeEndpoint, ENDPOINT_SIZE } from '../../src/io/endpoint.js';

const rec = (address: string, port = 1) => {
  const r = new Uint8Array(ENDPOINT_SIZE);
  encodeEndpoint({ family: address.includes(':') ? 6 : 4, address, port }, r);
  return r;
};

test('burst of 5, then 20 per second', () => {
  const rl = new RateLimiter();
  const a = rec('192.0.2.1');
  let t = 0;
  for (let i = 0; i < 5; i++) assert.ok(rl.allow(a, 0, t), `burst ${i}`);
  assert.equal(rl.allow(a, 0, t), false);
  t += 49;
  assert.equal(rl.allow(a, 0, t), false);
  t += 1;
  assert.ok(rl.allow(a, 0, t), 'one token after 50 ms');
  // a full second refills 20 packets but the bucket holds at most 5
  t += 1000;
  let n = 0;
  while (rl.allow(a, 0, t)) n++;
  assert.equal(n, 5);
});

test('keys: IPv4 per address (any port), IPv6 per /64', () => {
  const rl = new RateLimiter();
  for (let i = 0; i < 5; i++) rl.allow(rec('192.0.2.1', i), 0, 0);
  assert.equal(rl.allow(rec('192.0.2.1', 99), 0, 0), false);
  assert.ok(rl.allow(rec('192.0.2.2'), 0, 0));
  for (let i = 0; i < 5; i++) assert.ok(rl.allow(rec(`2001:db8:1:2::${i + 1}`), 0, 0));
  assert.equal(rl.allow(rec('2001:db8:1:2:ffff::9'), 0, 0), false, 'same /64');
  assert.ok(rl.allow(rec('2001:db8:1:3::1'), 0, 0), 'another /64');
});

test('idle entries are collected', () => {
  const rl = new RateLimiter();
  rl.allow(rec('192.0.2.1'), 0, 0);
  rl.gc(500);
  assert.equal(rl.size, 1);
  rl.gc(1001);
  assert.equal(rl.size, 0);
});
