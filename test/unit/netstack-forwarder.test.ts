/**
 * The netstack exit's forwarder (src/server/netstack-exit/) over in-memory
 * packets: a client netstack joined by test/support/netstack-link.ts to the
 * exit's netstack in forwarding mode, whose forwarder opens real host
 * sockets to servers on 127.0.0.1. The link's simulated clock advances a few
 * ms per turn while real time lets the host sockets work.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { createServer, Socket as NetSocket, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, test } from 'node:test';
import { DestinationPolicy } from '../../src/device/destination-policy.js';
import { ExitForwarder, type ExitForwarderOptions, type ForwarderLimits } from '../../src/server/netstack-exit/forwarder.js';
import type { TcpConnection } from '../../src/netstack/tcp/connection.js';
import { collect, Link } from '../support/netstack-link.js';
import { icmp6EchoRequest, icmpEchoRequest } from '../support/packets.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function pattern(n: number, seed = 0): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i + seed) % 251;
  return b;
}

interface Exit {
  link: Link;
  fwd: ExitForwarder;
  /** The exit's simulated clock, read by the forwarder too. */
  now(): number;
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanups.splice(0).reverse()) f();
});

/** A client stack (a: 10.0.0.1) linked to an exit stack (b: 10.0.0.2) in forwarding mode. */
function exit(o: { allow?: string[]; own?: string[]; host?: string[]; ownTcp?: number[]; ownUdp?: number[]; limits?: Partial<ForwarderLimits>; silent?: boolean; connect?: ExitForwarderOptions['connect']; clientOf?: ExitForwarderOptions['clientOf']; echo?: ExitForwarderOptions['echo'] } = {}): Exit {
  let link: Link | null = null;
  const clock = { now: () => link!.now };
  const fwd = new ExitForwarder({
    policy: new DestinationPolicy({ own: o.own ?? ['10.0.0.0/24'], allow: o.allow ?? ['127.0.0.0/8'], host: o.host ?? [] }),
    ownPorts: { tcp: o.ownTcp ?? [], udp: o.ownUdp ?? [] },
    limits: o.limits,
    clock,
    clientOf: o.clientOf,
    echo: o.echo,
    // A destination that never answers: a socket that is never connected (no event ever comes).
    ...(o.silent ? { connect: () => new NetSocket() } : o.connect ? { connect: o.connect } : {}),
  });
  link = new Link({ b: { forwarder: fwd } });
  fwd.attach(link.b);
  cleanups.push(() => fwd.close());
  return { link, fwd, now: clock.now };
}

/** Runs the link and lets real sockets work until `done` holds (or fails after `ms` of real time). */
async function pump(l: Link, done: () => boolean, ms = 15_000, stepMs = 5): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    l.run(() => false, stepMs);
    if (done()) return;
    if (Date.now() > until) assert.fail('timed out');
    await new Promise((r) => setImmediate(r));
  }
}

/** A TCP server on 127.0.0.1 that does `onConn` with every connection. */
async function server(onConn: (s: Socket) => void): Promise<{ port: number; srv: Server }> {
  const srv = createServer({ allowHalfOpen: true }, onConn);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => srv.close());
  return { port: (srv.address() as AddressInfo).port, srv };
}

/** How many SYN-ACKs the exit sent (the link records the exit's wire). */
function synAcks(l: Link): number {
  let n = 0;
  for (const p of l.bWire.seen) if (p[9] === 6 && (p[20 + 13]! & 0x12) === 0x12) n++;
  return n;
}

