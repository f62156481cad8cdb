/**
 * The sender's record of each segment in flight (RFC 8985 §5.2, the
 * per-segment variables): its sequence range, when it was last (re)sent
 * (Segment.xmit_ts), whether it was retransmitted, SACKed or marked lost.
 *
 * Records sit in a ring in sequence order (SND.UNA first), found by binary
 * search when an ACK or a SACK block covers them. The records that are still
 * "in flight" — neither SACKed nor marked lost — are also chained in a
 * doubly linked list in transmission-time order (a retransmission moves its
 * record to the tail), which is the order RACK walks (RFC 8985 §6.2 step 5:
 * "in the order of transmission"); the walk stops at the first segment sent
 * too recently, so each ACK costs the segments it marks, not the window.
 *
 * Typed arrays that double when full: no objects per segment. The ring is
 * bounded (MAX_RECORDS): past that, a new transmission extends the last record
 * instead (timing gets coarser, nothing is lost from the accounting).
 */
import { seqDiff, seqGt, seqLe, seqLt, seqMax } from './seq.js';

/** The receiver reported holding the whole segment (RFC 2018). */
export const SACKED = 1;
/** The segment was sent more than once (RFC 8985 Segment.retransmitted). */
export const RETRANS = 2;
/** RACK (or the RTO) judged it lost, and it has not been sent again since (RFC 6675 IsLost, as RFC 8985 §7 feeds it). */
export const LOST = 4;

const NIL = -1;
const FIRST_CAPACITY = 64;
const MAX_RECORDS = 1 << 16;
/** The empty tables every SentSegments shares until its first record (grow() replaces them): an idle connection holds no typed arrays here. */
const NO_U32 = new Uint32Array(0);
const NO_F64 = new Float64Array(0);
const NO_U8 = new Uint8Array(0);
const NO_I32 = new Int32Array(0);

/** What a newly delivered segment tells RACK (RFC 8985 §6.2 step 2). */
export interface DeliverySink {
  delivered(xmitTs: number, endSeq: number, retransmitted: boolean, now: number): void;
}

export class SentSegments {
  private cap = 0;
  private startSeq = NO_U32;
  private endSeq = NO_U32;
  private xmit = NO_F64;
  private flag = NO_U8;
  private prev = NO_I32;
  private next = NO_I32;
  /** Ring slot of the lowest record. */
  private head = 0;
  count = 0;
  /** The time-ordered list of in-flight records (slots), oldest first. */
  private oldest = NIL;
  private newest = NIL;
  /** Bytes in records marked LOST (RFC 6675 SetPipe leaves them out of the pipe). */
  lostBytes = 0;
  /** Records SACKed (RFC 8985 RACK.segs_sacked). */
  sackedSegments = 0;
  /** No record below this sequence number is marked LOST (a search hint). */
  private lostFrom = 0;

  /** Forgets everything (connection closed). */
  release(): void {
    this.cap = 0;
    this.startSeq = NO_U32;
    this.endSeq = NO_U32;
    this.xmit = NO_F64;
    this.flag = NO_U8;
    this.prev = NO_I32;
    this.next = NO_I32;
    this.head = this.count = 0;
    this.oldest = this.newest = NIL;
    this.lostBytes = this.sackedSegments = 0;
  }

  /** [seq, end) went out at `now` — new data appends a record, a retransmission updates the ones it covers. */
  sent(seq: number, end: number, now: number): void {
    if (!seqLt(seq, end)) return;
    if (this.count > 0) {
      const last = this.slot(this.count - 1);
      const lastEnd = this.endSeq[last]!;
      for (let i = this.find(seq); i < this.count; i++) {
        const s = this.slot(i);
        if (!seqLt(this.startSeq[s]!, end)) break;
        this.resent(s, now);
      }
      if (!seqGt(end, lastEnd)) return;
      seq = seqMax(seq, lastEnd);
      if (this.count === MAX_RECORDS) {
        // Bounded: the last record grows to cover the new bytes and counts as just sent.
        this.endSeq[last] = end;
        this.resent(last, now);
        this.flag[last] = this.flag[last]! & ~RETRANS;
        return;
      }
    } else {
      this.lostFrom = seq;
    }
    if (this.count === this.cap) this.grow();
    const s = this.slot(this.count++);
    this.startSeq[s] = seq;
    this.endSeq[s] = end;
    this.xmit[s] = now;
    this.flag[s] = 0;
    this.link(s);
  }

