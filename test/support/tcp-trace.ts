/**
 * Reading one TCP connection out of a capture (test/support/pcap.ts): the
 * options both SYNs carried, the largest window each side advertised once
 * scaled, the SACK blocks each side sent, and — for a data sender — which of
 * its retransmissions re-sent bytes its peer had already reported holding.
 *
 * Sequence numbers are taken relative to each side's ISN (so a transfer below
 * 4 GiB never wraps in these numbers).
 */
import type { TcpOptionsSeen, TcpSegmentSeen } from './pcap.js';

export interface Endpoint {
  host: string;
  port: number;
}

export interface ConnectionTrace {
  /** The active opener's SYN and the passive side's SYN-ACK. */
  syn: TcpSegmentSeen;
  synAck: TcpSegmentSeen;
  /** Segments after the handshake, in capture order, each marked with its direction. */
  segments: { s: TcpSegmentSeen; fromClient: boolean }[];
}

const from = (s: TcpSegmentSeen, e: Endpoint): boolean => s.src === e.host && s.sport === e.port;

/** The connection whose SYN went from `client` to `server` (the first one in the capture). */
export function traceConnection(segs: TcpSegmentSeen[], client: Endpoint, server: Endpoint): ConnectionTrace {
  const i = segs.findIndex((s) => s.flags.syn && !s.flags.ack && s.src === client.host && s.dst === server.host && s.dport === server.port);
  if (i < 0) throw new Error(`no SYN ${client.host} → ${server.host}:${server.port} in the capture`);
  const syn = segs[i]!;
  const c: Endpoint = { host: client.host, port: syn.sport };
  const synAck = segs.slice(i).find((s) => s.flags.syn && s.flags.ack && from(s, server) && s.dport === c.port);
  if (!synAck) throw new Error(`no SYN-ACK ${server.host}:${server.port} → ${c.host}:${c.port} in the capture`);
  const segments: ConnectionTrace['segments'] = [];
  for (const s of segs.slice(i)) {
    if (s.flags.syn) continue;
    if (from(s, c) && s.dst === server.host && s.dport === server.port) segments.push({ s, fromClient: true });
    else if (from(s, server) && s.dst === c.host && s.dport === c.port) segments.push({ s, fromClient: false });
  }
  return { syn, synAck, segments };
}

/** RFC 7323 §2.3: a window field is scaled by the shift its sender put in its SYN, when both SYNs carried the option. */
export function largestScaledWindow(t: ConnectionTrace, ofClient: boolean): number {
  const both = t.syn.options.wscale !== null && t.synAck.options.wscale !== null;
  const shift = both ? (ofClient ? t.syn.options.wscale! : t.synAck.options.wscale!) : 0;
  let max = 0;
  for (const { s, fromClient } of t.segments) if (fromClient === ofClient && s.flags.ack) max = Math.max(max, s.window * 2 ** shift);
  return max;
}

/** ACKs of one side that carried SACK blocks, with the blocks relative to the other side's ISN. */
export function sackAcks(t: ConnectionTrace, ofClient: boolean): { ack: number; blocks: [number, number][] }[] {
  const isn = ofClient ? t.synAck.seq : t.syn.seq;
  const rel = (x: number): number => (x - isn) >>> 0;
  const out: { ack: number; blocks: [number, number][] }[] = [];
  for (const { s, fromClient } of t.segments) {
    if (fromClient !== ofClient || s.options.sack.length === 0) continue;
    out.push({ ack: rel(s.ack), blocks: s.options.sack.map(([l, r]) => [rel(l), rel(r)] as [number, number]) });
  }
  return out;
}

/** Highest sequence number (relative, exclusive) a side sent data up to. */
export function highestSent(t: ConnectionTrace, ofClient: boolean): number {
  const isn = ofClient ? t.syn.seq : t.synAck.seq;
  let max = 0;
  for (const { s, fromClient } of t.segments) if (fromClient === ofClient && s.len > 0) max = Math.max(max, ((s.seq - isn) >>> 0) + s.len);
  return max;
}

/** Sorted, disjoint [left, right) ranges. */
class Ranges {
  private r: [number, number][] = [];

