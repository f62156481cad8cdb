/**
 * The native UDP bind (src/io/linux/udp.ts) against the kernel: batches over
 * loopback inside a throwaway namespace (sockets are opened in it with the
 * `netns` option), IPv4 and IPv6, endpoint records, port 0, and datagrams
 * larger than the path MTU across a 1500-byte veth link.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { PacketBatch, SHED_BAD_LENGTH, SHED_QUEUE_FULL, SHED_REASONS, SHED_SOURCE_LIMITED, SHED_TOO_SHORT, SHED_UNKNOWN_TYPE } from '../../src/io/batch.js';
import { decodeEndpoint, encodeEndpoint, ENDPOINT_SIZE, type Endpoint } from '../../src/io/endpoint.js';
import { openLinuxUdpBind, type LinuxUdpBind, type LinuxUdpOptions } from '../../src/io/linux/udp.js';
import { Netns, privilegedSkipReason, waitFor } from '../support/netns.js';

const skip = privilegedSkipReason();
const namespaces: Netns[] = [];
const binds: LinuxUdpBind[] = [];
after(() => {
  for (const b of binds) b.close();
  for (const ns of namespaces) ns.destroy();
});

let shared: Netns | null = null;
/** One namespace for the loopback tests. */
function loopNs(): Netns {
  if (!shared) {
    shared = Netns.create('u');
    namespaces.push(shared);
  }
  return shared;
}

function bind(opts: LinuxUdpOptions = {}): LinuxUdpBind {
  const b = openLinuxUdpBind({ netns: loopNs().name, ...opts });
  binds.push(b);
  return b;
}

interface Got {
  data: Uint8Array;
  from: Endpoint;
  offset: number;
}

function collect(b: LinuxUdpBind, headroom = 0): { got: Got[]; perCall: number[] } {
  const out = { got: [] as Got[], perCall: [] as number[] };
  b.start((batch) => {
    out.perCall.push(batch.count);
    for (let i = 0; i < batch.count; i++) {
      out.got.push({ data: new Uint8Array(batch.packet(i)), from: decodeEndpoint(batch.endpoints, i * ENDPOINT_SIZE)!, offset: batch.offsets[i]! });
    }
  }, headroom);
  return out;
}

/** A send batch: datagram i is `payloads[i]` to `to[i]` (or one destination for all). */
function sendBatch(payloads: Uint8Array[], to: Endpoint | Endpoint[], slotSize = 2048, offset = 16): PacketBatch {
  const b = new PacketBatch(payloads.length, slotSize);
  payloads.forEach((p, i) => {
    b.offsets[i] = offset;
    b.lengths[i] = p.length;
    b.data.set(p, i * slotSize + offset);
    encodeEndpoint(Array.isArray(to) ? to[i]! : to, b.endpoints, i * ENDPOINT_SIZE);
  });
  b.count = payloads.length;
  return b;
}

const payload = (i: number, len = 100): Uint8Array => Uint8Array.from({ length: len }, (_, k) => (i * 7 + k) & 0xff);

test('binds port 0 dual-stack, reports the kernel-chosen port, sizes buffers like wireguard-go', { skip: skip ?? false }, () => {
  const b = bind();
  assert.equal(b.family, 'dual');
  assert.ok(b.port() > 0 && b.port() < 65536, `port ${b.port()}`);
  const [rcv, snd] = b.bufferSizes();
  // The kernel reports twice what was set; as root SO_*BUFFORCE passes net.core.[rw]mem_max.
  assert.ok(rcv >= 7 << 20 && snd >= 7 << 20, `buffers ${rcv}/${snd}`);
  assert.throws(() => bind({ port: b.port() }), (e: NodeJS.ErrnoException) => e.code === 'EADDRINUSE');
  const v4 = bind({ host: '127.0.0.1' });
  assert.equal(v4.family, 4);
  const v6 = bind({ host: '::1' });
  assert.equal(v6.family, 6);
});

