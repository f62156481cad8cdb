/**
 * The netstack exit's UDP: one flow per (client address, client port,
 * destination address, destination port), each on a host dgram socket
 * connected to the destination — so replies come back only from where the
 * client sent (an endpoint-dependent mapping, RFC 4787 §4.1; what a
 * conntrack NAT does) and go back to the client that owns the flow. QUIC is
 * just such a flow.
 *
 * The table is a hash of chains over the packet's own bytes: a datagram of
 * a known flow costs one hash, one compare and the copy its asynchronous
 * send needs, no strings and no objects. A flow ends after its idle time
 * (DNS, port 53: short; anything else: longer; RFC 4787 REQ-5 asks for at
 * least 2 minutes there) and the flows per client are bounded (the key the
 * forwarder gives: the peer that owns the source address).
 */
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import type { ForwardedPacket } from '../../netstack/forward.js';
import { addrEquals } from '../../netstack/ip.js';

/** Datagrams a new flow keeps while its socket connects (a QUIC client's first flight is a few); more are dropped as a full socket buffer would. */
const CONNECT_QUEUE = 16;

/**
 * SO_RCVBUF of a flow's socket (bytes; the kernel caps it at net.core.rmem_max without CAP_NET_ADMIN, and
 * doubles it for its bookkeeping). The kernel's default (net.core.rmem_default, 208 KiB) holds ~90 full
 * datagrams: a download's burst that arrives while the exit's thread is busy sealing the previous one overflows
 * it (RcvbufErrors in /proc/net/snmp) and QUIC backs off. 2 MiB is ~16 ms at 1 Gbit/s; the memory is taken
 * only while datagrams wait.
 */
export const FLOW_RECV_BUFFER = 2 << 20;

export class UdpFlow {
  next: UdpFlow | null = null;
  lastActive: number;
  /** Datagrams sent before the socket's connect completed (dgram sends only once connected); null once it has. */
  waiting: Buffer[] | null = [];
  readonly idleMs: number;

  constructor(
    readonly hash: number,
    readonly client: Uint8Array,
    readonly clientPort: number,
    readonly dst: Uint8Array,
    readonly dstPort: number,
    readonly clientKey: string,
    readonly sock: DgramSocket,
    now: number,
    idleMs: number,
  ) {
    this.lastActive = now;
    this.idleMs = idleMs;
  }
}

export interface UdpFlowsOptions {
  clock: { now(): number };
  /** Idle time of a flow to port 53 (ms). */
  dnsIdleMs: number;
  /** Idle time of any other flow (ms). */
  idleMs: number;
  /** A reply from the destination for the flow's client. */
  onReply: (flow: UdpFlow, data: Buffer) => void;
  /** The flow's socket failed (its error); the flow is gone. */
  onError: (flow: UdpFlow, err: Error) => void;
}

export class UdpFlows {
  private readonly buckets = new Map<number, UdpFlow>();
  private readonly perClient = new Map<string, number>();
  private count = 0;

  constructor(private readonly opts: UdpFlowsOptions) {}

  get size(): number {
    return this.count;
  }

  /** Flows of one client (its key, forwarder.ts). */
  clientFlows(clientKey: string): number {
    return this.perClient.get(clientKey) ?? 0;
  }

  /** The flow of the datagram in `p`, or null. */
  find(p: ForwardedPacket): UdpFlow | null {
    const h = flowHash(p);
    let f = this.buckets.get(h) ?? null;
    while (f !== null) {
      if (f.clientPort === p.srcPort && f.dstPort === p.dstPort && f.client.length === p.addrLen && addrEquals(p.buf, p.srcAt, f.client) && addrEquals(p.buf, p.dstAt, f.dst)) return f;
      f = f.next;
    }
    return null;
  }

