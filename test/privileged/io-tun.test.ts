/**
 * The native TUN device (src/io/linux/tun.ts) against the kernel, inside
 * throwaway network namespaces: the kernel answers ICMP echo requests we
 * write, and we read its replies back in batches.
 */
import { spawnSync } from 'node:child_process';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { PacketBatch } from '../../src/io/batch.js';
import type { LinuxTun, LinuxTunOptions } from '../../src/io/linux/tun.js';
import { Netns, privilegedSkipReason, Scope, waitFor } from '../support/netns.js';
import { icmpEchoRequest, parseEchoReply } from '../support/packets.js';

const skip = privilegedSkipReason();
const scope = new Scope();
after(() => {
  scope.release();
});

const netns = (tag: string): Netns => scope.netns(tag);
const tun = (opts: LinuxTunOptions): LinuxTun => scope.tun(opts);

/** A batch holding `pkts` at offset `headroom`. */
function batchOf(pkts: Uint8Array[], headroom = 16, slotSize = 2048): PacketBatch {
  const b = new PacketBatch(pkts.length, slotSize);
  pkts.forEach((p, i) => {
    b.offsets[i] = headroom;
    b.lengths[i] = p.length;
    b.data.set(p, i * slotSize + headroom);
  });
  b.count = pkts.length;
  return b;
}

/** Collects echo replies (ignoring IPv6 chatter such as router solicitations) and packets per onBatch call. */
function collect(t: LinuxTun, headroom = 16): { replies: ReturnType<typeof parseEchoReply>[]; perCall: number[] } {
  const out = { replies: [] as ReturnType<typeof parseEchoReply>[], perCall: [] as number[] };
  t.start((b) => {
    out.perCall.push(b.count);
    for (let i = 0; i < b.count; i++) {
      assert.equal(b.offsets[i], headroom, 'packet placed at the headroom');
      const r = parseEchoReply(b.packet(i));
      if (r) out.replies.push({ ...r, payload: new Uint8Array(r.payload) });
    }
  }, headroom);
  return out;
}

/** Gives the TUN 10.77.N.1/24 inside `ns` and brings it up. */
function configure(ns: Netns, name: string, net = 77): void {
  ns.ip('addr', 'add', `10.${net}.0.1/24`, 'dev', name);
  ns.ip('link', 'set', name, 'up');
}

test('creates a TUN inside a namespace, sets MTU and up/down, and answers a ping through batches', { skip: skip ?? false }, async () => {
  const ns = netns('a');
  const t = tun({ name: 'tbt%d', netns: ns.name, mtu: 1420 });
  assert.match(t.name, /^tbt\d+$/);
  assert.ok(ns.links().includes(t.name), 'interface exists in the namespace');
  assert.equal(t.mtu(), 1420);
  assert.equal(t.isUp(), false);
  t.setMtu(9000);
  assert.equal(t.mtu(), 9000);
  assert.match(ns.ip('link', 'show', t.name), /mtu 9000/);
  t.setUp(true);
  assert.equal(t.isUp(), true);
  t.setUp(false);
  assert.equal(t.isUp(), false);
  configure(ns, t.name);
  assert.equal(t.isUp(), true);

  const got = collect(t);
  t.write(batchOf([icmpEchoRequest('10.77.0.2', '10.77.0.1', 0x1234, 7, 100)]));
  assert.equal(t.stats.written, 1);
  await waitFor('echo reply', () => got.replies.length >= 1, 5000, 10);
  const r = got.replies[0]!;
  assert.deepEqual([r.src, r.dst, r.id, r.seq], ['10.77.0.1', '10.77.0.2', 0x1234, 7]);
  assert.deepEqual([...r.payload], [...icmpEchoRequest('10.77.0.2', '10.77.0.1', 0x1234, 7, 100).subarray(28)]);
});

test('the interface is never created in our own namespace', { skip: skip ?? false }, () => {
  const ns = netns('b');
  const t = tun({ name: `tbh${process.pid % 100000}`, netns: ns.name });
  assert.ok(!ourLinks().includes(t.name), 'not in the host namespace');
  assert.ok(ns.links().includes(t.name));
});

/** Interface names in the test's own namespace (read only). */
function ourLinks(): string[] {
  const r = spawnSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname);
}