for (const [fam, addr] of [[4, '127.0.0.1'], [6, '::1']] as const) {
  test(`IPv${fam} over loopback: one sendmmsg per batch, one callback per received batch, sources in endpoint records`, { skip: skip ?? false }, async () => {
    const a = bind();
    const r = bind({ batchSize: 32 });
    const N = 100;
    a.send(sendBatch(Array.from({ length: N }, (_, i) => payload(i, 50 + i)), { family: fam, address: addr, port: r.port() }));
    assert.equal(a.stats.sent, N);
    assert.equal(a.stats.sendDropped + a.stats.sendFailed, 0);
    const got = collect(r, 16); // all 100 are already queued: the wakeup drains them in batches of 32
    await waitFor(`${N} datagrams`, () => got.got.length >= N, 5000, 10);
    assert.deepEqual(got.perCall, [32, 32, 32, 4]);
    got.got.forEach((g, i) => {
      assert.deepEqual(g.from, { family: fam, address: addr, port: a.port() });
      assert.equal(g.offset, 16);
      assert.deepEqual(g.data, payload(i, 50 + i));
    });
    assert.equal(r.stats.received, N);
    assert.equal(r.stats.recvBatches, 4);
  });
}

test('one batch to IPv4 and IPv6 peers; IPv4-mapped sources are family 4', { skip: skip ?? false }, async () => {
  const dual = bind();
  const only4 = bind({ host: '127.0.0.1' });
  const only6 = bind({ host: '::1' });
  const got4 = collect(only4);
  const got6 = collect(only6);
  const gotDual = collect(dual);
  dual.send(sendBatch([payload(1), payload(2), payload(3)], [
    { family: 4, address: '127.0.0.1', port: only4.port() },
    { family: 6, address: '::1', port: only6.port() },
    { family: 4, address: '127.0.0.1', port: only4.port() },
  ]));
  only4.send(sendBatch([payload(4)], { family: 4, address: '127.0.0.1', port: dual.port() }));
  only6.send(sendBatch([payload(5)], { family: 6, address: '::1', port: dual.port() }));
  await waitFor('all datagrams', () => got4.got.length === 2 && got6.got.length === 1 && gotDual.got.length === 2, 5000, 10);
  assert.deepEqual(got4.got.map((g) => g.data), [payload(1), payload(3)]);
  assert.deepEqual(got4.got[0]!.from, { family: 4, address: '127.0.0.1', port: dual.port() }, 'a dual-stack sender appears as IPv4');
  assert.deepEqual(got6.got[0]!.from, { family: 6, address: '::1', port: dual.port() });
  const byLen = new Map(gotDual.got.map((g) => [g.data[0], g.from]));
  assert.deepEqual(byLen.get(payload(4)[0]), { family: 4, address: '127.0.0.1', port: only4.port() }, '::ffff:127.0.0.1 is stored as family 4');
  assert.deepEqual(byLen.get(payload(5)[0]), { family: 6, address: '::1', port: only6.port() });
});

test('a datagram the kernel refuses is counted and skipped; the rest of the batch is sent', { skip: skip ?? false }, async () => {
  const a = bind({ host: '127.0.0.1' });
  const r = bind();
  const got = collect(r);
  const b = sendBatch([payload(1), payload(2), payload(3)], [
    { family: 4, address: '127.0.0.1', port: r.port() },
    { family: 6, address: '::1', port: r.port() }, // an IPv4 socket cannot reach IPv6
    { family: 4, address: '127.0.0.1', port: r.port() },
  ]);
  a.send(b);
  const noFamily = sendBatch([payload(9)], { family: 4, address: '127.0.0.1', port: r.port() });
  noFamily.endpoints[0] = 0; // no endpoint
  a.send(noFamily);
  assert.equal(a.stats.sent, 2);
  assert.equal(a.stats.sendFailed, 2);
  await waitFor('two datagrams', () => got.got.length === 2, 5000, 10);
  assert.deepEqual(got.got.map((g) => g.data), [payload(1), payload(3)]);
});

