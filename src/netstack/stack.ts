/**
 * The userspace TCP/IP host: IP packets in (input), IP packets out (through
 * a PacketSink), time from an injected clock, no sockets and no timers of its
 * own — the same sans-I/O shape as the WireGuard device it sits under.
 *
 * Entry points, each ending with the same epilogue:
 *
 *   input(batch)  packets for us: IPv4/IPv6 → ICMP echo, UDP sockets (port
 *                 unreachable otherwise), TCP connections by 4-tuple, then
 *                 listeners (RST for a closed port, RFC 9293 §3.10.7.1)
 *   tick()        timers due at the clock's now (TCP retransmission, delayed
 *                 ACK, keepalive, TIME-WAIT); nextDeadline() says when next
 *   flush()       work the application created between entry points
 *                 (write, read, close) — the owner calls it soon after wake()
 *
 * Epilogue: every connection marked dirty sends what it owes (one pass per
 * connection per batch, so ACKs and data bursts are coalesced), accepted
 * connections go to their listeners, application events are raised, and the
 * output batch goes to the sink. Events run after the stack's own state is
 * consistent, so callbacks may call back into the stack.
 *
 * Forwarding mode (an exit's userspace NAT, forward.ts): with a forwarder,
 * TCP, UDP and echo requests to any other unicast address go to it instead
 * of being dropped as not-for-us.
 *
 * Malformed or unexpected input is dropped and counted in `drops`, never
 * thrown. Growth is bounded: half-open connections per listener (synBacklog),
 * connections in all (maxConnections), per-connection buffers (tcp options).
 */
import type { PacketBatch } from '../io/batch.js';
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from '../io/ip-address.js';
import { systemRandom, type Random } from '../protocol/random.js';
import { newDropCounters, type DropCounters } from './counters.js';
import { ForwardedPacket, type Forwarder } from './forward.js';
import { echoRequestAt, handleIcmp, IcmpRateLimiter, sendPortUnreachable, sendUnreachable, type Unreachable, writeEchoReply } from './icmp.js';
import { addrEquals, ipHeaderLen, IpView, isMulticastOrBroadcast, parseIp, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, writeIpHeader } from './ip.js';
import { Output, type PacketSink } from './output.js';
import { TcpConnection, type TcpHost, TcpStats } from './tcp/connection.js';
import { IsnGenerator } from './tcp/isn.js';
import { DEFAULT_TCP_OPTIONS, type TcpOptions } from './tcp/options.js';
import { ACK, RST, SYN, FIN, TCP_HEADER_LEN, TcpView, parseTcp, writeTcpHeader } from './tcp/segment.js';
import { seqAdd } from './tcp/seq.js';
import { parseUdp, UdpView, writeUdp } from './udp.js';

export interface StackClock {
  /** Monotonic milliseconds. */
  now(): number;
}

export interface StackOptions {
  /** The host's own addresses (wg-quick Address without the prefix length). */
  addresses: string[];
  /** Link MTU: the largest IP packet sent and the basis of the advertised MSS. */
  mtu: number;
  clock: StackClock;
  sink: PacketSink;
  /** Called when application calls made work outside an entry point: call flush() soon (e.g. in a microtask). */
  wake?: () => void;
  /** Called when nextDeadline() moved earlier: an owner with a timer re-arms it. */
  onDeadline?: (t: number) => void;
  random?: Random;
  tcp?: Partial<TcpOptions>;
  /** Half-open (SYN-RECEIVED) connections per listener; further SYNs are dropped (default 128, Linux's somaxconn of old). */
  synBacklog?: number;
  /** TCP connections in all states (default 16384). */
  maxConnections?: number;
  /** Forwarding mode (forward.ts): packets to destinations that are not the stack's own go to this forwarder. */
  forwarder?: Forwarder;
}

export interface TcpListener {
  readonly port: number;
  close(): void;
}

interface ListenerEntry extends TcpListener {
  onAccept: (c: TcpConnection) => void;
  halfOpen: number;
  open: boolean;
}