describe('TCP through the forwarder', () => {
  test('a SYN to an arbitrary destination is answered only after the host connection is up', async () => {
    let accepted = 0;
    const { port } = await server(() => accepted++);
    // The host connect starts only when the test says so: until then the SYN must stay unanswered.
    let startConnect: (() => void) | null = null;
    const { link, fwd } = exit({
      connect: (o) => {
        const s = new NetSocket({ allowHalfOpen: true });
        startConnect = () => s.connect(o.port, o.host);
        return s;
      },
    });
    link.bWire.record = true;
    link.aWire.record = true;
    const got = collect(link.a.connect('127.0.0.1', port));
    // Simulated time runs on until the client has retransmitted its SYN twice, real time lets the host socket work meanwhile.
    const syns = (): number => link.aWire.seen.filter((p) => p[9] === 6 && (p[20 + 13]! & 0x12) === 0x02).length;
    await pump(link, () => syns() >= 3, 15_000, 50);
    assert.equal(synAcks(link), 0, 'no SYN-ACK while the host connection is not up');
    assert.equal(got.connected, false);
    assert.equal(fwd.figures.pending, 1, 'one pending host connection, however many SYNs came');
    assert.ok(link.b.drops['tcp-syn-held'] > 0, 'the retransmitted SYNs were held, not answered');
    startConnect!();
    await pump(link, () => got.connected);
    assert.equal(accepted, 1, 'one host connection');
    assert.ok(synAcks(link) >= 1);
    assert.equal(fwd.figures.pending, 0);
    assert.equal(fwd.opened.tcp, 1);
  });

  test('refused → RST (ECONNREFUSED at the client) and counted', async () => {
    const { port, srv } = await server(() => {});
    await new Promise<void>((r) => srv.close(() => r()));
    const { link, fwd } = exit();
    const c = link.a.connect('127.0.0.1', port);
    const got = collect(c);
    await pump(link, () => got.closed);
    assert.equal(got.error, 'ECONNREFUSED');
    assert.equal(fwd.drops['tcp-connect-refused'], 1);
    assert.equal(fwd.figures.tcp, 0);
  });

  test('no answer within the connect timeout → ICMP host unreachable to the client', async () => {
    const { link, fwd } = exit({ silent: true, limits: { connectTimeoutMs: 300 } });
    link.aWire.record = true;
    link.bWire.record = true;
    link.a.connect('192.0.2.1', 9);
    await pump(link, () => fwd.drops['tcp-connect-timeout'] === 1);
    link.run(() => false, 5);
    const icmp = link.bWire.seen.filter((p) => p[9] === 1);
    assert.equal(icmp.length, 1, 'one ICMP error');
    assert.equal(icmp[0]![20], 3, 'destination unreachable');
    assert.equal(icmp[0]![21], 1, 'host unreachable');
    assert.equal(synAcks(link), 0);
  });

  test('a connect the host refuses for permission → ICMP administratively prohibited, quoting the SYN', async () => {
    const { link, fwd } = exit({
      connect: () => {
        const s = new NetSocket();
        setImmediate(() => s.emit('error', Object.assign(new Error('EACCES'), { code: 'EACCES' })));
        return s;
      },
    });
    link.bWire.record = true;
    const c = link.a.connect('127.0.0.1', 4242);
    await pump(link, () => fwd.drops['tcp-connect-unreachable'] === 1);
    link.run(() => false, 5);
    const icmp = link.bWire.seen.filter((p) => p[9] === 1);
    assert.equal(icmp.length, 1);
    const m = Buffer.from(icmp[0]!);
    assert.deepEqual([m[20], m[21]], [3, 13], 'destination unreachable, communication administratively prohibited');
    assert.deepEqual([...m.subarray(12, 16)], [127, 0, 0, 1], 'from the destination');
    // RFC 792: the quoted IP header and the first 8 bytes of the SYN: the client matches its connection by them.
    assert.deepEqual([...m.subarray(28 + 12, 28 + 20)], [10, 0, 0, 1, 127, 0, 0, 1]);
    assert.equal(m.readUInt16BE(28 + 20), c.localPort);
    assert.equal(m.readUInt16BE(28 + 22), 4242);
    assert.equal(m.readUInt32BE(28 + 24), c.iss);
  });

  test('a held SYN keeps its own addresses while the input batch is reused: its retransmission finds it, its ICMP error quotes it', () => {
    // The stack's input batch is a Buffer reused for every packet, as the WireGuard device's is: the SYN
    // to a second destination lands in the slot the first SYN came in before that one is retransmitted.
    const socks: NetSocket[] = [];
    const opened: string[] = [];
    const { link, fwd } = exit({
      connect: (o) => {
        opened.push(`${o.host}:${o.port}`);
        const s = new NetSocket();
        socks.push(s);
        return s;
      },
    });
    link.bWire.record = true;
    const a = link.a.connect('192.0.2.1', 80);
    link.run(() => false, 5);
    link.a.connect('192.0.2.2', 81);
    link.run(() => false, 5);
    // Both clients' SYNs retransmitted (RFC 6298 §5) while their host connects are pending.
    link.run(() => false, 3_500);
    assert.ok(link.b.drops['tcp-syn-held'] >= 2, 'the retransmissions found their held connections');
    assert.deepEqual(opened, ['192.0.2.1:80', '192.0.2.2:81'], 'one host connect per client SYN');
    assert.equal(fwd.figures.pending, 2);
    socks[0]!.emit('error', Object.assign(new Error('EHOSTUNREACH'), { code: 'EHOSTUNREACH' }));
    link.run(() => false, 5);
    const icmp = link.bWire.seen.filter((p) => p[9] === 1).map((p) => Buffer.from(p));
    assert.equal(icmp.length, 1, 'one ICMP error for the held SYN');
    const m = icmp[0]!;
    assert.deepEqual([m[20], m[21]], [3, 1], 'host unreachable');
    assert.deepEqual([...m.subarray(12, 20)], [192, 0, 2, 1, 10, 0, 0, 1], 'from the first destination to the client');
    assert.deepEqual([...m.subarray(28 + 12, 28 + 20)], [10, 0, 0, 1, 192, 0, 2, 1], "quoting the first SYN's addresses");
    assert.equal(m.readUInt16BE(28 + 20), a.localPort);
    assert.equal(m.readUInt16BE(28 + 22), 80);
    assert.equal(m.readUInt32BE(28 + 24), a.iss);
    assert.equal(fwd.figures.pending, 1, 'the second SYN still waits');
  });

  test('IPv6: no answer within the connect timeout → ICMPv6 address unreachable', async () => {
    const { link, fwd } = exit({ silent: true, allow: ['2001:db8::/32'], limits: { connectTimeoutMs: 200 } });
    link.bWire.record = true;
    link.a.connect('2001:db8::7', 80);
    await pump(link, () => fwd.drops['tcp-connect-timeout'] === 1);
    link.run(() => false, 5);
    const icmp = link.bWire.seen.filter((p) => p[0]! >> 4 === 6 && p[6] === 58);
    assert.equal(icmp.length, 1);
    assert.deepEqual([icmp[0]![40], icmp[0]![41]], [1, 3], 'destination unreachable, address unreachable (RFC 4443 §3.1)');
    assert.equal(synAcks(link), 0);
  });

  test('the splice is byte-exact both ways, with half-close carried across', async () => {
    const up = pattern(700_000, 3);
    const down = pattern(900_000, 7);
    let hostGot: Buffer | null = null;
    const { port } = await server((s) => {
      const parts: Buffer[] = [];
      s.on('data', (d: Buffer) => parts.push(d));
      // The client's FIN arrives as 'end': the host answers, then ends its side.
      s.on('end', () => {
        hostGot = Buffer.concat(parts);
        s.end(down);
      });
    });
    const { link } = exit();
    const c = link.a.connect('127.0.0.1', port);
    const got = collect(c);
    let off = 0;
    const feed = (): void => {
      while (off < up.length) {
        const n = c.write(up, off, Math.min(65536, up.length - off));
        if (n === 0) return;
        off += n;
      }
      c.shutdown();
    };
    c.events = { ...c.events, onConnect: () => (got.connected = true, feed()), onWritable: feed };
    await pump(link, () => got.ended && hostGot !== null);
    assert.equal(sha(hostGot!), sha(up), 'client → host');
    const all = Buffer.concat(got.data);
    assert.equal(all.length, down.length);
    assert.equal(sha(all), sha(down), 'host → client');
  });

  test('backpressure: a client that does not read stops the host socket; bounded, then all of it arrives', async () => {
    const total = 8 * 1024 * 1024;
    let hostPaused = 0;
    const { port } = await server((s) => {
      const chunk = pattern(65536);
      let sent = 0;
      const push = (): void => {
        while (sent < total) {
          sent += chunk.length;
          if (!s.write(chunk)) {
            hostPaused++;
            s.once('drain', push);
            return;
          }
        }
        s.end();
      };
      push();
    });
    const { link } = exit();
    const c = link.a.connect('127.0.0.1', port);
    const got = collect(c, { read: false });
    await pump(link, () => got.connected);
    // Not reading: the client's window closes, the exit's send buffer fills, the host socket is paused and its writes back up.
    await pump(link, () => hostPaused > 0);
    const held = c.readableBytes;
    assert.ok(held <= link.a.tcpOptions.receiveBuffer, `client holds ${held} bytes, at most its receive buffer`);
    assert.ok(hostPaused > 0, 'the host socket saw backpressure');
    let n = 0;
    const drain = (): void => {
      for (let b = c.read(); b; b = c.read()) n += b.length;
    };
    c.events = { ...c.events, onReadable: drain, onEnd: () => (got.ended = true) };
    drain();
    await pump(link, () => got.ended, 30_000);
    drain();
    assert.equal(n, total);
  });

  test('IPv6: a client connection to [::1] relayed byte-exact', async () => {
    const down = pattern(300_000, 11);
    const srv = createServer((s) => s.end(down));
    await new Promise<void>((r) => srv.listen(0, '::1', r));
    cleanups.push(() => srv.close());
    const { link, fwd } = exit({ allow: ['::1/128'] });
    const c = link.a.connect('::1', (srv.address() as AddressInfo).port);
    const got = collect(c);
    await pump(link, () => got.ended);
    assert.equal(sha(Buffer.concat(got.data)), sha(down));
    assert.equal(fwd.opened.tcp, 1);
  });

  test("a client's RST resets the host connection", async () => {
    let hostErr = '';
    let hostSock: Socket | null = null;
    const { port } = await server((s) => {
      hostSock = s;
      s.on('error', (e: NodeJS.ErrnoException) => (hostErr = e.code ?? 'error'));
    });
    const { link } = exit();
    const c: TcpConnection = link.a.connect('127.0.0.1', port);
    const got = collect(c);
    await pump(link, () => got.connected && hostSock !== null);
    c.abort();
    await pump(link, () => hostErr !== '' || (hostSock as Socket | null)?.destroyed === true);
    assert.equal(hostErr, 'ECONNRESET');
  });

  test('a client that vanished is found by keepalive: its relay and host connection close', async () => {
    let hostClosed = false;
    const { port } = await server((s) => {
      s.on('error', () => {});
      s.on('close', () => (hostClosed = true));
    });
    const { link, fwd } = exit({ limits: { keepAliveIdleMs: 60_000 } });
    const got = collect(link.a.connect('127.0.0.1', port));
    await pump(link, () => got.connected && fwd.figures.tcp === 1);
    // The client goes silent: nothing it sends reaches the exit any more (its keepalive answers included).
    link.aWire.filter = () => false;
    await pump(link, () => hostClosed && fwd.figures.tcp === 0, 15_000, 5_000);
  });

  test('a host RST aborts the client connection', async () => {
    const { port } = await server((s) => s.resetAndDestroy());
    const { link } = exit();
    const c = link.a.connect('127.0.0.1', port);
    const got = collect(c);
    await pump(link, () => got.closed);
    assert.ok(got.error === 'ECONNRESET' || got.error === 'ECONNREFUSED', String(got.error));
  });
});