test('datagrams larger than a slot are dropped and counted, not truncated', { skip: skip ?? false }, async () => {
  const a = bind();
  const r = bind({ slotSize: 1024 });
  const got = collect(r, 24);
  a.send(sendBatch([payload(1, 1000), payload(2, 1001), payload(3, 1000)], { family: 4, address: '127.0.0.1', port: r.port() }));
  a.send(sendBatch([payload(4, 1024 - 24)], { family: 4, address: '127.0.0.1', port: r.port() }));
  await waitFor('datagrams', () => got.got.length === 3, 5000, 10);
  assert.deepEqual(got.got.map((g) => g.data.length), [1000, 1000, 1000]);
  assert.equal(r.stats.recvTruncated, 1);
});

test('34 KB datagrams over loopback, IPv4 and IPv6', { skip: skip ?? false }, async () => {
  const a = bind();
  const r = bind();
  const got = collect(r);
  const big = (i: number) => payload(i, 34 * 1024);
  a.send(sendBatch([big(1), big(2)], [
    { family: 4, address: '127.0.0.1', port: r.port() },
    { family: 6, address: '::1', port: r.port() },
  ], 40 * 1024));
  await waitFor('two large datagrams', () => got.got.length === 2, 5000, 10);
  assert.deepEqual(got.got.map((g) => [g.from.family, g.data]), [[4, big(1)], [6, big(2)]]);
});

/**
 * Two namespaces joined by a 1500-byte veth: 192.0.2.1 on the left, .2 on the
 * right (and 2001:db8::1/::2 when `v6`); `vb` is the right end's name. The
 * veth goes with the namespaces.
 */
function vethPair(leftTag: string, rightTag: string, v6: boolean): { left: Netns; right: Netns; vb: string } {
  const left = Netns.create(leftTag);
  const right = Netns.create(rightTag);
  namespaces.push(left, right);
  const va = `tbv${leftTag}${process.pid % 100000}`;
  const vb = `tbv${rightTag}${process.pid % 100000}`;
  left.ip('link', 'add', va, 'mtu', '1500', 'type', 'veth', 'peer', 'name', vb, 'mtu', '1500', 'netns', right.name);
  for (const [ns, dev, n] of [[left, va, 1], [right, vb, 2]] as const) {
    ns.ip('addr', 'add', `192.0.2.${n}/24`, 'dev', dev);
    if (v6) ns.ip('addr', 'add', `2001:db8::${n}/64`, 'dev', dev, 'nodad');
    ns.ip('link', 'set', dev, 'up');
  }
  return { left, right, vb };
}

test('34 KB datagrams across a 1500-byte link are fragmented, not refused (no DF)', { skip: skip ?? false }, async () => {
  const { left, right, vb } = vethPair('l', 'r', true);

  const a = openLinuxUdpBind({ netns: left.name });
  const r = openLinuxUdpBind({ netns: right.name });
  binds.push(a, r);
  const got = collect(r);
  const big = (i: number) => payload(i, 34 * 1024);
  a.send(sendBatch([big(1), big(2)], [
    { family: 4, address: '192.0.2.2', port: r.port() },
    { family: 6, address: '2001:db8::2', port: r.port() },
  ], 40 * 1024));
  assert.equal(a.stats.sendFailed, 0, `errno ${a.stats.lastSendErrno}`);
  await waitFor('two large datagrams across the veth', () => got.got.length === 2, 10_000, 10);
  assert.deepEqual(got.got.map((g) => [g.from, g.data]), [
    [{ family: 4, address: '192.0.2.1', port: a.port() }, big(1)],
    [{ family: 6, address: '2001:db8::1', port: a.port() }, big(2)],
  ]);
  const stats = JSON.parse(right.ip('-j', '-s', 'link', 'show', vb)) as { stats64: { rx: { packets: number } } }[];
  assert.ok(stats[0]!.stats64.rx.packets >= 48, 'the link carried fragments');
});

