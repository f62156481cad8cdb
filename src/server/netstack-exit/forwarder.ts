/**
 * The netstack exit's userspace NAT (`serve --netstack`): the stack's
 * Forwarder (netstack/forward.ts) over the host's own sockets.
 *
 *   TCP   the client's SYN is held; the host connection is opened with
 *         net.connect first, and only when it is up is the SYN answered
 *         (SYN-ACK); refused → RST, unreachable or no answer within the
 *         connect timeout → ICMP destination unreachable (host), a local
 *         permission error → ICMP administratively prohibited. Then a
 *         TcpRelay splices both ways.
 *   UDP   flows on host dgram sockets (udp-flows.ts). Their replies are
 *         queued as they are read and written into the stack together once
 *         the event loop's poll phase is over (udpReply), so the device gets
 *         them as one batch.
 *   ICMP  echo through the host's unprivileged ping socket when it has one
 *         (echo-relay.ts); without one, only the exit's own gateway
 *         addresses answer (the stack itself does that).
 *
 * Before any socket is opened the destination passes the exit's policy
 * (device/destination-policy.ts: private, special and the host's own ranges
 * refused unless --allow-private opens them) and is not one of the exit's
 * own listeners (API, metrics, WireGuard). Refused TCP gets a RST; refused
 * UDP and echo are dropped. Everything is bounded and every refusal is
 * counted by reason: SYNs waiting for their host connection per client and
 * in all, relayed connections per client, UDP flows per client and in all,
 * echo requests per client and in all. A client is the WireGuard peer that
 * owns the packet's source address (clientOf: the device's allowed IPs), so
 * a client with an IPv4 and an IPv6 address has one budget, not two.
 */
import { connect as netConnect, type Socket } from 'node:net';
import type { DestinationPolicy } from '../../device/destination-policy.js';
import { formatIPv4, formatIPv6 } from '../../io/ip-address.js';
import { IPV4_DST, IPV6_DST } from '../../protocol/ip.js';
import type { ForwardedPacket, Forwarder } from '../../netstack/forward.js';
import type { Stack } from '../../netstack/stack.js';
import type { TcpConnection } from '../../netstack/tcp/connection.js';
import { TcpRelay } from './tcp-relay.js';
import { type UdpFlow, UdpFlows } from './udp-flows.js';

/** Why the forwarder refused or dropped something: one closed set, each counted. */
export const FORWARD_DROP_REASONS = [
  'tcp-refused-by-policy',
  'tcp-pending-limit',
  'tcp-client-limit',
  'tcp-connect-refused',
  'tcp-connect-unreachable',
  'tcp-connect-timeout',
  'udp-refused-by-policy',
  'udp-flow-limit',
  'udp-reply-too-large',
  'udp-socket-error',
  'echo-refused-by-policy',
  'echo-no-ping-socket',
  'echo-limit',
] as const;

export type ForwardDropReason = (typeof FORWARD_DROP_REASONS)[number];

export interface ForwarderLimits {
  /** SYNs waiting for their host connection, per client. */
  pendingPerClient: number;
  /** SYNs waiting for their host connection, in all. */
  pendingTotal: number;
  /** Relayed TCP connections (waiting ones included) per client. */
  tcpPerClient: number;
  /** UDP flows per client. */
  udpPerClient: number;
  /** UDP flows in all. */
  udpTotal: number;
  /** How long a host connect may take before the client gets ICMP host unreachable (ms). */
  connectTimeoutMs: number;
  /** Idle time of a UDP flow to port 53 (ms). */
  dnsIdleMs: number;
  /** Idle time of any other UDP flow (ms). */
  udpIdleMs: number;
  /**
   * Idle time before keepalive probes on a relayed connection, both on the
   * client's side (RFC 1122 §4.2.3.6) and on the host socket (ms): a client
   * that vanished (its session ended, its machine gone) no longer answers, and
   * its relay and host connection are closed after the probes (9 × 75 s).
   */
  keepAliveIdleMs: number;
}

export const DEFAULT_FORWARDER_LIMITS: ForwarderLimits = {
  pendingPerClient: 64,
  pendingTotal: 1024,
  tcpPerClient: 1024,
  udpPerClient: 512,
  udpTotal: 16384,
  connectTimeoutMs: 15_000,
  dnsIdleMs: 30_000,
  udpIdleMs: 120_000,
  keepAliveIdleMs: 300_000,
};