test('drains many packets per wakeup: one onBatch call per filled batch, not per packet', { skip: skip ?? false }, async () => {
  const ns = netns('c');
  const t = tun({ name: 'tbb%d', netns: ns.name, batchSize: 64 });
  configure(ns, t.name);
  const N = 200; // below the TUN's txqueuelen (500), so the kernel queues every reply
  const reqs = Array.from({ length: N }, (_, i) => icmpEchoRequest('10.77.0.2', '10.77.0.1', 0x4242, i));
  t.write(batchOf(reqs)); // one native call for the whole batch
  assert.equal(t.stats.written, N);
  assert.equal(t.stats.writeDropped + t.stats.writeFailed, 0);
  await new Promise((r) => setTimeout(r, 100)); // let every reply queue up before we start reading
  const got = collect(t);
  await waitFor(`${N} echo replies`, () => got.replies.length >= N, 5000, 10);
  assert.deepEqual(got.replies.map((r) => r!.seq).sort((a, b) => a - b), reqs.map((_, i) => i));
  const max = Math.max(...got.perCall);
  assert.equal(max, 64, `full batches of 64, got per call ${got.perCall.join(',')}`);
  assert.ok(got.perCall.length <= Math.ceil(N / 64) + 2, `few callbacks: ${got.perCall.join(',')}`);
  assert.equal(t.stats.readBatches, got.perCall.length);
});

test('deleting the interface closes the device with reason "interface deleted"', { skip: skip ?? false }, async () => {
  const ns = netns('d');
  const t = tun({ name: 'tbd%d', netns: ns.name, mtu: 1300 });
  configure(ns, t.name);
  const reasons: string[] = [];
  t.onClose((r) => reasons.push(r));
  collect(t);
  assert.equal(t.isDeleted(), false);
  ns.ip('link', 'del', t.name);
  await waitFor('onClose', () => reasons.length > 0, 5000, 10);
  assert.deepEqual(reasons, ['interface deleted']);
  assert.equal(t.closed, true);
  assert.equal(t.isDeleted(), true);
  assert.equal(t.mtu(), 1300, 'last known MTU');
  t.write(batchOf([icmpEchoRequest('10.77.0.2', '10.77.0.1', 1, 1)]));
  assert.equal(t.stats.writeDropped, 1);
  t.close(); // no second callback
  const late: string[] = [];
  t.onClose((r) => late.push(r));
  assert.deepEqual(reasons, ['interface deleted']);
  assert.deepEqual(late, ['interface deleted'], 'a late onClose hears the reason at once');
});

test('deletion is noticed without reading, and after the interface was moved away', { skip: skip ?? false }, async () => {
  const a = netns('e');
  const b = netns('f');
  const t = tun({ name: 'tbm%d', netns: a.name });
  a.ip('link', 'set', t.name, 'netns', b.name);
  assert.equal(t.isDeleted(), false);
  b.destroy(); // deleting a namespace deletes the TUN interfaces in it
  await waitFor('deletion', () => t.isDeleted(), 5000, 10);
  const reasons: string[] = [];
  t.onClose((r) => reasons.push(r));
  collect(t); // starting to read on a deleted device reports it
  await waitFor('onClose', () => reasons.length > 0, 5000, 10);
  assert.deepEqual(reasons, ['interface deleted']);
});

test('keeps working after `ip link set NAME netns OTHER`; MTU and up/down follow it', { skip: skip ?? false }, async () => {
  const a = netns('g');
  const b = netns('h');
  const t = tun({ name: 'tbn%d', netns: a.name });
  collect(t); // reading while it moves
  a.ip('link', 'set', t.name, 'netns', b.name);
  assert.ok(!a.links().includes(t.name));
  assert.ok(b.links().includes(t.name));
  assert.equal(t.currentName(), t.name);
  t.setMtu(1380); // by ioctl in the interface's new namespace
  assert.match(b.ip('link', 'show', t.name), /mtu 1380/);
  assert.equal(t.mtu(), 1380);
  configure(b, t.name, 78);
  assert.equal(t.isUp(), true);
  const got = collect(t);
  t.write(batchOf([icmpEchoRequest('10.78.0.2', '10.78.0.1', 0x77, 3)]));
  await waitFor('echo reply after the move', () => got.replies.length >= 1, 5000, 10);
  assert.deepEqual([got.replies[0]!.src, got.replies[0]!.seq], ['10.78.0.1', 3]);
  assert.equal(t.closed, false);
});

test('exclusive refuses to attach to an existing (persistent) interface; we never make ours persistent', { skip: skip ?? false }, () => {
  const ns = netns('i');
  const name = `tbp${process.pid % 100000}`;
  ns.ip('tuntap', 'add', 'mode', 'tun', 'name', name); // persistent, made by someone else
  assert.throws(() => tun({ name, netns: ns.name, exclusive: true }), (e: NodeJS.ErrnoException) => e.code === 'EBUSY');
  const attached = tun({ name, netns: ns.name });
  assert.equal(attached.name, name);
  attached.close();
  assert.ok(ns.links().includes(name), 'the persistent interface outlives our fd');

  const own = tun({ name: 'tbo%d', netns: ns.name, exclusive: true });
  const reasons: string[] = [];
  own.onClose((r) => reasons.push(r));
  own.close();
  assert.deepEqual(reasons, ['closed']);
  assert.ok(!ns.links().includes(own.name), 'ours goes away with our fd');
});