test('close stops receiving and closes the socket', { skip: skip ?? false }, async () => {
  const a = bind();
  const r = bind();
  const got = collect(r);
  const to = { family: 4 as const, address: '127.0.0.1', port: r.port() };
  a.send(sendBatch([payload(1)], to));
  await waitFor('first datagram', () => got.got.length === 1, 5000, 10);
  r.close();
  assert.equal(r.closed, true);
  assert.throws(() => r.bufferSizes(), /closed/);
  a.send(sendBatch([payload(2)], to));
  assert.equal(a.stats.sent, 2, 'sending to a closed port is no error for an unconnected socket');
  await new Promise((res) => setTimeout(res, 50));
  assert.equal(got.got.length, 1);
  r.send(sendBatch([payload(3)], to));
  assert.equal(r.stats.sendDropped, 1);
  const again = bind({ port: to.port }); // the port is free again
  assert.equal(again.port(), to.port);
});

/** A datagram that says where it belongs: sequence number in the first 4 bytes, the rest derived from it. */
function numbered(seq: number, len: number): Uint8Array {
  const p = new Uint8Array(len);
  for (let k = 0; k < len; k++) p[k] = (seq * 13 + k) & 0xff;
  if (len >= 4) new DataView(p.buffer).setUint32(0, seq);
  return p;
}

/**
 * Sends `plan` (sequence number, length, destination) in batches of 128, yielding now and then so
 * the receivers keep up; returns when all batches went to the socket.
 */
async function burst(a: LinuxUdpBind, plan: { len: number; to: Endpoint }[]): Promise<void> {
  const B = 128;
  for (let at = 0; at < plan.length; at += B) {
    const part = plan.slice(at, at + B);
    a.send(sendBatch(part.map((p, i) => numbered(at + i, p.len)), part.map((p) => p.to), 2048, 16));
    if ((at / B) % 4 === 3) await new Promise((r) => setImmediate(r));
  }
}

for (const offload of [true, false]) {
  const opts = { gso: offload, gro: offload };
  test(`a burst of 6000 equal datagrams over loopback arrives complete and in order, offloads ${offload ? 'on' : 'off'}`, { skip: skip ?? false }, async () => {
    const a = bind(opts);
    const r = bind({ ...opts, batchSize: 100 }); // not a multiple of anything: coalesced datagrams straddle batches
    assert.equal(a.gso, offload);
    assert.equal(r.gro, offload);
    const got = collect(r, 16);
    const N = 6000;
    const to: Endpoint = { family: 4, address: '127.0.0.1', port: r.port() };
    await burst(a, Array.from({ length: N }, () => ({ len: 1452, to })));
    assert.equal(a.stats.sent + a.stats.sendDropped, N);
    assert.equal(a.stats.sendFailed, 0);
    await waitFor(`${a.stats.sent} datagrams`, () => got.got.length >= a.stats.sent, 5000, 10);
    assert.equal(a.stats.sendDropped, 0, 'the 7 MiB buffers hold the burst');
    got.got.forEach((g, i) => {
      assert.deepEqual(g.data, numbered(i, 1452), `datagram ${i}`);
      assert.equal(g.offset, 16);
      assert.deepEqual(g.from, { family: 4, address: '127.0.0.1', port: a.port() });
    });
    if (offload) {
      assert.ok(a.stats.sendGsoDatagrams > N / 2, `GSO datagrams ${a.stats.sendGsoDatagrams}`);
      assert.ok(r.stats.recvGroMessages > 0, `GRO messages ${r.stats.recvGroMessages}`);
    } else {
      assert.equal(a.stats.sendGsoDatagrams, 0);
      assert.equal(r.stats.recvGroMessages, 0);
    }
  });

  test(`mixed sizes and destinations (IPv4, IPv6, two receivers) arrive complete and in order per receiver, offloads ${offload ? 'on' : 'off'}`, { skip: skip ?? false }, async () => {
    const a = bind(opts);
    const r1 = bind({ ...opts, batchSize: 7 }); // smaller than a coalesced message: the rest waits in the addon
    const r2 = bind(opts);
    const got1 = collect(r1);
    const got2 = collect(r2);
    const dests: Endpoint[] = [
      { family: 4, address: '127.0.0.1', port: r1.port() },
      { family: 6, address: '::1', port: r1.port() },
      { family: 4, address: '127.0.0.1', port: r2.port() },
    ];
    // Runs of one size to one destination with a shorter tail now and then, single odd ones between.
    let seed = 12345;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    const plan: { len: number; to: Endpoint }[] = [];
    while (plan.length < 4000) {
      const to = dests[rnd(3)]!;
      const size = [60, 148, 1000, 1452, 1452, 4000][rnd(6)]!;
      const n = 1 + rnd(90);
      for (let k = 0; k < n; k++) plan.push({ len: size, to });
      if (rnd(2) === 0) plan.push({ len: 4 + rnd(size - 3), to });
    }
    await burst(a, plan);
    assert.equal(a.stats.sendFailed + a.stats.sendDropped, 0, `errno ${a.stats.lastSendErrno}`);
    const want1 = plan.map((p, i) => ({ ...p, i })).filter((p) => p.to.port === r1.port());
    const want2 = plan.map((p, i) => ({ ...p, i })).filter((p) => p.to.port === r2.port());
    await waitFor('all datagrams', () => got1.got.length >= want1.length && got2.got.length >= want2.length, 5000, 10);
    assert.equal(got1.got.length, want1.length);
    assert.equal(got2.got.length, want2.length);
    want1.forEach((w, k) => {
      assert.deepEqual(got1.got[k]!.data, numbered(w.i, w.len), `r1 datagram ${k}`);
      assert.equal(got1.got[k]!.from.family, w.to.family);
    });
    want2.forEach((w, k) => assert.deepEqual(got2.got[k]!.data, numbered(w.i, w.len), `r2 datagram ${k}`));
    assert.equal(a.stats.sendGsoDatagrams > 0, offload);
    assert.equal(r1.stats.recvGroMessages > 0, offload);
  });
}