/** The exit's own listeners, refused on the host's addresses whatever --allow-private opens. */
export interface OwnPorts {
  tcp: number[];
  udp: number[];
}

/** Echo requests relayed through the host (echo-relay.ts). */
export interface EchoRelay {
  attach(stack: Stack): void;
  /** Sends the echo request in `p` on the host, counted against `clientKey`; false when its limits refuse it. */
  relay(p: ForwardedPacket, clientKey: string): boolean;
  /** Forgets requests that were never answered. */
  expire(): void;
  close(): void;
}

export interface ExitForwarderOptions {
  policy: DestinationPolicy;
  ownPorts: OwnPorts;
  limits?: Partial<ForwarderLimits>;
  clock: { now(): number };
  /** The host's ping socket relay, or null when the host allows none. */
  echo?: EchoRelay | null;
  /**
   * Who a source address belongs to, as a key the per-client limits count by: the server gives the
   * WireGuard peer whose allowed IPs hold it (the device delivers only such packets). Without it, or
   * when it answers null, the address itself is the client. `address` may be a view of the stack's
   * reused input batch, valid during the call only: copy it to keep it.
   */
  clientOf?: (address: Uint8Array) => string | null;
  /** Opens the host connection (default net.connect; a test gives a socket that never connects). */
  connect?: (o: { host: string; port: number; allowHalfOpen: boolean; noDelay: boolean }) => Socket;
}

interface ClientCounts {
  pending: number;
  tcp: number;
}

/** Connect errors that mean "no route" rather than "refused" (RFC 1122 §4.2.3.9: soft errors the client should hear as unreachable). */
const UNREACHABLE = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'ETIMEDOUT', 'EADDRNOTAVAIL']);
const PROHIBITED = new Set(['EACCES', 'EPERM']);

export class ExitForwarder implements Forwarder {
  readonly drops: Record<ForwardDropReason, number>;
  /** What got through: host connections opened, UDP flows opened, echo requests relayed. */
  readonly opened = { tcp: 0, udp: 0, echo: 0 };
  readonly limits: ForwarderLimits;
  policy: DestinationPolicy;
  private stack: Stack | null = null;
  ownPorts: OwnPorts;
  private readonly clients = new Map<string, ClientCounts>();
  private readonly relays = new Set<{ conn: TcpConnection; sock: Socket; timer: NodeJS.Timeout | null }>();
  private pending = 0;
  private readonly flows: UdpFlows;
  /** UDP replies read this event-loop turn, waiting for sendReplies: their flows and datagrams (the dgram's own Buffers). */
  private readonly replyFlows: (UdpFlow | null)[] = [];
  private readonly replyData: (Buffer | null)[] = [];
  private replyCount = 0;
  private readonly echoRelay: EchoRelay | null;
  private closed = false;
  private readonly connect: NonNullable<ExitForwarderOptions['connect']>;

  private readonly clock: { now(): number };
  private readonly clientOf: (address: Uint8Array) => string | null;

  constructor(opts: ExitForwarderOptions) {
    this.connect = opts.connect ?? netConnect;
    this.clientOf = opts.clientOf ?? (() => null);
    this.clock = opts.clock;
    this.policy = opts.policy;
    this.ownPorts = opts.ownPorts;
    this.limits = { ...DEFAULT_FORWARDER_LIMITS, ...opts.limits };
    this.drops = Object.fromEntries(FORWARD_DROP_REASONS.map((r) => [r, 0])) as Record<ForwardDropReason, number>;
    this.echoRelay = opts.echo ?? null;
    this.flows = new UdpFlows({
      clock: opts.clock,
      dnsIdleMs: this.limits.dnsIdleMs,
      idleMs: this.limits.udpIdleMs,
      onReply: (flow, data) => this.udpReply(flow, data),
      onError: () => this.drops['udp-socket-error']++,
    });
  }

  /** The stack this forwarder answers through (set once, before packets flow). */
  attach(stack: Stack): void {
    this.stack = stack;
    this.echoRelay?.attach(stack);
  }