describe('policy and limits', () => {
  test('refused destinations get a RST and no host connection: private, own pool, the exit\'s own listener port', async () => {
    let accepted = 0;
    const { port } = await server(() => accepted++);
    const { link, fwd } = exit({ allow: ['127.0.0.0/8'], ownTcp: [port] });
    for (const [addr, p] of [['192.168.1.1', 80], ['10.0.0.9', 80], ['127.0.0.1', port], ['169.254.169.254', 80]] as const) {
      const c = link.a.connect(addr, p);
      const got = collect(c);
      await pump(link, () => got.closed);
      assert.equal(got.error, 'ECONNREFUSED', `${addr}:${p}`);
    }
    assert.equal(fwd.drops['tcp-refused-by-policy'], 4);
    assert.equal(accepted, 0);
  });

  test('UDP to a refused destination is dropped and counted', async () => {
    const { link, fwd } = exit({ allow: [] });
    const u = link.a.udpBind(0, () => {});
    u.send(Buffer.from('x'), '127.0.0.1', 53);
    u.send(Buffer.from('x'), '10.1.2.3', 53);
    await pump(link, () => fwd.drops['udp-refused-by-policy'] === 2);
    assert.equal(fwd.figures.udp, 0);
  });

  test("UDP to the exit's own WireGuard port on loopback is refused although loopback is open", async () => {
    const { link, fwd } = exit({ allow: ['127.0.0.0/8'], ownUdp: [51820] });
    const u = link.a.udpBind(0, () => {});
    u.send(Buffer.from('x'), '127.0.0.1', 51820);
    u.send(Buffer.from('x'), '127.0.0.2', 51820);
    await pump(link, () => fwd.drops['udp-refused-by-policy'] === 2);
    assert.equal(fwd.opened.udp, 0);
  });

  test('connections per client are bounded: the one over the limit gets a RST, counted', async () => {
    const socks: Socket[] = [];
    const { port } = await server((s) => socks.push(s));
    const { link, fwd } = exit({ limits: { tcpPerClient: 2 } });
    const a = collect(link.a.connect('127.0.0.1', port));
    const b = collect(link.a.connect('127.0.0.1', port));
    await pump(link, () => a.connected && b.connected);
    const c = collect(link.a.connect('127.0.0.1', port));
    await pump(link, () => c.closed);
    assert.equal(c.error, 'ECONNREFUSED');
    assert.equal(fwd.drops['tcp-client-limit'], 1);
    assert.equal(fwd.figures.tcp, 2);
  });

  test('pending SYNs per client are bounded', async () => {
    const { link, fwd } = exit({ silent: true, limits: { pendingPerClient: 3, connectTimeoutMs: 60_000 } });
    link.bWire.record = true;
    const conns = Array.from({ length: 5 }, (_, i) => collect(link.a.connect('192.0.2.1', 1000 + i)));
    link.run(() => false, 5);
    assert.equal(fwd.figures.pending, 3);
    assert.equal(fwd.drops['tcp-pending-limit'], 2);
    // The SYNs over the limit get no answer (no RST, no ICMP that would abort a Linux connect): the
    // clients stay in SYN-SENT and retransmit.
    assert.deepEqual(conns.map((c) => c.closed), [false, false, false, false, false]);
    assert.equal(link.bWire.seen.length, 0, 'the exit sent nothing back');
  });
});