test('GSO across a 1500-byte veth: a run the link cannot take as one message is resent datagram by datagram, nothing lost', { skip: skip ?? false }, async () => {
  const { left, right } = vethPair('gl', 'gr', false);
  const a = openLinuxUdpBind({ netns: left.name, gso: true, gro: true });
  const r = openLinuxUdpBind({ netns: right.name, gso: true, gro: true });
  binds.push(a, r);
  assert.equal(a.gso, true);
  const got = collect(r);
  const to: Endpoint = { family: 4, address: '192.0.2.2', port: r.port() };
  // 1472-byte segments fit the link: GSO messages go out and the veth segments them.
  a.send(sendBatch(Array.from({ length: 40 }, (_, i) => numbered(i, 1472)), to, 2048));
  assert.equal(a.stats.sent, 40, `errno ${a.stats.lastSendErrno}`);
  assert.equal(a.stats.sendGsoDatagrams, 40);
  // 4000-byte segments do not (segment + headers > the device MTU: EMSGSIZE on 6.x, EINVAL from
  // udp_send_skb on older kernels): resent one by one, and fragmented (PMTUDISC_DONT).
  a.send(sendBatch(Array.from({ length: 10 }, (_, i) => numbered(40 + i, 4000)), to, 4096));
  assert.equal(a.stats.sent, 50, `errno ${a.stats.lastSendErrno}`);
  assert.equal(a.stats.sendFailed + a.stats.sendDropped, 0);
  assert.equal(a.gso, true, 'a refusal after GSO sends worked is about that run, not the socket');
  a.send(sendBatch(Array.from({ length: 20 }, (_, i) => numbered(50 + i, 1000)), to, 2048));
  assert.equal(a.stats.sendGsoDatagrams, 60);
  await waitFor('70 datagrams across the veth', () => got.got.length === 70, 10_000, 10);
  got.got.forEach((g, i) => assert.deepEqual(g.data, numbered(i, i < 40 ? 1472 : i < 50 ? 4000 : 1000), `datagram ${i}`));

  // A fresh socket whose very first GSO message is refused (with EINVAL on older kernels GSO is then
  // turned off for it, since that is also how a kernel without it answers): nothing lost either way.
  const b = openLinuxUdpBind({ netns: left.name, gso: true });
  binds.push(b);
  b.send(sendBatch(Array.from({ length: 5 }, (_, i) => numbered(70 + i, 4000)), to, 4096));
  assert.equal(b.stats.sent, 5);
  assert.equal(b.stats.sendGsoDatagrams, 0);
  await waitFor('75 datagrams', () => got.got.length === 75, 10_000, 10);
  got.got.slice(70).forEach((g, i) => assert.deepEqual(g.data, numbered(70 + i, 4000)));
});