  /** Live relayed TCP connections (waiting ones included), UDP flows. */
  get figures(): { tcp: number; pending: number; udp: number } {
    return { tcp: this.relays.size, pending: this.pending, udp: this.flows.size };
  }

  // ---- TCP ---------------------------------------------------------------------

  tcp(c: TcpConnection): void {
    const stack = this.stack!;
    const dst = addressText(c.local);
    if (this.closed || this.policy.refusesAddress(dst) || this.isOwnListener(dst, c.localPort, this.ownPorts.tcp)) {
      this.drops['tcp-refused-by-policy']++;
      stack.refuse(c, 'reset');
      return;
    }
    const key = this.clientKey(c.remote);
    const counts = this.clients.get(key) ?? { pending: 0, tcp: 0 };
    if (counts.tcp >= this.limits.tcpPerClient) {
      this.drops['tcp-client-limit']++;
      stack.refuse(c, 'reset');
      return;
    }
    if (counts.pending >= this.limits.pendingPerClient || this.pending >= this.limits.pendingTotal) {
      // Too many connects waiting: the SYN is forgotten without an answer. Not ICMP host unreachable: RFC 1122
      // §4.2.3.9 calls it a soft error, but Linux aborts a connect in SYN-SENT on it (EHOSTUNREACH). Silence
      // keeps the client retransmitting its SYN, and a later one finds room once connects complete.
      this.drops['tcp-pending-limit']++;
      stack.refuse(c, 'silent');
      return;
    }
    counts.pending++;
    counts.tcp++;
    this.clients.set(key, counts);
    this.pending++;
    const sock = this.connect({ host: dst, port: c.localPort, allowHalfOpen: true, noDelay: true });
    const entry: { conn: TcpConnection; sock: Socket; timer: NodeJS.Timeout | null } = { conn: c, sock, timer: null };
    this.relays.add(entry);
    let waiting = true;
    const settle = (): void => {
      if (!waiting) return;
      waiting = false;
      clearTimeout(entry.timer!);
      entry.timer = null; // the entry lives as long as the relay: it need not keep the spent Timeout
      sock.off('error', onError);
      counts.pending--;
      this.pending--;
    };
    const release = (): void => {
      if (!this.relays.delete(entry)) return;
      if (--counts.tcp === 0 && counts.pending === 0) this.clients.delete(key);
    };
    const fail = (reason: ForwardDropReason, how: 'reset' | 'host' | 'admin-prohibited'): void => {
      settle();
      this.drops[reason]++;
      sock.destroy();
      stack.refuse(c, how);
      release();
    };
    const onError = (err: NodeJS.ErrnoException): void => {
      const code = err.code ?? '';
      if (code === 'ECONNREFUSED') fail('tcp-connect-refused', 'reset');
      else if (PROHIBITED.has(code)) fail('tcp-connect-unreachable', 'admin-prohibited');
      else if (UNREACHABLE.has(code)) fail('tcp-connect-unreachable', 'host');
      else fail('tcp-connect-refused', 'reset');
    };
    entry.timer = setTimeout(() => fail('tcp-connect-timeout', 'host'), this.limits.connectTimeoutMs);
    sock.once('error', onError);
    sock.once('connect', () => {
      settle();
      if (!c.isHeld) {
        // The held connection went away meanwhile (the exit closing): nothing to answer.
        sock.destroy();
        release();
        return;
      }
      this.opened.tcp++;
      c.noDelay = true;
      c.setKeepAlive(true, this.limits.keepAliveIdleMs, this.clock.now());
      sock.setKeepAlive(true, this.limits.keepAliveIdleMs);
      new TcpRelay(c, sock, release);
      stack.answer(c);
    });
  }

  // ---- UDP ---------------------------------------------------------------------

  udp(p: ForwardedPacket): void {
    let flow = this.flows.find(p);
    if (flow === null) {
      if (this.closed) return;
      if (this.refusesPacket(p, this.ownPorts.udp)) {
        this.drops['udp-refused-by-policy']++;
        return;
      }
      const dst = addressText(p.buf.subarray(p.dstAt, p.dstAt + p.addrLen));
      const key = this.clientKey(p.buf.subarray(p.srcAt, p.srcAt + p.addrLen));
      if (this.flows.size >= this.limits.udpTotal || this.flows.clientFlows(key) >= this.limits.udpPerClient) {
        this.drops['udp-flow-limit']++;
        return;
      }
      flow = this.flows.open(p, key, dst);
      this.opened.udp++;
    }
    this.flows.send(flow, p);
  }

