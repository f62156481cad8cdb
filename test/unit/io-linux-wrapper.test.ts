/**
 * The TypeScript side of the native Linux I/O (src/io/linux/) over a fake
 * binding: option validation, the flags and paths it passes down, the read
 * policy (one onBatch per filled batch, bounded per wakeup), deletion
 * handling and counters. No root, no kernel.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PacketBatch } from '../../src/io/batch.js';
import { loadBinding, netnsPath, type NativeBinding, type NativeHandle } from '../../src/io/linux/binding.js';
import { openLinuxTun } from '../../src/io/linux/tun.js';
import { openLinuxUdpBind } from '../../src/io/linux/udp.js';

const C = {
  IFF_TUN: 1, IFF_NO_PI: 0x1000, IFF_TUN_EXCL: 0x8000, IFF_VNET_HDR: 0x4000, IFNAMSIZ: 16,
  EAGAIN: 11, EINTR: 4, EINVAL: 22, EIO: 5, EBADFD: 77, ENOBUFS: 105, EAFNOSUPPORT: 97, EADDRNOTAVAIL: 99, ENODEV: 19,
  ENOTTY: 25, EOPNOTSUPP: 95,
};

class FakeHandle implements NativeHandle {
  fd = 3;
  cb: ((status: number) => void) | null = null;
  polls = 0;
  refd = true;
  poll(cb: (status: number) => void): void {
    this.cb = cb;
    this.polls++;
  }
  pause(): void {
    this.cb = null;
  }
  close(): void {
    this.fd = -1;
    this.cb = null;
  }
  ref(): void {
    this.refd = true;
  }
  unref(): void {
    this.refd = false;
  }
}

type Fake = NativeBinding & { calls: unknown[][]; handle: FakeHandle; reads: number[]; probe: number; res: number[]; udpOpenErrors: (number | null)[]; tunOpenErrors: (number | null)[] };

function fakeBinding(): Fake {
  const calls: unknown[][] = [];
  const f = {
    calls,
    handle: new FakeHandle(),
    reads: [] as number[], // what successive tunRead/udpRecv calls return (then 0)
    probe: C.EINVAL,
    res: [0, 0, 0, 0],
    udpOpenErrors: [] as (number | null)[],
    tunOpenErrors: [] as (number | null)[],
    constants: C,
    tunOpen: (name: string, flags: number, netns: string) => {
      calls.push(['tunOpen', name, flags, netns]);
      const e = f.tunOpenErrors.shift();
      if (e) throw Object.assign(new Error(`errno ${e}`), { errno: e });
      return f.handle;
    },
    tunName: () => 'tb7',
    tunGetMtu: () => 1420,
    tunSetMtu: (_h: NativeHandle, mtu: number) => void calls.push(['tunSetMtu', mtu]),
    tunGetUp: () => true,
    tunSetUp: (_h: NativeHandle, up: boolean) => void calls.push(['tunSetUp', up]),
    tunProbe: () => f.probe,
    tunRead: (_h: NativeHandle, _d: Uint8Array, offsets: Int32Array, lengths: Int32Array, _e: null, _s: number, cap: number, headroom: number, res: Int32Array) => {
      res.set(f.res);
      const n = f.reads.shift() ?? 0;
      for (let i = 0; i < Math.min(n, cap); i++) {
        offsets[i] = headroom;
        lengths[i] = 60;
      }
      return n;
    },
    tunWrite: (_h: NativeHandle, _d: Uint8Array, _o: Int32Array, _l: Int32Array, _e: null, _s: number, count: number, _hr: number, res: Int32Array) => {
      res.set(f.res);
      return count - f.res[0]! - f.res[1]!;
    },
    udpOpen: (family: number, address: string, port: number, bufferSize: number, netns: string) => {
      calls.push(['udpOpen', family, address, port, bufferSize, netns]);
      const e = f.udpOpenErrors.shift();
      if (e) throw Object.assign(new Error(`errno ${e}`), { errno: e });
      return f.handle;
    },
    udpPort: () => 51820,
    udpBufferSizes: () => [1, 2] as [number, number],
    udpSetMark: (_h: NativeHandle, mark: number) => void calls.push(['udpSetMark', mark]),
    udpRecv: (_h: NativeHandle, _d: Uint8Array, offsets: Int32Array, lengths: Int32Array, _e: Uint8Array, _s: number, cap: number, headroom: number, res: Int32Array) => {
      res.set(f.res);
      const n = f.reads.shift() ?? 0;
      for (let i = 0; i < Math.min(n, cap); i++) {
        offsets[i] = headroom;
        lengths[i] = 100;
      }
      return n;
    },
    udpSend: (_h: NativeHandle, _d: Uint8Array, _o: Int32Array, _l: Int32Array, _e: Uint8Array, _s: number, count: number, _hr: number, res: Int32Array) => {
      res.set(f.res);
      return count - f.res[0]! - f.res[1]!;
    },
  };
  return f;
}

test('TUN options are validated before anything reaches the addon', () => {
  const f = fakeBinding();
  for (const name of ['', 'a'.repeat(16), 'a b', 'a/b', 'a:b', 'tb%d%d', 'tb%s', '.', '..', 'tb%']) {
    assert.throws(() => openLinuxTun({ name, binding: f }), TypeError, JSON.stringify(name));
  }
  assert.throws(() => openLinuxTun({ name: 'tb0', mtu: 67, binding: f }), RangeError);
  assert.throws(() => openLinuxTun({ name: 'tb0', mtu: 1.5, binding: f }), RangeError);
  assert.throws(() => openLinuxTun({ name: 'tb0', batchSize: 0, binding: f }), RangeError);
  assert.throws(() => openLinuxTun({ name: 'tb0', slotSize: 70_000, binding: f }), RangeError);
  assert.throws(() => openLinuxTun({ name: 'tb0', netns: 'a b', binding: f }), TypeError);
  assert.throws(() => openLinuxTun({ name: 'tb0', up: 'yes' as unknown as boolean, binding: f }), TypeError);
  assert.throws(() => openLinuxTun({ name: 'tb0', offload: 1 as unknown as boolean, binding: f }), TypeError);
  assert.throws(() => openLinuxTun(null as unknown as { name: string }), TypeError);
  assert.deepEqual(f.calls, []);
});

test('TUN flags: IFF_TUN | IFF_NO_PI, plus IFF_TUN_EXCL when exclusive; netns names resolve under /run/netns', () => {
  const f = fakeBinding();
  const t = openLinuxTun({ name: 'tb%d', netns: 'blue', mtu: 1420, up: true, offload: false, binding: f });
  assert.equal(t.name, 'tb7');
  assert.equal(t.offload, false);
  assert.deepEqual(f.calls, [['tunOpen', 'tb%d', C.IFF_TUN | C.IFF_NO_PI, '/run/netns/blue'], ['tunSetMtu', 1420], ['tunSetUp', true]]);
  f.calls.length = 0;
  openLinuxTun({ name: 'tb0', exclusive: true, netns: '/proc/1/ns/net', offload: false, binding: f });
  assert.deepEqual(f.calls, [['tunOpen', 'tb0', C.IFF_TUN | C.IFF_NO_PI | C.IFF_TUN_EXCL, '/proc/1/ns/net']]);
  assert.equal(netnsPath(undefined), '');
  assert.equal(netnsPath('x-1'), '/run/netns/x-1');
  assert.throws(() => netnsPath('..'), TypeError);
});

test('TUN offloads: IFF_VNET_HDR by default (TB_TUN_OFFLOAD=0 turns the default off); a kernel that refuses gets a plain TUN', () => {
  const saved = process.env.TB_TUN_OFFLOAD;
  try {
    delete process.env.TB_TUN_OFFLOAD;
    const f = fakeBinding();
    const plain = C.IFF_TUN | C.IFF_NO_PI | C.IFF_TUN_EXCL;
    assert.equal(openLinuxTun({ name: 'tb0', exclusive: true, binding: f }).offload, true);
    assert.deepEqual(f.calls, [['tunOpen', 'tb0', plain | C.IFF_VNET_HDR, '']]);
    for (const errno of [C.EINVAL, C.ENOTTY, C.EOPNOTSUPP]) {
      f.calls.length = 0;
      f.tunOpenErrors = [errno];
      assert.equal(openLinuxTun({ name: 'tb0', exclusive: true, binding: f }).offload, false);
      assert.deepEqual(f.calls, [['tunOpen', 'tb0', plain | C.IFF_VNET_HDR, ''], ['tunOpen', 'tb0', plain, '']], `fallback on errno ${errno}`);
    }
    f.calls.length = 0;
    f.tunOpenErrors = [16]; // EBUSY: a real failure, no second try
    assert.throws(() => openLinuxTun({ name: 'tb0', exclusive: true, binding: f }), /errno 16/);
    assert.equal(f.calls.length, 1);
    process.env.TB_TUN_OFFLOAD = '0';
    f.calls.length = 0;
    assert.equal(openLinuxTun({ name: 'tb0', binding: f }).offload, false);
    assert.deepEqual(f.calls, [['tunOpen', 'tb0', C.IFF_TUN | C.IFF_NO_PI, '']]);
    assert.equal(openLinuxTun({ name: 'tb0', offload: true, binding: f }).offload, true, 'the option wins over the env');
  } finally {
    if (saved === undefined) delete process.env.TB_TUN_OFFLOAD;
    else process.env.TB_TUN_OFFLOAD = saved;
  }
});

test('TUN offload reads: super-packets and drops are counted; a full batch at the bound is continued after yielding', async () => {
  const f = fakeBinding();
  const t = openLinuxTun({ name: 'tb0', batchSize: 4, maxBatchesPerWakeup: 1, offload: true, binding: f });
  const seen: number[] = [];
  t.start((b) => seen.push(b.count), 16);
  await new Promise((r) => setImmediate(r)); // start() looks for segments kept from before
  f.res = [1, 2, 90, 3];
  f.reads = [4, 4, 1];
  f.handle.cb!(0);
  assert.deepEqual(seen, [4], 'bounded per wakeup');
  assert.deepEqual([t.stats.readGsoPackets, t.stats.readDropped, t.stats.lastReadDropErrno], [3, 3, 90]);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, [4, 4], 'continued without a poll wakeup');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, [4, 4, 1], 'until a batch comes back short');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, [4, 4, 1]);
  t.close();
});

test('TUN reads: one onBatch per filled batch, at most maxBatchesPerWakeup per wakeup, then yield', () => {
  const f = fakeBinding();
  const t = openLinuxTun({ name: 'tb0', batchSize: 4, maxBatchesPerWakeup: 3, offload: false, binding: f });
  const seen: number[] = [];
  t.start((b) => {
    seen.push(b.count);
    assert.equal(b.offsets[0], 16);
  }, 16);
  f.reads = [4, 4, 4, 4, 4];
  f.handle.cb!(0);
  assert.deepEqual(seen, [4, 4, 4], 'bounded per wakeup');
  f.handle.cb!(0);
  assert.deepEqual(seen, [4, 4, 4, 4, 4], 'the rest on the next wakeup');
  f.reads = [2, 4];
  f.handle.cb!(0);
  assert.deepEqual(seen.slice(5), [2], 'a partial batch means the queue is drained');
  assert.equal(t.stats.readBatches, 6);
  assert.equal(t.stats.readPackets, 22);
  f.reads = [0];
  f.handle.cb!(0);
  assert.equal(seen.length, 6, 'nothing pending, no callback');
});

test('TUN: EBADFD from read, or a poll error with the device gone, closes with "interface deleted"', () => {
  for (const how of ['read', 'poll'] as const) {
    const f = fakeBinding();
    const t = openLinuxTun({ name: 'tb0', binding: f });
    const reasons: string[] = [];
    t.onClose((r) => reasons.push(r));
    t.start(() => assert.fail('no packets'), 16);
    if (how === 'read') {
      f.reads = [-C.EBADFD];
      f.handle.cb!(0);
    } else {
      f.probe = C.EBADFD;
      f.handle.cb!(-9);
    }
    assert.deepEqual(reasons, ['interface deleted'], how);
    assert.equal(f.handle.fd, -1, 'fd closed');
    assert.equal(t.closed, true);
  }
  // A poll error on a live device resumes polling.
  const f = fakeBinding();
  const t = openLinuxTun({ name: 'tb0', binding: f });
  t.start(() => {}, 16);
  f.handle.cb!(-9);
  assert.equal(f.handle.polls, 2);
  assert.equal(t.closed, false);
  f.reads = [-C.EIO];
  f.handle.cb!(0);
  assert.equal(t.stats.readErrors, 1);
  assert.equal(t.stats.lastReadErrno, C.EIO);
  assert.equal(t.closed, false);
});

test('TUN writes: counters from the native result; after close everything is dropped', () => {
  const f = fakeBinding();
  const t = openLinuxTun({ name: 'tb0', binding: f });
  const b = new PacketBatch(8, 256);
  b.count = 8;
  t.write(b);
  f.res = [2, 1, C.EAGAIN, 0];
  t.write(b);
  assert.deepEqual([t.stats.written, t.stats.writeDropped, t.stats.writeFailed, t.stats.lastWriteErrno], [13, 2, 1, C.EAGAIN]);
  t.close();
  t.write(b);
  assert.equal(t.stats.writeDropped, 10);
  assert.throws(() => t.setMtu(1400), /closed/);
  assert.equal(t.mtu(), 1420, 'last known');
});

test('UDP: dual-stack by default, IPv4 fallback when the kernel has no IPv6, host literal picks the family', () => {
  let f = fakeBinding();
  let u = openLinuxUdpBind({ binding: f });
  assert.equal(u.family, 'dual');
  assert.equal(u.port(), 51820);
  assert.deepEqual(f.calls, [['udpOpen', 6, '', 0, 7 << 20, '']]);

  f = fakeBinding();
  f.udpOpenErrors = [C.EAFNOSUPPORT];
  u = openLinuxUdpBind({ port: 51820, bufferSize: 0, binding: f });
  assert.equal(u.family, 4);
  assert.deepEqual(f.calls, [['udpOpen', 6, '', 51820, 0, ''], ['udpOpen', 4, '', 51820, 0, '']]);

  f = fakeBinding();
  f.udpOpenErrors = [98]; // EADDRINUSE is not a reason to fall back
  assert.throws(() => openLinuxUdpBind({ port: 51820, binding: f }), /errno 98/);

  f = fakeBinding();
  assert.equal(openLinuxUdpBind({ host: '127.0.0.1', binding: f }).family, 4);
  assert.equal(openLinuxUdpBind({ host: '::1', netns: 'ns1', binding: f }).family, 6);
  assert.deepEqual(f.calls.map((c) => c.slice(1, 3).concat(c[5])), [[4, '127.0.0.1', ''], [6, '::1', '/run/netns/ns1']]);
  for (const bad of [{ port: -1 }, { port: 65536 }, { port: 1.5 }, { bufferSize: -1 }, { batchSize: 5000 }, { maxBatchesPerWakeup: 0 }]) {
    assert.throws(() => openLinuxUdpBind({ ...bad, binding: f }), RangeError, JSON.stringify(bad));
  }
  assert.throws(() => openLinuxUdpBind({ host: 'localhost', binding: f }), TypeError);
});

test('UDP: receive policy and counters; send counters; mark', () => {
  const f = fakeBinding();
  const u = openLinuxUdpBind({ batchSize: 4, maxBatchesPerWakeup: 2, binding: f });
  const seen: number[] = [];
  u.start((b) => seen.push(b.count), 0);
  f.reads = [4, 4, 4];
  f.handle.cb!(0);
  assert.deepEqual(seen, [4, 4]);
  f.res = [1, 0, 90, 0]; // one truncated datagram in each call
  f.reads = [3, 1];
  f.handle.cb!(0);
  assert.deepEqual(seen, [4, 4, 3, 1], '3 kept + 1 truncated filled the batch: read on');
  assert.equal(u.stats.recvTruncated, 2);
  f.res = [0, 0, 0, 0];
  f.reads = [-111];
  f.handle.cb!(-9);
  assert.equal(u.stats.recvErrors, 1);
  assert.equal(f.handle.polls, 2, 'polling resumed after a socket error');

  const b = new PacketBatch(10, 256);
  b.count = 10;
  f.res = [3, 1, C.ENOBUFS, 0];
  u.send(b);
  assert.deepEqual([u.stats.sent, u.stats.sendDropped, u.stats.sendFailed, u.stats.lastSendErrno], [6, 3, 1, C.ENOBUFS]);
  u.setMark(0xffffffff);
  assert.throws(() => u.setMark(-1), RangeError);
  assert.deepEqual(f.calls.at(-1), ['udpSetMark', 0xffffffff]);
  u.unref();
  assert.equal(f.handle.refd, false);
  u.close();
  u.close();
  u.send(b);
  assert.equal(u.stats.sendDropped, 13);
});

test('loadBinding explains a missing or incomplete addon', () => {
  assert.throws(() => loadBinding('/nonexistent/tunnelbyte_io.node'), /cannot load the native addon at \/nonexistent.*npm run build/);
  const dir = mkdtempSync(join(tmpdir(), 'tb-binding-'));
  try {
    const p = join(dir, 'partial.cjs');
    writeFileSync(p, 'module.exports = { constants: {}, tunOpen() {} };');
    assert.throws(() => loadBinding(p), /lacks tunName/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('UDP offloads: asked for by default (TB_UDP_OFFLOAD=0 changes that), validated, state and counters from the addon', () => {
  const withOffload = (state: number) => {
    const f = fakeBinding();
    let cur = 0; // nothing on until asked, as in the addon
    return Object.assign(f, {
      udpSetOffload: (_h: NativeHandle, gso: boolean, gro: boolean) => {
        f.calls.push(['udpSetOffload', gso, gro]);
        cur = state & ((gso ? 1 : 0) | (gro ? 2 : 0));
        return cur;
      },
      udpGetOffload: () => cur,
    });
  };
  const saved = process.env.TB_UDP_OFFLOAD;
  try {
    delete process.env.TB_UDP_OFFLOAD;
    let f = withOffload(3);
    let u = openLinuxUdpBind({ binding: f });
    assert.deepEqual(f.calls.at(-1), ['udpSetOffload', true, true]);
    assert.deepEqual([u.gso, u.gro], [true, true]);
    f = withOffload(2); // a kernel without UDP_SEGMENT
    u = openLinuxUdpBind({ binding: f });
    assert.deepEqual([u.gso, u.gro], [false, true]);
    f = withOffload(3);
    u = openLinuxUdpBind({ gso: false, binding: f });
    assert.deepEqual(f.calls.at(-1), ['udpSetOffload', false, true]);
    assert.deepEqual([u.gso, u.gro], [false, true]);
    process.env.TB_UDP_OFFLOAD = '0';
    f = withOffload(3);
    u = openLinuxUdpBind({ binding: f });
    assert.deepEqual(f.calls.map((c) => c[0]), ['udpOpen'], 'nothing asked for');
    assert.deepEqual([u.gso, u.gro], [false, false]);
    u = openLinuxUdpBind({ gso: true, binding: f });
    assert.deepEqual([u.gso, u.gro], [true, false]);
    for (const bad of [{ gso: 1 }, { gro: 'on' }, { gso: null }]) {
      assert.throws(() => openLinuxUdpBind({ ...(bad as object), binding: f }), TypeError, JSON.stringify(bad));
    }

    // Counters: res[3] of udpSend (datagrams in GSO messages) and udpRecv (GRO messages split).
    const b = new PacketBatch(10, 256);
    b.count = 10;
    f.res = [0, 0, 0, 8];
    u.send(b);
    assert.equal(u.stats.sendGsoDatagrams, 8);
    // Without GRO a full batch is not read again after yielding; a fake without the offload exports has neither.
    const plain = openLinuxUdpBind({ binding: fakeBinding() });
    assert.deepEqual([plain.gso, plain.gro], [false, false]);
  } finally {
    if (saved === undefined) delete process.env.TB_UDP_OFFLOAD;
    else process.env.TB_UDP_OFFLOAD = saved;
  }
});

test('UDP with GRO: split messages are counted; a full batch is read again after yielding (a remainder may wait in the addon)', async () => {
  const f = Object.assign(fakeBinding(), { udpSetOffload: () => 3, udpGetOffload: () => 3 });
  const u = openLinuxUdpBind({ batchSize: 4, maxBatchesPerWakeup: 1, gso: true, gro: true, binding: f });
  const seen: number[] = [];
  u.start((b) => seen.push(b.count), 0);
  f.res = [0, 0, 0, 1];
  f.reads = [4, 2];
  f.handle.cb!(0);
  assert.deepEqual(seen, [4]);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, [4, 2], 'came back without a wakeup');
  assert.equal(u.stats.recvGroMessages, 2);
  u.close();
});