describe('limits per client', () => {
  // The client stack's two addresses (10.0.0.1, fd00::1) belong to one peer, as the device's allowed IPs would say.
  const onePeer = (a: Uint8Array): string | null => ((a.length === 4 ? a[0] === 10 : a[0] === 0xfd) ? 'peer-1' : null);

  test("one client's IPv4 and IPv6 connects share one pending budget", () => {
    const { link, fwd } = exit({ silent: true, allow: ['2001:db8::/32'], clientOf: onePeer, limits: { pendingPerClient: 2, connectTimeoutMs: 60_000 } });
    link.a.connect('192.0.2.1', 80);
    link.a.connect('2001:db8::7', 80);
    link.a.connect('2001:db8::8', 80);
    link.run(() => false, 5);
    assert.equal(fwd.figures.pending, 2);
    assert.equal(fwd.drops['tcp-pending-limit'], 1, 'the third connect is over the one budget');
  });

  test('without an owner for the address, the address is the client (two budgets)', () => {
    const { link, fwd } = exit({ silent: true, allow: ['2001:db8::/32'], limits: { pendingPerClient: 2, connectTimeoutMs: 60_000 } });
    link.a.connect('192.0.2.1', 80);
    link.a.connect('2001:db8::7', 80);
    link.a.connect('2001:db8::8', 80);
    link.run(() => false, 5);
    assert.equal(fwd.figures.pending, 3);
    assert.equal(fwd.drops['tcp-pending-limit'], 0);
  });

  test("one client's IPv4 and IPv6 UDP flows share one budget", async () => {
    const { link, fwd } = exit({ allow: ['127.0.0.0/8', '::1/128'], clientOf: onePeer, limits: { udpPerClient: 1 } });
    const u = link.a.udpBind(0, () => {});
    u.send(Buffer.from('a'), '127.0.0.1', 9);
    link.run(() => false, 5);
    u.send(Buffer.from('b'), '::1', 9);
    link.run(() => false, 5);
    assert.equal(fwd.opened.udp, 1);
    assert.equal(fwd.drops['udp-flow-limit'], 1);
  });

  test("echo requests are counted against the client, whichever family they come in", () => {
    const keys: string[] = [];
    const echo = { attach: () => {}, relay: (_p: unknown, key: string) => (keys.push(key), true), expire: () => {}, close: () => {} };
    const { link } = exit({ allow: ['127.0.0.0/8', '::1/128'], clientOf: onePeer, echo });
    link.inject(link.b, icmpEchoRequest('10.0.0.1', '127.0.0.1', 7, 1));
    link.inject(link.b, icmp6EchoRequest('fd00::1', '::1', 7, 2));
    assert.deepEqual(keys, ['peer-1', 'peer-1']);
  });
});