export interface UdpSocket {
  readonly port: number;
  /** Sends one datagram; false when the address is not usable (wrong family, no local address of it). */
  send(data: Uint8Array, address: string, port: number): boolean;
  close(): void;
}

type UdpHandler = (data: Buffer, address: string, port: number) => void;

const EPHEMERAL_LOW = 49152;
const EPHEMERAL_COUNT = 65536 - EPHEMERAL_LOW;

export class Stack implements TcpHost {
  readonly drops: DropCounters = newDropCounters();
  readonly output: Output;
  readonly mtu: number;
  readonly tcpOptions: TcpOptions;
  /** Packets accepted by input(), by protocol. */
  readonly received = { tcp: 0, udp: 0, icmp: 0 };
  /** Totals over connections that have been released, plus live ones via tcpStats(). */
  private readonly closedStats = new TcpStats();
  private readonly clock: StackClock;
  private readonly random: Random;
  private readonly wake: () => void;
  private readonly onDeadline: (t: number) => void;
  private readonly v4: Uint8Array[] = [];
  private readonly v6: Uint8Array[] = [];
  private readonly ip = new IpView();
  private readonly tcp = new TcpView();
  private readonly udp = new UdpView();
  private readonly isn: IsnGenerator;
  private readonly icmpLimiter = new IcmpRateLimiter();
  private readonly buckets = new Map<number, TcpConnection>();
  private readonly conns = new Set<TcpConnection>();
  /**
   * The connections tick() scans: all but those in TIME-WAIT. A busy exit that closes first (an HTTP server's
   * "Connection: close") holds thousands in TIME-WAIT for 2 MSL; scanned on every tick, they made each timer
   * cost O(all connections). Their one timer has the same length for all, so they wait in arrival order in
   * `waiting` (from `waitingHead`) and tick() looks at the oldest only.
   */
  private readonly scanned = new Set<TcpConnection>();
  private waiting: TcpConnection[] = [];
  private waitingHead = 0;
  /** TIME-WAIT connections ended early to make room at the connection cap (roomForConnection). */
  timeWaitRecycled = 0;
  private readonly listeners = new Map<number, ListenerEntry>();
  private readonly halfOpenOf = new Map<TcpConnection, ListenerEntry>();
  private readonly udpSockets = new Map<number, UdpHandler>();
  private readonly synBacklog: number;
  private readonly maxConnections: number;
  private readonly forwarder: Forwarder | null;
  private readonly fwd = new ForwardedPacket();
  /** A SYN rebuilt for the ICMP error that refuses a held connection (IPv6 header + TCP header). */
  private readonly quote = new Uint8Array(60);
  private readonly quoteView = new IpView();
  private dirty: TcpConnection[] = [];
  private spare: TcpConnection[] = [];
  private accepts: TcpConnection[] = [];
  private inEntry = false;
  private woken = false;
  private earliest = Infinity;

  constructor(opts: StackOptions) {
    this.clock = opts.clock;
    this.random = opts.random ?? systemRandom;
    this.wake = opts.wake ?? (() => {});
    this.onDeadline = opts.onDeadline ?? (() => {});
    if (!Number.isInteger(opts.mtu) || opts.mtu < 1280 || opts.mtu > 65535) throw new RangeError(`mtu must be an integer in 1280..65535, got ${opts.mtu}`);
    this.mtu = opts.mtu;
    for (const a of opts.addresses) {
      const b4 = parseIPv4(a);
      const b6 = b4 ? null : parseIPv6(a);
      if (b4) this.v4.push(b4);
      else if (b6) this.v6.push(b6);
      else throw new TypeError(`not an IP address: ${a}`);
    }
    if (this.v4.length + this.v6.length === 0) throw new RangeError('the stack needs at least one address');
    this.tcpOptions = { ...DEFAULT_TCP_OPTIONS, ...opts.tcp };
    this.synBacklog = opts.synBacklog ?? 128;
    this.maxConnections = opts.maxConnections ?? 16384;
    this.forwarder = opts.forwarder ?? null;
    const secret = new Uint8Array(32);
    this.random.fill(secret);
    this.isn = new IsnGenerator(secret);
    this.output = new Output(opts.sink);
  }

