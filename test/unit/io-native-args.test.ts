/**
 * The addon's own argument checks (native/src/args.cc): misuse throws a
 * TypeError or RangeError before any syscall, and nothing can make it read or
 * write outside the caller's buffers. Uses UDP sockets bound to 127.0.0.1
 * only, so it needs no root and sends nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultBinding, type NativeBinding, type NativeHandle } from '../../src/io/linux/binding.js';

const b: NativeBinding = defaultBinding();
const udp = (): NativeHandle => b.udpOpen(4, '127.0.0.1', 0, 0, '');

test('the addon exports its constants and functions', () => {
  assert.equal(b.constants.IFF_TUN, 1);
  assert.equal(b.constants.IFF_NO_PI, 0x1000);
  assert.equal(b.constants.EBADFD, 77);
  const h = udp();
  assert.ok(h.fd > 2);
  assert.ok(b.udpPort(h) > 0);
  h.close();
  assert.equal(h.fd, -1);
  h.close(); // idempotent
});

test('wrong argument counts and types are TypeErrors', () => {
  const h = udp();
  const bad = b as unknown as Record<string, (...a: unknown[]) => unknown>;
  assert.throws(() => bad.udpPort!(), /expected 1 arguments, got 0/);
  assert.throws(() => bad.udpPort!({}), TypeError);
  assert.throws(() => bad.udpPort!(h, 1), TypeError);
  assert.throws(() => bad.tunName!(h), /expected a TUN handle/);
  assert.throws(() => bad.udpOpen!(5, '', 0, 0, ''), RangeError);
  assert.throws(() => bad.udpOpen!(4, 'not an address', 0, 0, ''), /not an IPv4 address/);
  assert.throws(() => bad.udpOpen!(4, '', 65536, 0, ''), RangeError);
  assert.throws(() => bad.tunOpen!('a'.repeat(16), 0x1001, ''), /longer than 15/);
  assert.throws(() => bad.tunOpen!('tb\0x', 0x1001, ''), /NUL/);
  const data = new Uint8Array(4 * 256);
  const i32 = () => new Int32Array(4);
  const ep = new Uint8Array(4 * 20);
  assert.throws(() => bad.udpRecv!(h, new Uint16Array(4), i32(), i32(), ep, 256, 4, 0, i32()), /expected a Uint8Array/);
  assert.throws(() => bad.udpRecv!(h, data, new Uint32Array(4), i32(), ep, 256, 4, 0, i32()), /expected an Int32Array/);
  assert.throws(() => bad.udpRecv!(h, data, i32(), i32(), null, 256, 4, 0, i32()), /argument 4/);
  h.close();
});

test('batch bounds: slots, endpoints, results and packets must lie inside the buffers', () => {
  const h = udp();
  const data = new Uint8Array(4 * 256);
  const i32 = (n = 4) => new Int32Array(n);
  const ep = new Uint8Array(4 * 20);
  assert.throws(() => b.udpRecv(h, data, i32(), i32(), ep, 256, 5, 0, i32()), /count exceeds offsets/);
  assert.throws(() => b.udpRecv(h, data, i32(8), i32(8), new Uint8Array(8 * 20), 256, 5, 0, i32()), /count \* slotSize exceeds data/);
  assert.throws(() => b.udpRecv(h, data, i32(), i32(), new Uint8Array(3 * 20), 256, 4, 0, i32()), /count exceeds endpoints/);
  assert.throws(() => b.udpRecv(h, data, i32(), i32(), ep, 256, 4, 256, i32()), RangeError, 'headroom inside the slot');
  assert.throws(() => b.udpRecv(h, data, i32(), i32(), ep, 256, 4, 0, i32(2)), /at least 4/);
  assert.equal(b.udpRecv(h, data, i32(), i32(), ep, 256, 4, 0, i32()), 0, 'nothing pending');
  const offsets = Int32Array.of(0, 200, 0, 0);
  const lengths = Int32Array.of(10, 57, 0, 0);
  assert.throws(() => b.udpSend(h, data, offsets, lengths, ep, 256, 2, 0, i32()), /packet 1: offset 200 \+ length 57 outside its slot of 256/);
  lengths[1] = -1;
  offsets[1] = 0;
  assert.throws(() => b.udpSend(h, data, offsets, lengths, ep, 256, 2, 0, i32()), /packet 1/);
  // Two datagrams with no endpoint (family 0): refused one by one, not thrown.
  lengths[1] = 5;
  const res = i32();
  assert.equal(b.udpSend(h, data, offsets, lengths, ep, 256, 2, 0, res), 0);
  assert.deepEqual([...res], [0, 2, 89 /* EDESTADDRREQ */, 0]);
  h.close();
  assert.throws(() => b.udpPort(h), (e: NodeJS.ErrnoException) => e.code === 'ERR_HANDLE_CLOSED');
  assert.throws(() => h.poll(() => {}), /closed/);
});

test('syscall failures carry code, errno and syscall', () => {
  const h = udp();
  const port = b.udpPort(h);
  assert.throws(
    () => b.udpOpen(4, '127.0.0.1', port, 0, ''),
    (e: NodeJS.ErrnoException) => e.code === 'EADDRINUSE' && e.errno === 98 && e.syscall === 'bind',
  );
  assert.throws(() => b.udpOpen(4, '127.0.0.1', 0, 0, '/nonexistent/netns'), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
  h.close();
});
