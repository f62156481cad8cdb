/**
 * The ping socket's argument checks, in the addon (native/src/ping.cc) and in
 * its wrapper (src/io/linux/ping.ts), and what pingSocketAllowed() says
 * against this host's net.ipv4.ping_group_range. Opens nothing it keeps and
 * sends nothing; needs no root (the privileged netstack-exit-echo test sends
 * echoes inside a namespace whose range it sets).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { defaultBinding } from '../../src/io/linux/binding.js';
import { openLinuxPingSocket, pingSocketAllowed } from '../../src/io/linux/ping.js';

test('pingOpen checks its arguments before any syscall', () => {
  const bad = defaultBinding() as unknown as Record<string, (...a: unknown[]) => unknown>;
  assert.equal(typeof bad.pingOpen, 'function');
  assert.throws(() => bad.pingOpen!(), /expected 2 arguments, got 0/);
  assert.throws(() => bad.pingOpen!(5, ''), RangeError);
  assert.throws(() => bad.pingOpen!('4', ''), TypeError);
  assert.throws(() => bad.pingOpen!(4, 7), TypeError);
});

test('openLinuxPingSocket validates its options', () => {
  assert.throws(() => openLinuxPingSocket(null as never), TypeError);
  assert.throws(() => openLinuxPingSocket({ family: 5 as never }), RangeError);
  assert.throws(() => openLinuxPingSocket({ family: 4, batchSize: 0 }), RangeError);
  assert.throws(() => openLinuxPingSocket({ family: 4, netns: '../x' }), TypeError);
  assert.throws(() => openLinuxPingSocket({ family: 4, binding: { ...defaultBinding(), pingOpen: undefined } }), /lacks pingOpen/);
});

test("pingSocketAllowed follows net.ipv4.ping_group_range and this process's group", () => {
  const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ping_group_range', 'utf8').trim().split(/\s+/).map(Number);
  const groups = new Set([process.getgid!(), ...(process.getgroups?.() ?? [])]);
  const inRange = [...groups].some((g) => g >= lo! && g <= hi!);
  assert.equal(pingSocketAllowed(4), inRange);
});