  add(l: number, h: number): void {
    if (h <= l) return;
    const out: [number, number][] = [];
    let placed = false;
    for (const [a, b] of this.r) {
      if (b < l) out.push([a, b]);
      else if (a > h) {
        if (!placed) out.push([l, h]);
        placed = true;
        out.push([a, b]);
      } else {
        l = Math.min(l, a);
        h = Math.max(h, b);
      }
    }
    if (!placed) out.push([l, h]);
    this.r = out.sort((x, y) => x[0] - y[0]);
  }

  /** Bytes of [l, h) inside the ranges. */
  covered(l: number, h: number): number {
    let n = 0;
    for (const [a, b] of this.r) n += Math.max(0, Math.min(b, h) - Math.max(a, l));
    return n;
  }
}

export interface RetransmissionReport {
  /** Data segments the sender sent again (starting below the highest byte it had sent). */
  retransmissions: number;
  retransmittedBytes: number;
  /**
   * Bytes retransmitted outside the go-back-N after a timeout that the receiver had already
   * acknowledged cumulatively or in a SACK block captured before the retransmission.
   */
  needlessBytes: number;
  /** The first few needless retransmissions, for the failure message. */
  needless: { seq: number; len: number; time: number }[];
  /** Bytes re-sent after a timeout, until new data: RFC 2018 §8 lets a sender drop its SACK information then. */
  afterTimeoutBytes: number;
}

/**
 * Whether the data sender (`ofClient`) honoured its peer's SACK blocks: every
 * byte it retransmitted lay in a hole — neither below the peer's cumulative
 * ACK nor inside a block the peer had SACKed (RFC 2018 §5, RFC 6675 §5). The
 * capture must be on the receiver's side of any loss in the sender's direction
 * and must not lose the receiver's ACKs after it, so that the receiver's ACKs
 * seen here are the ACKs the sender got, in the same order.
 *
 * `timeouts` are the times (epoch seconds, the capture's clock) at which the
 * sender's retransmission timer fired, as the sender itself reports them. From
 * a timeout until the sender sends new data, its go-back-N re-sending is
 * reported apart (afterTimeoutBytes): RFC 2018 §8 has a sender forget SACK
 * information at a timeout ("since the timeout might indicate that the data
 * receiver has reneged"), so those bytes are not needless by the RFC. A
 * timeout's time is taken when the timer ran, before its segment left the
 * sender, so every segment it caused is captured after it.
 */
export function retransmissionReport(t: ConnectionTrace, ofClient: boolean, timeouts: number[]): RetransmissionReport {
  const senderIsn = ofClient ? t.syn.seq : t.synAck.seq;
  const rel = (x: number): number => (x - senderIsn) >>> 0;
  const acked = new Ranges();
  const report: RetransmissionReport = { retransmissions: 0, retransmittedBytes: 0, needlessBytes: 0, needless: [], afterTimeoutBytes: 0 };
  const pending = [...timeouts].sort((a, b) => a - b);
  let highest = 0;
  let cumAck = 0;
  let afterTimeoutUntil = -1;
  for (const { s, fromClient } of t.segments) {
    if (fromClient !== ofClient) {
      // The receiver's ACK: what it holds.
      if (s.flags.ack) {
        cumAck = Math.max(cumAck, rel(s.ack));
        acked.add(0, cumAck);
        for (const [l, r] of s.options.sack) acked.add(rel(l), rel(r));
      }
      continue;
    }
    while (pending.length > 0 && pending[0]! <= s.time) {
      pending.shift();
      afterTimeoutUntil = Math.max(afterTimeoutUntil, highest);
    }
    if (s.len === 0) continue;
    const l = rel(s.seq);
    const h = l + s.len;
    if (l < highest) {
      report.retransmissions++;
      report.retransmittedBytes += s.len;
      if (afterTimeoutUntil >= 0 && h <= afterTimeoutUntil) report.afterTimeoutBytes += s.len;
      else {
        const c = acked.covered(l, h);
        if (c > 0) {
          report.needlessBytes += c;
          if (report.needless.length < 5) report.needless.push({ seq: l, len: s.len, time: s.time });
        }
      }
    }
    if (h > highest) {
      highest = h;
      if (afterTimeoutUntil >= 0 && h > afterTimeoutUntil) afterTimeoutUntil = -1;
    }
  }
  return report;
}

export type { TcpOptionsSeen };