  // ---- entry points ----------------------------------------------------------

  /** Packets addressed to the host (packet i at batch.offsets[i], batch.lengths[i]). */
  input(batch: PacketBatch): void {
    this.inEntry = true;
    const now = this.clock.now();
    const data = batch.data;
    for (let i = 0; i < batch.count; i++) this.packet(data, batch.start(i), batch.lengths[i]!, now);
    this.epilogue(now);
  }

  /** Runs the timers that are due. */
  tick(): void {
    const now = this.clock.now();
    this.inEntry = true;
    if (now >= this.earliest) {
      let next = Infinity;
      for (const c of this.scanned) {
        if (c.nextDeadline() <= now) c.tick(now);
        const d = c.nextDeadline();
        if (d < next) next = d;
      }
      const d = this.tickWaiting(now);
      this.earliest = d < next ? d : next;
    }
    this.epilogue(now);
  }

  /** Sends what application calls queued since the last entry point. */
  flush(): void {
    this.woken = false;
    this.inEntry = true;
    this.epilogue(this.clock.now());
  }

  /**
   * Runs the TIME-WAIT connections that are due, oldest first; returns the next one's deadline. A wait restarted
   * by a retransmitted FIN (RFC 9293 §3.10.7.4) goes to the back again: the order is then only nearly by
   * deadline, so a connection may leave TIME-WAIT a little late, never early.
   */
  private tickWaiting(now: number): number {
    const q = this.waiting;
    while (this.waitingHead < q.length) {
      const c = q[this.waitingHead]!;
      if (!this.conns.has(c) || c.state.kind !== 'time-wait') {
        this.waitingHead++; // released already (a RST in TIME-WAIT, the stack closing)
        continue;
      }
      if (c.nextDeadline() > now) break;
      this.waitingHead++;
      c.tick(now);
      if (this.conns.has(c) && c.state.kind === 'time-wait') q.push(c);
    }
    if (this.waitingHead > 1024 && this.waitingHead * 2 > q.length) {
      this.waiting = q.slice(this.waitingHead);
      this.waitingHead = 0;
    }
    return this.waitingHead < this.waiting.length ? this.waiting[this.waitingHead]!.nextDeadline() : Infinity;
  }

  /** When tick() should run next (Infinity: no timer set). */
  nextDeadline(): number {
    return this.earliest;
  }

  private epilogue(now: number): void {
    // An exception from an application callback must not leave the stack mid-entry: the others still run,
    // the output still goes out, and the first exception is rethrown at the end.
    let thrown: unknown = null;
    const guard = (fn: () => void): void => {
      try {
        fn();
      } catch (e) {
        thrown ??= e;
      }
    };
    // A callback may create more work; a few rounds settle it, the rest waits for the next entry point.
    for (let round = 0; round < 4 && (this.dirty.length > 0 || this.accepts.length > 0); round++) {
      const list = this.dirty;
      this.dirty = this.spare;
      for (const c of list) {
        c.dirty = false;
        c.output(now);
      }
      if (this.accepts.length > 0) {
        const acc = this.accepts;
        this.accepts = [];
        for (const c of acc) {
          const l = this.halfOpenOf.get(c);
          this.halfOpenOf.delete(c);
          if (l) {
            l.halfOpen--;
            if (l.open) guard(() => l.onAccept(c));
            else c.abort();
          }
        }
      }
      for (const c of list) guard(() => c.dispatch());
      list.length = 0;
      this.spare = list;
    }
    this.output.flush();
    this.inEntry = false;
    if (this.dirty.length > 0) this.requestWake();
    if (thrown !== null) throw thrown;
  }

  private requestWake(): void {
    if (this.woken) return;
    this.woken = true;
    this.wake();
  }

  // ---- TcpHost ---------------------------------------------------------------