  /** The cumulative ACK reached `una`: drops the records below it, telling `sink` of each one newly delivered. */
  acknowledge(una: number, now: number, sink: DeliverySink): void {
    while (this.count > 0) {
      const s = this.head;
      if (seqGt(this.endSeq[s]!, una)) {
        if (seqLt(this.startSeq[s]!, una)) {
          // A partly acknowledged segment (the peer's MSS or a window probe split it): keep the rest.
          if ((this.flag[s]! & LOST) !== 0) this.lostBytes -= seqDiff(una, this.startSeq[s]!);
          this.startSeq[s] = una;
        }
        break;
      }
      const f = this.flag[s]!;
      if ((f & SACKED) === 0) sink.delivered(this.xmit[s]!, this.endSeq[s]!, (f & RETRANS) !== 0, now);
      this.forget(s);
      this.head = (this.head + 1) & (this.cap - 1);
      this.count--;
    }
    if (seqLt(this.lostFrom, una)) this.lostFrom = una;
  }

  /** A SACK block [left, right): marks the records it wholly covers, telling `sink` of each. Returns how many were new. */
  sack(left: number, right: number, now: number, sink: DeliverySink): number {
    let n = 0;
    for (let i = this.find(left); i < this.count; i++) {
      const s = this.slot(i);
      if (seqGt(this.endSeq[s]!, right)) break;
      const f = this.flag[s]!;
      if ((f & SACKED) !== 0 || seqLt(this.startSeq[s]!, left)) continue;
      if ((f & LOST) !== 0) this.lostBytes -= this.len(s);
      else this.unlink(s);
      this.flag[s] = (f & ~LOST) | SACKED;
      this.sackedSegments++;
      n++;
      sink.delivered(this.xmit[s]!, this.endSeq[s]!, (f & RETRANS) !== 0, now);
    }
    return n;
  }

  /** RFC 2018 §8: after a timeout the receiver may have reneged — SACK and loss marks go, every record is in flight again. */
  clearMarks(): void {
    this.oldest = this.newest = NIL;
    for (let i = 0; i < this.count; i++) {
      const s = this.slot(i);
      this.flag[s] = this.flag[s]! & RETRANS;
      this.link(s);
    }
    this.lostBytes = 0;
    this.sackedSegments = 0;
  }

  // ---- the time-ordered walk (RFC 8985 §6.2 step 5) ----

  /** The in-flight record sent longest ago (a slot), or -1. */
  get oldestInFlight(): number {
    return this.oldest;
  }

  /** The in-flight record sent after `slot`, or -1. */
  sentAfter(slot: number): number {
    return this.next[slot]!;
  }

  xmitTs(slot: number): number {
    return this.xmit[slot]!;
  }

  end(slot: number): number {
    return this.endSeq[slot]!;
  }

  /** Marks an in-flight record lost: out of the time list and the pipe until it is sent again. */
  markLost(slot: number): void {
    this.unlink(slot);
    this.flag[slot] = this.flag[slot]! | LOST;
    this.lostBytes += this.len(slot);
    if (seqLt(this.startSeq[slot]!, this.lostFrom)) this.lostFrom = this.startSeq[slot]!;
  }

  /** The lowest record marked lost (RFC 6675 NextSeg rule 1): its start, with its end in out[0]; or -1. */
  firstLost(out: Uint32Array): number {
    if (this.lostBytes === 0) return -1;
    for (let i = this.find(this.lostFrom); i < this.count; i++) {
      const s = this.slot(i);
      if ((this.flag[s]! & LOST) !== 0) {
        this.lostFrom = this.startSeq[s]!;
        out[0] = this.endSeq[s]!;
        return this.startSeq[s]!;
      }
    }
    return -1;
  }