test('gso/gro options are validated', { skip: skip ?? false }, () => {
  assert.throws(() => bind({ gso: 1 as unknown as boolean }), TypeError);
  assert.throws(() => bind({ gro: 'yes' as unknown as boolean }), TypeError);
});

for (const gro of [false, true]) {
  test(`the receive-side shed (GRO ${gro ? 'on' : 'off'}): transport data always, garbage and handshakes over a source's share or a read's cap dropped and counted`, { skip: skip ?? false }, async () => {
    const rx = bind({ host: '127.0.0.1', gro });
    // One read takes all of it: a share of 4 messages (refilling at 1/s), 2 per read from sources that have been sending.
    assert.equal(rx.shedHandshakes({ perSecond: 1, burst: 4, loadedPerSecond: 1, loadedBurst: 1, perCall: 2 }), true);
    const a = bind({ host: '127.0.0.2' });
    const c = bind({ host: '127.0.0.3' });
    const to: Endpoint = { family: 4, address: '127.0.0.1', port: rx.port() };
    const msg = (type: number, len: number, tag: number) => {
      const m = new Uint8Array(len).fill(0xee);
      m.set([type, 0, 0, 0, tag], 0);
      return m;
    };
    const fromA = [
      msg(1, 148, 0), // fresh source: kept
      msg(4, 64, 1), // transport: kept
      msg(1, 148, 2), // kept (1st of the read's 2)
      msg(1, 148, 3), // kept (2nd)
      Uint8Array.of(1, 0), // too short
      msg(1, 148, 4), // within the share, over the read's cap
      msg(4, 200, 5), // transport: kept
      msg(9, 148, 6), // unknown type
      msg(1, 100, 7), // bad length
      msg(1, 148, 8), // over the share
    ];
    a.send(sendBatch(fromA, to));
    c.send(sendBatch([msg(1, 148, 9)], to)); // another source, fresh: kept though A filled the cap
    const shed = new Array<number>(SHED_REASONS).fill(0);
    const tags: number[] = [];
    rx.start((batch) => {
      for (let k = 0; k < SHED_REASONS; k++) shed[k]! += batch.shed[k]!;
      batch.shed.fill(0);
      for (let i = 0; i < batch.count; i++) tags.push(batch.packet(i)[4]!);
    }, 0);
    await waitFor('every datagram delivered or shed', () => tags.length + shed.reduce((x, y) => x + y, 0) === 11, 5000, 10);
    assert.deepEqual(tags, [0, 1, 2, 3, 5, 9], 'kept in order');
    const want = new Array<number>(SHED_REASONS).fill(0);
    want[SHED_TOO_SHORT] = 1;
    want[SHED_UNKNOWN_TYPE] = 1;
    want[SHED_BAD_LENGTH] = 1;
    want[SHED_SOURCE_LIMITED] = 1;
    want[SHED_QUEUE_FULL] = 1;
    assert.deepEqual(shed, want);
    assert.equal(rx.stats.recvShed, 5);
    assert.equal(rx.stats.received, 6);
    // Under load a new source's share is the smaller one as well (a burst of 1 here).
    rx.shedUnderLoad(true);
    const d = bind({ host: '127.0.0.4' });
    d.send(sendBatch([msg(1, 148, 10), msg(1, 148, 11), msg(1, 148, 12)], to));
    await waitFor('the three delivered or shed', () => tags.length + shed.reduce((x, y) => x + y, 0) === 14, 5000, 10);
    assert.deepEqual(tags.slice(6), [10]);
    assert.equal(shed[SHED_SOURCE_LIMITED], 3);
    assert.equal(rx.shedHandshakes(null), false, 'and off again');
  });
}