  /**
   * A reply from a flow's host socket. Each arrives in its own dgram 'message' callback, and Node drains
   * microtasks after every callback: written into the stack here, each would be flushed alone (the stack's
   * wake is a microtask) and reach the device as a batch of one — one seal, one sendmmsg, one deferred
   * delivery per datagram, ~35 µs of exit CPU each, which held QUIC through the exit to 0.22× the TUN
   * exit's (`npm run bench -- --netstack-exit`). Queued instead until setImmediate, after the poll phase has
   * read every ready socket (libuv reads up to 32 datagrams per readable socket), they go into the stack in
   * one go and leave in one flush. TCP's writes are not held: a relay's 64 KiB read is a batch already.
   */
  private udpReply(flow: UdpFlow, data: Buffer): void {
    if (this.replyCount === 0) setImmediate(this.sendReplies);
    this.replyFlows[this.replyCount] = flow;
    this.replyData[this.replyCount] = data;
    this.replyCount++;
  }

  private readonly sendReplies = (): void => {
    const n = this.replyCount;
    this.replyCount = 0;
    for (let i = 0; i < n; i++) {
      const flow = this.replyFlows[i]!;
      const data = this.replyData[i]!;
      this.replyFlows[i] = null;
      this.replyData[i] = null;
      if (this.closed) continue;
      if (!this.stack!.sendUdp(flow.dst, flow.dstPort, flow.client, flow.clientPort, data)) this.drops['udp-reply-too-large']++;
    }
  };

  // ---- ICMP echo -----------------------------------------------------------------

  echo(p: ForwardedPacket): void {
    if (this.echoRelay === null) {
      this.drops['echo-no-ping-socket']++;
      return;
    }
    if (this.refusesPacket(p, [])) {
      this.drops['echo-refused-by-policy']++;
      return;
    }
    if (this.echoRelay.relay(p, this.clientKey(p.buf.subarray(p.srcAt, p.srcAt + p.addrLen)))) this.opened.echo++;
    else this.drops['echo-limit']++;
  }

  // ---- housekeeping ----------------------------------------------------------------

  /** Ends idle UDP flows (and old echo requests); the owner calls this about once a second. */
  sweep(): void {
    this.flows.expire();
    this.echoRelay?.expire();
  }

  /** Ends every relay and flow: the host sockets are reset, the clients' connections aborted. */
  close(): void {
    this.closed = true;
    for (const { conn, sock, timer } of [...this.relays]) {
      if (timer) clearTimeout(timer);
      sock.destroy();
      if (conn.isHeld) this.stack?.refuse(conn, 'reset');
      else conn.abort();
    }
    this.relays.clear();
    this.clients.clear();
    this.flows.closeAll();
    this.echoRelay?.close();
  }

  /** The key a client's limits count by: its peer, or its address where no owner is known. */
  private clientKey(source: Uint8Array): string {
    return this.clientOf(source) ?? addressText(source);
  }

  /** The policy's verdict on the packet's destination, read from its bytes (a flood of refused datagrams allocates nothing). */
  private refusesPacket(p: ForwardedPacket, own: number[]): boolean {
    // The policy reads the destination at its offset in an IP header: hand it the header's start.
    const header = p.dstAt - (p.version === 4 ? IPV4_DST : IPV6_DST);
    if (p.version === 4 ? this.policy.refuses4(p.buf, header) : this.policy.refuses6(p.buf, header)) return true;
    return own.includes(p.dstPort) && this.isOwnListener(addressText(p.buf.subarray(p.dstAt, p.dstAt + p.addrLen)), p.dstPort, own);
  }

  /** A port of the exit's own listeners on one of the host's addresses (loopback included). */
  private isOwnListener(dst: string, port: number, own: number[]): boolean {
    if (!own.includes(port)) return false;
    return dst.startsWith('127.') || dst === '::1' || (this.policy.spec.host ?? []).includes(dst);
  }
}

function addressText(b: Uint8Array): string {
  return b.length === 4 ? formatIPv4(b) : formatIPv6(b);
}
