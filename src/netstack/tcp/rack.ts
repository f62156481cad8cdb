/**
 * RACK-TLP loss detection (RFC 8985). RACK ("recent ACK", §6) judges a
 * segment lost when a segment sent sufficiently later than it has been
 * delivered: time, not a count of duplicate ACKs, so it also finds lost
 * retransmissions (a retransmission sent before a later-SACKed segment) and
 * tolerates reordering within a window. TLP ("tail loss probe", §7) sends
 * one segment when the ACKs stop coming before the RTO would, so the SACK it
 * draws lets RACK find a lost tail.
 *
 * Pure: the caller passes the clock, owns the timers (the connection keeps
 * the reordering and probe deadlines beside its RTO, which the stack's
 * scheduler runs) and the records (sent-segments.ts).
 *
 * Not done: the TCP timestamp option's help against spurious retransmissions
 * (§6.2 step 2 ts_echo check; the netstack does not send timestamps).
 */
import { seqGt, seqLt } from './seq.js';
import type { DeliverySink, SentSegments } from './sent-segments.js';

/** RFC 6675 DupThresh, which §6.2 step 4 uses to skip the reordering window. */
const DUP_THRESH = 3;
/** §7.2 WCDelAckT: the worst-case delayed-ACK time a probe of a single segment waits for. */
export const WC_DEL_ACK_T = 200;
/** §7.2: PTO before any RTT sample. */
const PTO_WITHOUT_SRTT = 1000;
/** §6.2 step 4: recoveries a widened reordering window outlives without a further D-SACK. */
const REO_WND_PERSIST = 16;

export class Rack implements DeliverySink {
  /** RACK.xmit_ts / RACK.end_seq: the most recently sent segment delivered so far (-1: none yet). */
  xmitTs = -1;
  endSeq = 0;
  /** RACK.rtt: the RTT of that segment. */
  rtt = 0;
  /** RACK.min_RTT. */
  minRtt = Infinity;
  /** RACK.fack: the highest end sequence delivered, for reordering detection (§6.2 step 3). */
  private fack = 0;
  private fackSet = false;
  /** RACK.reordering_seen. */
  reorderingSeen = false;
  /** Segments marked lost by detect(). */
  marked = 0;
  /** §6.2 step 4: RACK.reo_wnd_mult, RACK.reo_wnd_persist, and RACK.dsack_round (valid when dsackRoundSet). */
  reoWndMult = 1;
  private reoWndPersist = 0;
  private dsackRound = 0;
  private dsackRoundSet = false;

  /** §6.2 step 2 (and 3): a segment was newly cumulatively ACKed or SACKed. */
  delivered(xmitTs: number, endSeq: number, retransmitted: boolean, now: number): void {
    const rtt = now - xmitTs;
    if (retransmitted) {
      // Step 2: the ACK may be for the original transmission — without timestamps, only an RTT no shorter
      // than the minimum can belong to the retransmission.
      if (rtt < this.minRtt) return;
    } else {
      if (rtt < this.minRtt) this.minRtt = rtt;
      // Step 3: a never-retransmitted segment delivered below the forward-most delivered one arrived out of order.
      if (this.fackSet && seqLt(endSeq, this.fack)) this.reorderingSeen = true;
    }
    if (!this.fackSet || seqGt(endSeq, this.fack)) {
      this.fack = endSeq;
      this.fackSet = true;
    }
    if (this.xmitTs < 0 || sentAfter(xmitTs, endSeq, this.xmitTs, this.endSeq)) {
      this.xmitTs = xmitTs;
      this.endSeq = endSeq;
      this.rtt = rtt;
    }
  }

  /**
   * §6.2 step 4: the reordering window. Zero when no reordering has been seen and either recovery is under
   * way or DupThresh segments are SACKed (then RACK acts as fast as the duplicate-ACK rule); otherwise a
   * quarter of the minimum RTT, bounded by SRTT.
   */
  reoWnd(inRecovery: boolean, segsSacked: number, srtt: number): number {
    if (!this.reorderingSeen && (inRecovery || segsSacked >= DUP_THRESH)) return 0;
    const w = this.minRtt === Infinity ? 0 : (this.minRtt / 4) * this.reoWndMult;
    return Math.min(w, srtt);
  }

  /**
   * §6.2 step 4: a D-SACK says a retransmission was needless — the original only came late — so the reordering
   * window widens by a quarter min_RTT, once per round trip (until SND.UNA passes what was outstanding at the
   * last widening), and reordering counts as seen (Linux's tcp_check_sack_reordering does the same).
   */
  onDsack(una: number, sndMax: number): void {
    this.reorderingSeen = true;
    if (this.dsackRoundSet && seqLt(una, this.dsackRound)) return;
    this.reoWndMult++;
    this.dsackRound = sndMax;
    this.dsackRoundSet = true;
    this.reoWndPersist = REO_WND_PERSIST;
  }

  /** §6.2 step 4: a loss recovery ended; after REO_WND_PERSIST of them with no D-SACK the window is back to 1×. */
  onRecoveryEnd(): void {
    if (this.reoWndPersist > 0 && --this.reoWndPersist === 0) this.reoWndMult = 1;
  }

  /**
   * §6.2 step 5: walks the in-flight segments sent before RACK's, oldest first, marking lost each one whose
   * deadline (xmit_ts + RACK.rtt + reo_wnd) has passed. Returns the time until the first one not yet due
   * (the reordering timer, §6.3), or 0 when none waits. `marked` counts what it marked.
   */
  detect(log: SentSegments, now: number, reoWnd: number): number {
    this.marked = 0;
    if (this.xmitTs < 0) return 0;
    let timeout = 0;
    for (let s = log.oldestInFlight; s !== -1; ) {
      const following = log.sentAfter(s);
      const ts = log.xmitTs(s);
      // Only segments sent before RACK's are judged; the list is in transmission order, so stop at the first after.
      if (!sentAfter(this.xmitTs, this.endSeq, ts, log.end(s))) break;
      const remaining = ts + this.rtt + reoWnd - now;
      if (remaining <= 0) {
        log.markLost(s);
        this.marked++;
      } else if (remaining > timeout) {
        timeout = remaining;
      }
      s = following;
    }
    return timeout;
  }

  /** Forgets what was delivered (after an RTO the SACK information is discarded, RFC 2018 §8). */
  reset(): void {
    this.xmitTs = -1;
    this.fackSet = false;
  }
}

/** §6.2 RACK_sent_after: whether (t1, seq1) was sent after (t2, seq2) — a tie in time goes by sequence. */
function sentAfter(t1: number, seq1: number, t2: number, seq2: number): boolean {
  return t1 > t2 || (t1 === t2 && seqGt(seq1, seq2));
}

/**
 * §7.2 TLP_calc_PTO: two smoothed RTTs (room for the ACK of the last flight), plus the worst-case delayed
 * ACK when a single segment is in flight (its ACK may be delayed), and never later than the RTO would fire.
 */
export function probeTimeout(hasSrtt: boolean, srtt: number, flight: number, mss: number, untilRto: number): number {
  let pto = hasSrtt ? 2 * srtt : PTO_WITHOUT_SRTT;
  if (hasSrtt && flight <= mss) pto += WC_DEL_ACK_T;
  return Math.max(0, Math.min(pto, untilRto));
}