  /** The highest record (RFC 8985 §7.3: what a probe re-sends when there is no new data): its start, or -1. */
  lastStart(): number {
    return this.count === 0 ? -1 : this.startSeq[this.slot(this.count - 1)]!;
  }

  /** The end of the SACKed record holding `seq`, or -1 when `seq` lies in no SACKed record. */
  sackedEnd(seq: number): number {
    const i = this.find(seq);
    if (i >= this.count) return -1;
    const s = this.slot(i);
    return seqLe(this.startSeq[s]!, seq) && (this.flag[s]! & SACKED) !== 0 ? this.endSeq[s]! : -1;
  }

  // ---- internals ----

  private slot(i: number): number {
    return (this.head + i) & (this.cap - 1);
  }

  private len(s: number): number {
    return seqDiff(this.endSeq[s]!, this.startSeq[s]!);
  }

  /** Logical index of the first record ending after `seq` (count when none). */
  private find(seq: number): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqGt(this.endSeq[this.slot(mid)]!, seq)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Record `s` was sent again at `now`: no longer lost, newest in time. */
  private resent(s: number, now: number): void {
    const f = this.flag[s]!;
    if ((f & SACKED) !== 0) return; // the receiver holds it; a copy changes nothing it knows
    if ((f & LOST) !== 0) this.lostBytes -= this.len(s);
    else this.unlink(s);
    this.flag[s] = (f & ~LOST) | RETRANS;
    this.xmit[s] = now;
    this.link(s);
  }

  /** A record leaves for good (cumulatively acknowledged). */
  private forget(s: number): void {
    const f = this.flag[s]!;
    if ((f & SACKED) !== 0) this.sackedSegments--;
    else if ((f & LOST) !== 0) this.lostBytes -= this.len(s);
    else this.unlink(s);
    this.flag[s] = 0;
  }

  private link(s: number): void {
    this.prev[s] = this.newest;
    this.next[s] = NIL;
    if (this.newest === NIL) this.oldest = s;
    else this.next[this.newest] = s;
    this.newest = s;
  }

  private unlink(s: number): void {
    const p = this.prev[s]!;
    const n = this.next[s]!;
    if (p === NIL) this.oldest = n;
    else this.next[p] = n;
    if (n === NIL) this.newest = p;
    else this.prev[n] = p;
    this.prev[s] = this.next[s] = NIL;
  }

  /** Doubles the ring; slots move (record i goes to slot i), so the time list is renumbered with them. */
  private grow(): void {
    const cap = this.cap === 0 ? FIRST_CAPACITY : this.cap * 2;
    const start = new Uint32Array(cap);
    const end = new Uint32Array(cap);
    const xmit = new Float64Array(cap);
    const flag = new Uint8Array(cap);
    const prev = new Int32Array(cap);
    const next = new Int32Array(cap);
    const old = this.cap;
    const moved = (s: number): number => (s === NIL ? NIL : (s - this.head + old) & (old - 1));
    for (let i = 0; i < this.count; i++) {
      const s = this.slot(i);
      start[i] = this.startSeq[s]!;
      end[i] = this.endSeq[s]!;
      xmit[i] = this.xmit[s]!;
      flag[i] = this.flag[s]!;
      prev[i] = moved(this.prev[s]!);
      next[i] = moved(this.next[s]!);
    }
    this.oldest = this.count === 0 ? NIL : moved(this.oldest);
    this.newest = this.count === 0 ? NIL : moved(this.newest);
    this.startSeq = start;
    this.endSeq = end;
    this.xmit = xmit;
    this.flag = flag;
    this.prev = prev;
    this.next = next;
    this.cap = cap;
    this.head = 0;
  }
}