  /** A new flow for the datagram in `p` on a new host socket connected to its destination. */
  open(p: ForwardedPacket, clientKey: string, dstText: string): UdpFlow {
    const now = this.opts.clock.now();
    const sock = createSocket({ type: p.version === 4 ? 'udp4' : 'udp6', recvBufferSize: FLOW_RECV_BUFFER });
    const flow = new UdpFlow(
      flowHash(p),
      // Copies: p.buf is the stack's reused input batch (a Buffer: slice() would be a view of it).
      new Uint8Array(p.buf.subarray(p.srcAt, p.srcAt + p.addrLen)),
      p.srcPort,
      new Uint8Array(p.buf.subarray(p.dstAt, p.dstAt + p.addrLen)),
      p.dstPort,
      clientKey,
      sock,
      now,
      p.dstPort === 53 ? this.opts.dnsIdleMs : this.opts.idleMs,
    );
    sock.on('message', (msg) => {
      flow.lastActive = this.opts.clock.now();
      this.opts.onReply(flow, msg);
    });
    sock.on('error', (err) => {
      if (this.remove(flow)) this.opts.onError(flow, err);
    });
    // The address is a literal, so no resolver runs; the connect completes on a later turn.
    sock.connect(p.dstPort, dstText, () => {
      const w = flow.waiting;
      flow.waiting = null;
      for (const d of w ?? []) sock.send(d);
    });
    flow.next = this.buckets.get(flow.hash) ?? null;
    this.buckets.set(flow.hash, flow);
    this.perClient.set(clientKey, (this.perClient.get(clientKey) ?? 0) + 1);
    this.count++;
    return flow;
  }

  /** Sends the datagram in `p` on the flow's socket (a copy: the send completes after the stack's buffer is reused). */
  send(flow: UdpFlow, p: ForwardedPacket): void {
    flow.lastActive = this.opts.clock.now();
    const data = Buffer.allocUnsafe(p.dataLen);
    data.set(p.buf.subarray(p.dataStart, p.dataStart + p.dataLen));
    if (flow.waiting === null) flow.sock.send(data);
    else if (flow.waiting.length < CONNECT_QUEUE) flow.waiting.push(data);
  }

  /** Ends the flows idle past their time; returns how many. */
  expire(): number {
    const now = this.opts.clock.now();
    let n = 0;
    for (const head of [...this.buckets.values()]) {
      for (let f: UdpFlow | null = head; f !== null; ) {
        const next: UdpFlow | null = f.next;
        if (now - f.lastActive >= f.idleMs && this.remove(f)) n++;
        f = next;
      }
    }
    return n;
  }

  /** Ends every flow. */
  closeAll(): void {
    for (const head of [...this.buckets.values()]) {
      for (let f: UdpFlow | null = head; f !== null; ) {
        const next: UdpFlow | null = f.next;
        this.remove(f);
        f = next;
      }
    }
  }

  /** Unlinks the flow and closes its socket; false if it was gone already. */
  private remove(flow: UdpFlow): boolean {
    let f = this.buckets.get(flow.hash) ?? null;
    let prev: UdpFlow | null = null;
    while (f !== null && f !== flow) {
      prev = f;
      f = f.next;
    }
    if (f === null) return false;
    if (prev === null) {
      if (flow.next === null) this.buckets.delete(flow.hash);
      else this.buckets.set(flow.hash, flow.next);
    } else prev.next = flow.next;
    flow.next = null;
    this.count--;
    const left = (this.perClient.get(flow.clientKey) ?? 1) - 1;
    if (left > 0) this.perClient.set(flow.clientKey, left);
    else this.perClient.delete(flow.clientKey);
    try {
      flow.sock.close();
    } catch {
      /* closed already by an error */
    }
    return true;
  }
}

/** FNV-1a over both addresses and both ports of the datagram. */
function flowHash(p: ForwardedPacket): number {
  let h = 0x811c9dc5;
  const b = p.buf;
  for (let i = 0; i < p.addrLen; i++) h = Math.imul(h ^ b[p.srcAt + i]!, 0x01000193);
  for (let i = 0; i < p.addrLen; i++) h = Math.imul(h ^ b[p.dstAt + i]!, 0x01000193);
  h = Math.imul(h ^ p.srcPort, 0x01000193);
  h = Math.imul(h ^ p.dstPort, 0x01000193);
  return h >>> 0;
}