  markDirty(c: TcpConnection): void {
    if (!c.dirty) {
      c.dirty = true;
      this.dirty.push(c);
    }
    if (!this.inEntry) this.requestWake();
  }

  noteDeadline(t: number): void {
    if (t < this.earliest) {
      this.earliest = t;
      this.onDeadline(t);
    }
  }

  timeWait(c: TcpConnection): void {
    if (this.scanned.delete(c)) this.waiting.push(c);
  }

  /**
   * Whether a new connection fits under maxConnections. At the cap the oldest connection in TIME-WAIT makes
   * room, as Linux ends TIME-WAIT sockets past net.ipv4.tcp_max_tw_buckets: an exit that closes first holds
   * 2 MSL × its connection rate there (60 s × 300 connections/s fills 16384), and a new connection is worth
   * more than the wait's protection against a stray old duplicate. Counted in timeWaitRecycled.
   */
  private roomForConnection(): boolean {
    if (this.conns.size < this.maxConnections) return true;
    const q = this.waiting;
    while (this.waitingHead < q.length) {
      const c = q[this.waitingHead++]!;
      if (!this.conns.has(c) || c.state.kind !== 'time-wait') continue;
      c.endTimeWait();
      this.timeWaitRecycled++;
      return this.conns.size < this.maxConnections;
    }
    return false;
  }

  release(c: TcpConnection): void {
    if (!this.conns.delete(c)) return;
    this.scanned.delete(c);
    const h = hashTuple(c.remote, 0, c.remote.length, c.remotePort, c.localPort);
    let p = this.buckets.get(h) ?? null;
    let prev: TcpConnection | null = null;
    while (p !== null && p !== c) {
      prev = p;
      p = p.nextInBucket;
    }
    if (p === c) {
      if (prev === null) {
        if (c.nextInBucket === null) this.buckets.delete(h);
        else this.buckets.set(h, c.nextInBucket);
      } else prev.nextInBucket = c.nextInBucket;
      c.nextInBucket = null;
    }
    const l = this.halfOpenOf.get(c);
    if (l) {
      l.halfOpen--;
      this.halfOpenOf.delete(c);
    }
    addStats(this.closedStats, c.stats);
  }

  accepted(c: TcpConnection): void {
    this.accepts.push(c);
  }

  // ---- the application's side --------------------------------------------------