describe('UDP flows', () => {
  let echo: DgramSocket;
  const echoServer = async (): Promise<number> => {
    echo = createSocket('udp4');
    echo.on('message', (m, r) => echo.send(Buffer.concat([Buffer.from('re:'), m]), r.port, r.address));
    await new Promise<void>((r) => echo.bind(0, '127.0.0.1', r));
    cleanups.push(() => echo.close());
    return echo.address().port;
  };

  test('a flow per (client, port, destination, port); replies go back to the right client port', async () => {
    const port = await echoServer();
    const { link, fwd } = exit();
    const got: string[] = [];
    const u1 = link.a.udpBind(0, (d) => got.push(`1:${d.toString()}`));
    const u2 = link.a.udpBind(0, (d) => got.push(`2:${d.toString()}`));
    u1.send(Buffer.from('a'), '127.0.0.1', port);
    u2.send(Buffer.from('b'), '127.0.0.1', port);
    u1.send(Buffer.from('c'), '127.0.0.1', port);
    await pump(link, () => got.length === 3);
    assert.deepEqual(got.sort(), ['1:re:a', '1:re:c', '2:re:b']);
    assert.equal(fwd.figures.udp, 2);
    assert.equal(fwd.opened.udp, 2);
  });

  test('flows keep their own addresses while the input batch is reused: each reply comes from its destination', async () => {
    // Two echo servers on two loopback addresses; one client port sends to both, each datagram in an input
    // batch of its own, so the second lands in the slot the first came in before the first one's reply.
    const servers = await Promise.all(['127.0.0.1', '127.0.0.2'].map(async (host) => {
      const s = createSocket('udp4');
      s.on('message', (m, r) => s.send(Buffer.concat([Buffer.from(`${host}:`), m]), r.port, r.address));
      await new Promise<void>((r) => s.bind(0, host, r));
      cleanups.push(() => s.close());
      return { host, port: s.address().port };
    }));
    const { link, fwd } = exit();
    const got: string[] = [];
    const u = link.a.udpBind(0, (d, from) => got.push(`${from} ${d.toString()}`));
    for (const [i, round] of ['a', 'b'].entries()) {
      for (const { host, port } of servers) {
        u.send(Buffer.from(round), host, port);
        link.run(() => false, 5);
      }
      await pump(link, () => got.length === i * 2 + 2);
    }
    assert.deepEqual(got.sort(), ['127.0.0.1 127.0.0.1:a', '127.0.0.1 127.0.0.1:b', '127.0.0.2 127.0.0.2:a', '127.0.0.2 127.0.0.2:b']);
    assert.equal(fwd.opened.udp, 2, 'the second round found both flows');
  });

  test('a large datagram (QUIC-sized, within the MTU) goes through whole', async () => {
    const port = await echoServer();
    const { link } = exit();
    let got: Buffer | null = null;
    const u = link.a.udpBind(0, (d) => (got = d));
    const big = pattern(1350 - 3);
    u.send(big, '127.0.0.1', port);
    await pump(link, () => got !== null);
    assert.equal(got!.length, big.length + 3);
    assert.equal(sha(got!.subarray(3)), sha(big));
  });

  test('idle flows expire: port 53 sooner than others', async () => {
    const port = await echoServer();
    const { link, fwd } = exit({ limits: { dnsIdleMs: 1000, udpIdleMs: 5000 } });
    const u = link.a.udpBind(0, () => {});
    u.send(Buffer.from('a'), '127.0.0.1', port);
    u.send(Buffer.from('b'), '127.0.0.1', 53);
    await pump(link, () => fwd.figures.udp === 2);
    link.now += 2000;
    fwd.sweep();
    assert.equal(fwd.figures.udp, 1, 'the port-53 flow is gone after its 1 s');
    link.now += 4000;
    fwd.sweep();
    assert.equal(fwd.figures.udp, 0);
  });

  test('flows per client are bounded, counted', async () => {
    const port = await echoServer();
    const { link, fwd } = exit({ limits: { udpPerClient: 2 } });
    for (let i = 0; i < 4; i++) link.a.udpBind(0, () => {}).send(Buffer.from('x'), '127.0.0.1', port);
    await pump(link, () => fwd.drops['udp-flow-limit'] === 2);
    assert.equal(fwd.figures.udp, 2);
  });
});
