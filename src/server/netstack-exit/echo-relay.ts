/**
 * ICMP echo for the netstack exit's clients, through the host's
 * unprivileged ping sockets (io/linux/ping.ts) — one per family, shared by
 * every client. The kernel gives each socket an identifier of its own, so
 * the relay tells replies apart by sequence number: every request goes out
 * with a sequence number the relay picks, remembered with the client's
 * address, identifier and sequence number and the destination, and the
 * reply (from that destination, with that sequence number) goes back to
 * that client with its own identifier and sequence number restored, as if
 * from the destination (what a NAT does to ICMP queries, RFC 5508 §3.1).
 *
 * Requests are collected into one batch per family and sent with one
 * sendmmsg at the end of the turn (a microtask), replies arrive in batches
 * from the event loop: no thread pool, no call per packet into the kernel.
 * Outstanding requests are bounded per client (the key the forwarder gives:
 * the WireGuard peer, so its IPv4 and IPv6 addresses share one budget) and in
 * all, and forgotten after a timeout.
 */
import { PacketBatch } from '../../io/batch.js';
import { ENDPOINT_SIZE } from '../../io/endpoint.js';
import { openLinuxPingSocket } from '../../io/linux/ping.js';
import type { LinuxUdpBind } from '../../io/linux/udp.js';
import type { ForwardedPacket } from '../../netstack/forward.js';
import { addrEquals } from '../../netstack/ip.js';
import type { Stack } from '../../netstack/stack.js';
import { ICMP6_ECHO_REPLY, ICMP6_ECHO_REQUEST, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST } from '../../netstack/icmp.js';
import type { EchoRelay } from './forwarder.js';

/** The ICMP echo header: type, code, checksum, identifier, sequence number (RFC 792). */
const ECHO_HEADER_LEN = 8;
/** Requests per send batch; a fuller batch is sent at once. */
const OUT_SLOTS = 64;
const OUT_SLOT_SIZE = 2048;

export interface EchoLimits {
  /** Requests waiting for a reply, per client (forwarder.ts: the peer that owns the source address). */
  perClient: number;
  /** Requests waiting for a reply, per family (at most 65536: the sequence numbers). */
  total: number;
  /** How long a request waits for its reply before it is forgotten (ms). */
  timeoutMs: number;
}

export const DEFAULT_ECHO_LIMITS: EchoLimits = { perClient: 64, total: 4096, timeoutMs: 10_000 };

interface Pending {
  client: Uint8Array;
  clientKey: string;
  id: number;
  seq: number;
  dst: Uint8Array;
  at: number;
}

/** One family's socket, its batch of requests to send and its outstanding requests by the sequence number sent. */
class EchoFamily {
  readonly out = new PacketBatch(OUT_SLOTS, OUT_SLOT_SIZE);
  readonly pending = new Map<number, Pending>();
  nextSeq = 0;
  flushQueued = false;

  constructor(
    readonly version: 4 | 6,
    readonly sock: LinuxUdpBind,
  ) {}
}

export class PingEchoRelay implements EchoRelay {
  private stack: Stack | null = null;
  private readonly perClient = new Map<string, number>();
  private readonly limits: EchoLimits;
  /** Replies relayed back; replies that matched no request (late, or not ours). */
  readonly counts = { replies: 0, unmatched: 0 };

  private constructor(
    private readonly v4: EchoFamily | null,
    private readonly v6: EchoFamily | null,
    private readonly clock: { now(): number },
    limits: Partial<EchoLimits>,
  ) {
    this.limits = { ...DEFAULT_ECHO_LIMITS, ...limits };
    for (const f of [v4, v6]) f?.sock.start((b) => this.replies(f, b), 0);
  }

  /**
   * The relay over this host's ping sockets, or null when the host allows
   * none to this process (net.ipv4.ping_group_range excludes its group).
   * An IPv6 socket is optional (no IPv6 on the host: echo over IPv6 is dropped).
   */
  static open(clock: { now(): number }, limits: Partial<EchoLimits> = {}, netns?: string): PingEchoRelay | null {
    let v4: LinuxUdpBind;
    try {
      v4 = openLinuxPingSocket({ family: 4, netns });
    } catch (e) {
      if (refusal(e)) return null;
      throw e;
    }
    let v6: LinuxUdpBind | null = null;
    try {
      v6 = openLinuxPingSocket({ family: 6, netns });
    } catch (e) {
      if (!refusal(e)) {
        v4.close();
        throw e;
      }
    }
    return new PingEchoRelay(new EchoFamily(4, v4), v6 ? new EchoFamily(6, v6) : null, clock, limits);
  }

  attach(stack: Stack): void {
    this.stack = stack;
  }

  /** Outstanding requests in all. */
  get outstanding(): number {
    return (this.v4?.pending.size ?? 0) + (this.v6?.pending.size ?? 0);
  }