  /** Active open to address:port. The connection reports through its `events` (set them before the next entry point). */
  connect(address: string, port: number, opts: { localPort?: number } = {}): TcpConnection {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`port must be 1..65535, got ${port}`);
    const remote = parseIPv4(address) ?? parseIPv6(address);
    if (!remote) throw new TypeError(`not an IP address: ${address}`);
    const local = this.localFor(remote);
    if (!local) throw new TypeError(`no local ${remote.length === 4 ? 'IPv4' : 'IPv6'} address to connect to ${address} from`);
    if (!this.roomForConnection()) throw new RangeError('too many TCP connections');
    const localPort = opts.localPort ?? this.ephemeralPort(remote, port);
    if (this.lookup(remote, 0, remote.length, port, localPort, local, 0)) throw new RangeError(`port ${localPort} already connected to ${address}:${port}`);
    const now = this.clock.now();
    const c = new TcpConnection(this, this.tcpOptions, local, localPort, remote, port, this.mtu, this.isn.next(local, localPort, remote, port, now), now, false);
    this.insert(c);
    const wasIn = this.inEntry;
    this.inEntry = true;
    c.open(now);
    this.inEntry = wasIn;
    this.requestWake();
    return c;
  }

  /** Accepts connections to `port` on every local address. */
  listen(port: number, onAccept: (c: TcpConnection) => void): TcpListener {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`port must be 1..65535, got ${port}`);
    if (this.listeners.has(port)) throw Object.assign(new Error(`port ${port} is already listening`), { code: 'EADDRINUSE' });
    const entry: ListenerEntry = {
      port,
      onAccept,
      halfOpen: 0,
      open: true,
      close: () => {
        entry.open = false;
        if (this.listeners.get(port) === entry) this.listeners.delete(port);
      },
    };
    this.listeners.set(port, entry);
    return entry;
  }

  /** A UDP socket on `port` (0: an ephemeral one); datagrams arrive through `onMessage` as copies. */
  udpBind(port: number, onMessage: UdpHandler): UdpSocket {
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`port must be 0..65535, got ${port}`);
    if (port === 0) {
      const start = this.random.int(EPHEMERAL_COUNT);
      for (let i = 0; i < EPHEMERAL_COUNT && port === 0; i++) {
        const p = EPHEMERAL_LOW + ((start + i) % EPHEMERAL_COUNT);
        if (!this.udpSockets.has(p)) port = p;
      }
      if (port === 0) throw Object.assign(new Error('no free UDP port'), { code: 'EADDRINUSE' });
    } else if (this.udpSockets.has(port)) {
      throw Object.assign(new Error(`UDP port ${port} is in use`), { code: 'EADDRINUSE' });
    }
    this.udpSockets.set(port, onMessage);
    const bound = port;
    let open = true;
    return {
      port: bound,
      send: (data, address, dport) => {
        if (!open) return false;
        const remote = parseIPv4(address) ?? parseIPv6(address);
        if (!remote || !Number.isInteger(dport) || dport < 1 || dport > 65535) return false;
        const local = this.localFor(remote);
        if (!local || ipHeaderLen(local.length) + 8 + data.length > this.mtu) return false;
        writeUdp(this.output, local, bound, remote, dport, data);
        if (!this.inEntry) this.requestWake();
        return true;
      },
      close: () => {
        open = false;
        if (this.udpSockets.get(bound) === onMessage) this.udpSockets.delete(bound);
      },
    };
  }

  // ---- forwarding mode (forward.ts) -----------------------------------------------

  /** Answers a held forwarded SYN: the SYN-ACK goes out, the handshake completes as a passive open's. */
  answer(c: TcpConnection): void {
    this.outsideEntry(() => c.answerHeld(this.clock.now()));
  }

  /** Refuses a held forwarded SYN with a RST (a closed port), an ICMP destination unreachable (rate limited like every ICMP error), or silence (the SYN forgotten; the client retransmits). */
  refuse(c: TcpConnection, how: 'reset' | 'silent' | Unreachable): void {
    if (!c.isHeld) return;
    this.outsideEntry(() => {
      // 'silent' forgets the SYN without an answer: the client stays in SYN-SENT and its
      // retransmission (RFC 6298 §5, 1 s, doubling) arrives as a new SYN that is judged again.
      if (how !== 'reset' && how !== 'silent') {
        // RFC 792: the error quotes the offending datagram's IP header and its first 64 bits: the SYN is rebuilt from the connection.
        const q = this.quote;
        const ipLen = writeIpHeader(q, 0, c.remote, c.local, PROTO_TCP, TCP_HEADER_LEN);
        const srcAt = c.local.length === 4 ? 12 : 8;
        const dstAt = c.local.length === 4 ? 16 : 24;
        writeTcpHeader(q, ipLen, c.remotePort, c.localPort, c.peerIsn, 0, SYN, 0, 0, 0, srcAt, dstAt, c.local.length);
        if (parseIp(q, 0, ipLen + TCP_HEADER_LEN, this.quoteView) === null) {
          if (this.icmpLimiter.take(this.clock.now())) sendUnreachable(q, this.quoteView, this.output, how);
          else this.drops['icmp-rate-limited']++;
        }
      }
      c.refuseHeld(how === 'reset');
    });
  }

  /** Sends a datagram from `from`:fromPort (a forwarded destination) to `to`:toPort; false when it does not fit the MTU. */
  sendUdp(from: Uint8Array, fromPort: number, to: Uint8Array, toPort: number, data: Uint8Array): boolean {
    if (ipHeaderLen(from.length) + 8 + data.length > this.mtu) return false;
    writeUdp(this.output, from, fromPort, to, toPort, data);
    if (!this.inEntry) this.requestWake();
    return true;
  }

  /** Sends an echo reply from `from` (a forwarded destination) to `to`; false when it does not fit the MTU. */
  sendEchoReply(from: Uint8Array, to: Uint8Array, id: number, seq: number, data: Uint8Array): boolean {
    if (ipHeaderLen(from.length) + 8 + data.length > this.mtu) return false;
    writeEchoReply(this.output, from, to, id, seq, data);
    if (!this.inEntry) this.requestWake();
    return true;
  }

  /** Runs `fn`, which writes output, as if inside an entry point; the output goes at the next flush. */
  private outsideEntry(fn: () => void): void {
    const wasIn = this.inEntry;
    this.inEntry = true;
    try {
      fn();
    } finally {
      this.inEntry = wasIn;
    }
    if (!wasIn) this.requestWake();
  }

  /** Counters summed over every connection, live and gone. */
  tcpStats(): TcpStats {
    const s = new TcpStats();
    addStats(s, this.closedStats);
    for (const c of this.conns) addStats(s, c.stats);
    return s;
  }

  /** Of those, the ones in TIME-WAIT (kept apart from the timer scan). */
  get timeWaitCount(): number {
    let n = 0;
    for (let i = this.waitingHead; i < this.waiting.length; i++) if (this.conns.has(this.waiting[i]!) && this.waiting[i]!.state.kind === 'time-wait') n++;
    return n;
  }

  /** Live TCP connections (any state but CLOSED). */
  get connectionCount(): number {
    return this.conns.size;
  }

  // ---- input -------------------------------------------------------------------

  private packet(buf: Uint8Array, at: number, len: number, now: number): void {
    const v = this.ip;
    const bad = parseIp(buf, at, len, v);
    if (bad !== null) {
      this.drops[bad]++;
      return;
    }
    let forward = false;
    if (!this.isLocal(buf, v.dstAt, v.addrLen)) {
      // Forwarding mode relays unicast only: multicast and broadcast have no one host connection to open.
      if (this.forwarder === null || isMulticastOrBroadcast(buf, v.dstAt, v.addrLen)) {
        this.drops['not-for-us']++;
        return;
      }
      forward = true;
    }
    switch (v.proto) {
      case PROTO_TCP:
        this.tcpInput(buf, now, forward);
        return;
      case PROTO_UDP:
        if (forward) this.udpForward(buf);
        else this.udpInput(buf, now);
        return;
      case PROTO_ICMP:
      case PROTO_ICMPV6:
        if ((v.proto === PROTO_ICMP) !== (v.version === 4)) break;
        this.received.icmp++;
        if (forward) this.echoForward(buf);
        else if (handleIcmp(buf, v, this.output, this.mtu) === 'malformed') this.drops['malformed-icmp']++;
        return;
    }
    this.drops['unsupported-protocol']++;
  }

  private udpInput(buf: Uint8Array, now: number): void {
    const v = this.ip;
    const u = this.udp;
    if (!parseUdp(buf, v, u)) {
      this.drops['malformed-udp']++;
      return;
    }
    this.received.udp++;
    const h = this.udpSockets.get(u.dstPort);
    if (!h) {
      this.drops['udp-no-socket']++;
      if (this.icmpLimiter.take(now)) sendPortUnreachable(buf, v, this.output);
      else this.drops['icmp-rate-limited']++;
      return;
    }
    const src = buf.subarray(v.srcAt, v.srcAt + v.addrLen);
    const from = v.addrLen === 4 ? formatIPv4(src) : formatIPv6(src);
    h(Buffer.from(buf.subarray(u.dataStart, u.dataStart + u.dataLen)), from, u.srcPort);
  }

  /** A datagram to a forwarded destination: to the forwarder, through the reused view. */
  private udpForward(buf: Uint8Array): void {
    const v = this.ip;
    const u = this.udp;
    if (!parseUdp(buf, v, u)) {
      this.drops['malformed-udp']++;
      return;
    }
    this.received.udp++;
    const f = this.fillForwarded(buf);
    f.srcPort = u.srcPort;
    f.dstPort = u.dstPort;
    f.dataStart = u.dataStart;
    f.dataLen = u.dataLen;
    this.forwarder!.udp(f);
  }

  /** An ICMP message to a forwarded destination: echo requests go to the forwarder, anything else is dropped. */
  private echoForward(buf: Uint8Array): void {
    const v = this.ip;
    const r = echoRequestAt(buf, v);
    if (r !== 'echo-request') {
      if (r === 'malformed') this.drops['malformed-icmp']++;
      else this.drops['unsupported-protocol']++;
      return;
    }
    const f = this.fillForwarded(buf);
    const m = v.payloadStart;
    f.srcPort = (buf[m + 4]! << 8) | buf[m + 5]!;
    f.dstPort = (buf[m + 6]! << 8) | buf[m + 7]!;
    f.dataStart = m + 8;
    f.dataLen = v.payloadEnd - m - 8;
    this.forwarder!.echo(f);
  }

  private fillForwarded(buf: Uint8Array): ForwardedPacket {
    const v = this.ip;
    const f = this.fwd;
    f.buf = buf;
    f.version = v.version;
    f.srcAt = v.srcAt;
    f.dstAt = v.dstAt;
    f.addrLen = v.addrLen;
    return f;
  }

  private tcpInput(buf: Uint8Array, now: number, forward: boolean): void {
    const v = this.ip;
    const t = this.tcp;
    if (!parseTcp(buf, v.payloadStart, v.payloadEnd, v.srcAt, v.dstAt, v.addrLen, t)) {
      this.drops['malformed-tcp']++;
      return;
    }
    this.received.tcp++;
    const c = this.lookup(buf, v.srcAt, v.addrLen, t.srcPort, t.dstPort, buf, v.dstAt);
    if (c !== null) {
      c.segment(t, buf, now);
      return;
    }
    if (forward) {
      if ((t.flags & (SYN | ACK | RST)) === SYN) {
        const nc = this.passiveConnection(buf, v, t, now);
        if (nc === null) return;
        nc.hold(t);
        this.forwarder!.tcp(nc);
        return;
      }
      if ((t.flags & RST) !== 0) return;
      this.drops['tcp-no-connection']++;
      this.sendReset(buf);
      return;
    }
    // LISTEN (§3.10.7.2).
    const l = this.listeners.get(t.dstPort);
    if (l && (t.flags & (SYN | ACK | RST)) === SYN) {
      if (l.halfOpen >= this.synBacklog) {
        this.drops['tcp-backlog-full']++;
        return;
      }
      const nc = this.passiveConnection(buf, v, t, now);
      if (nc === null) return;
      l.halfOpen++;
      this.halfOpenOf.set(nc, l);
      nc.openFrom(t, now);
      return;
    }
    if ((t.flags & RST) !== 0) return; // never answer a RST
    this.drops['tcp-no-connection']++;
    this.sendReset(buf);
  }

  /** RST for a segment that matches no connection (RFC 9293 §3.10.7.1). */
  private sendReset(buf: Uint8Array): void {
    const v = this.ip;
    const t = this.tcp;
    const ipLen = ipHeaderLen(v.addrLen);
    const at = this.output.reserve(ipLen + TCP_HEADER_LEN);
    const o = this.output.data();
    writeIpHeader(o, at, buf.subarray(v.dstAt, v.dstAt + v.addrLen), buf.subarray(v.srcAt, v.srcAt + v.addrLen), PROTO_TCP, TCP_HEADER_LEN);
    const srcAt = v.addrLen === 4 ? at + 12 : at + 8;
    const dstAt = v.addrLen === 4 ? at + 16 : at + 24;
    let seq = 0;
    let ack = 0;
    let flags = RST;
    if ((t.flags & ACK) !== 0) seq = t.ack;
    else {
      const segLen = t.dataLen + ((t.flags & SYN) !== 0 ? 1 : 0) + ((t.flags & FIN) !== 0 ? 1 : 0);
      ack = seqAdd(t.seq, segLen);
      flags |= ACK;
    }
    writeTcpHeader(o, at + ipLen, t.dstPort, t.srcPort, seq, ack, flags, 0, 0, 0, srcAt, dstAt, v.addrLen);
    this.output.commit(ipLen + TCP_HEADER_LEN);
  }

  // ---- tables ------------------------------------------------------------------

  /** A new connection for a SYN that opens one (passive open, or a forwarded SYN), or null at the connection cap. */
  private passiveConnection(buf: Uint8Array, v: IpView, t: TcpView, now: number): TcpConnection | null {
    if (!this.roomForConnection()) {
      this.drops['tcp-backlog-full']++;
      return null;
    }
    // Copies: `buf` is the caller's input batch (a Buffer, whose slice() is a view) and is reused for the next
    // packets; a connection keyed by a view would change its addresses under it (a retransmitted SYN then
    // finds nothing, an ICMP error goes to whatever address the slot holds now).
    const local = new Uint8Array(buf.subarray(v.dstAt, v.dstAt + v.addrLen));
    const remote = new Uint8Array(buf.subarray(v.srcAt, v.srcAt + v.addrLen));
    const nc = new TcpConnection(this, this.tcpOptions, local, t.dstPort, remote, t.srcPort, this.mtu, this.isn.next(local, t.dstPort, remote, t.srcPort, now), now, true);
    this.insert(nc);
    return nc;
  }

  private insert(c: TcpConnection): void {
    const h = hashTuple(c.remote, 0, c.remote.length, c.remotePort, c.localPort);
    c.nextInBucket = this.buckets.get(h) ?? null;
    this.buckets.set(h, c);
    this.conns.add(c);
    this.scanned.add(c);
  }

  private lookup(rbuf: Uint8Array, rAt: number, addrLen: number, rPort: number, lPort: number, lbuf: Uint8Array, lAt: number): TcpConnection | null {
    let c = this.buckets.get(hashTuple(rbuf, rAt, addrLen, rPort, lPort)) ?? null;
    while (c !== null) {
      if (c.remotePort === rPort && c.localPort === lPort && c.remote.length === addrLen && addrEquals(rbuf, rAt, c.remote) && addrEquals(lbuf, lAt, c.local)) return c;
      c = c.nextInBucket;
    }
    return null;
  }

  private ephemeralPort(remote: Uint8Array, port: number): number {
    const start = this.random.int(EPHEMERAL_COUNT);
    const local = this.localFor(remote)!;
    for (let i = 0; i < EPHEMERAL_COUNT; i++) {
      const p = EPHEMERAL_LOW + ((start + i) % EPHEMERAL_COUNT);
      if (!this.listeners.has(p) && !this.lookup(remote, 0, remote.length, port, p, local, 0)) return p;
    }
    throw Object.assign(new Error('no free local port'), { code: 'EADDRNOTAVAIL' });
  }

  private isLocal(buf: Uint8Array, at: number, addrLen: number): boolean {
    const list = addrLen === 4 ? this.v4 : this.v6;
    for (const a of list) if (addrEquals(buf, at, a)) return true;
    return false;
  }

  /** The source address for talking to `remote`: the first local address of its family. */
  localFor(remote: Uint8Array): Uint8Array | null {
    return (remote.length === 4 ? this.v4[0] : this.v6[0]) ?? null;
  }
}

/** FNV-1a over the remote address and both ports: the connection table's bucket. */
function hashTuple(buf: Uint8Array, at: number, addrLen: number, rPort: number, lPort: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < addrLen; i++) h = Math.imul(h ^ buf[at + i]!, 0x01000193);
  h = Math.imul(h ^ rPort, 0x01000193);
  h = Math.imul(h ^ lPort, 0x01000193);
  return h >>> 0;
}

function addStats(into: TcpStats, from: TcpStats): void {
  for (const k of Object.keys(from) as (keyof TcpStats)[]) into[k] += from[k];
}