  relay(p: ForwardedPacket, clientKey: string): boolean {
    const fam = p.version === 4 ? this.v4 : this.v6;
    if (fam === null || p.dataLen + ECHO_HEADER_LEN > OUT_SLOT_SIZE || fam.pending.size >= Math.min(this.limits.total, 65536)) return false;
    // Copies: p.buf is the stack's reused input batch (a Buffer: slice() would be a view of it).
    const client = new Uint8Array(p.buf.subarray(p.srcAt, p.srcAt + p.addrLen));
    const n = this.perClient.get(clientKey) ?? 0;
    if (n >= this.limits.perClient) return false;
    let seq = fam.nextSeq;
    while (fam.pending.has(seq)) seq = (seq + 1) & 0xffff;
    fam.nextSeq = (seq + 1) & 0xffff;
    const dst = new Uint8Array(p.buf.subarray(p.dstAt, p.dstAt + p.addrLen));
    fam.pending.set(seq, { client, clientKey, id: p.srcPort, seq: p.dstPort, dst, at: this.clock.now() });
    this.perClient.set(clientKey, n + 1);

    const b = fam.out;
    const i = b.count++;
    const at = i * b.slotSize;
    const d = b.data;
    d[at] = fam.version === 4 ? ICMP_ECHO_REQUEST : ICMP6_ECHO_REQUEST;
    d.fill(0, at + 1, at + 6); // code, checksum (the kernel's), identifier (the kernel's)
    d[at + 6] = seq >>> 8;
    d[at + 7] = seq & 0xff;
    d.set(p.buf.subarray(p.dataStart, p.dataStart + p.dataLen), at + ECHO_HEADER_LEN);
    b.offsets[i] = 0;
    b.lengths[i] = ECHO_HEADER_LEN + p.dataLen;
    const e = i * ENDPOINT_SIZE;
    b.endpoints.fill(0, e, e + ENDPOINT_SIZE);
    b.endpoints[e] = fam.version;
    b.endpoints.set(dst, e + 4);
    if (b.count === b.capacity) this.flush(fam);
    else if (!fam.flushQueued) {
      fam.flushQueued = true;
      queueMicrotask(() => this.flush(fam));
    }
    return true;
  }

  expire(): void {
    const now = this.clock.now();
    for (const fam of [this.v4, this.v6]) {
      if (fam === null) continue;
      for (const [seq, r] of fam.pending) if (now - r.at >= this.limits.timeoutMs) this.forget(fam, seq, r);
    }
  }

  close(): void {
    for (const fam of [this.v4, this.v6]) {
      if (fam === null) continue;
      fam.sock.close();
      fam.pending.clear();
      fam.out.count = 0;
    }
    this.perClient.clear();
  }

  private flush(fam: EchoFamily): void {
    fam.flushQueued = false;
    if (fam.out.count === 0 || fam.sock.closed) return;
    fam.sock.send(fam.out);
    fam.out.count = 0;
  }

  /** A batch of echo replies from the kernel: each back to the client whose request it answers. */
  private replies(fam: EchoFamily, b: PacketBatch): void {
    const stack = this.stack;
    if (stack === null) return;
    const replyType = fam.version === 4 ? ICMP_ECHO_REPLY : ICMP6_ECHO_REPLY;
    const addrLen = fam.version === 4 ? 4 : 16;
    for (let i = 0; i < b.count; i++) {
      const at = b.start(i);
      const len = b.lengths[i]!;
      const d = b.data;
      if (len < ECHO_HEADER_LEN || d[at] !== replyType) continue;
      const seq = (d[at + 6]! << 8) | d[at + 7]!;
      const r = fam.pending.get(seq);
      // The reply must come from the request's destination (a stale sequence number from another host is not it).
      if (r === undefined || b.endpoints[i * ENDPOINT_SIZE] !== fam.version || !addrEquals(b.endpoints, i * ENDPOINT_SIZE + 4, r.dst.subarray(0, addrLen))) {
        this.counts.unmatched++;
        continue;
      }
      this.forget(fam, seq, r);
      this.counts.replies++;
      stack.sendEchoReply(r.dst, r.client, r.id, r.seq, d.subarray(at + ECHO_HEADER_LEN, at + len));
    }
  }

  private forget(fam: EchoFamily, seq: number, r: Pending): void {
    fam.pending.delete(seq);
    const left = (this.perClient.get(r.clientKey) ?? 1) - 1;
    if (left > 0) this.perClient.set(r.clientKey, left);
    else this.perClient.delete(r.clientKey);
  }
}

/** The host does not allow this process a ping socket (or has no such family). */
function refusal(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return code === 'EACCES' || code === 'EPERM' || code === 'EAFNOSUPPORT';
}
