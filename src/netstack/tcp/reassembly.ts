/**
 * The receive side's bytes: one ring holds both the in-order bytes the
 * application has not read yet and, beyond them, out-of-order segments
 * written at their final place (RFC 9293 §3.10.7.4 "segment text"; RFC 5681
 * §4.2 wants them kept). RCV.NXT lives here. Out-of-order ranges are kept as
 * sorted [left, right) pairs in sequence space with the order of arrival, so
 * the SACK option can report the most recently received block first
 * (RFC 2018 §4). The ring grows by doubling up to the per-connection limit,
 * which is also the largest window ever advertised.
 */
import { seqDiff, seqGt, seqLe, seqLt, seqMax, seqMin } from './seq.js';
import { ringCapacity } from './ring-capacity.js';

const MAX_RANGES = 32;
/**
 * What a connection holds before it needs storage: one shared empty ring and
 * empty range tables, so an idle connection allocates no typed arrays here
 * (each costs a JS object, an ArrayBuffer and a malloc'd backing store).
 */
const NO_BYTES = new Uint8Array(0);
const NO_EDGES = new Uint32Array(0);
const NO_STAMPS = new Float64Array(0);

export class ReceiveBuffer {
  private buf: Uint8Array;
  private head = 0;
  /** In-order bytes waiting for the application. */
  unread = 0;
  /** RCV.NXT. */
  nxt = 0;
  /** Out-of-order ranges: allocated at the first one (in-order traffic never needs them). */
  private edges = NO_EDGES;
  private stamps = NO_STAMPS;
  private stamp = 0;
  ranges = 0;

  /** Storage is allocated on first use, so an idle connection costs none. */
  constructor(readonly limit: number) {
    this.buf = NO_BYTES;
  }

  /** Bytes of storage held (the ring and the range tables): none until data arrives. */
  get storageBytes(): number {
    return this.buf.byteLength + this.edges.byteLength + this.stamps.byteLength;
  }

  /** Free space: the receive window to advertise (RFC 9293 §3.8.6.2.2: it never moves left, since reading is what frees it). */
  window(): number {
    return this.limit - this.unread;
  }

  /**
   * Stores a segment's bytes src[start, start+len) at sequence `seq` (already
   * trimmed to start at or after RCV.NXT and to fit the window). Returns the
   * number of bytes RCV.NXT advanced, or -1 when the segment could not be
   * kept (too many separate out-of-order ranges).
   */
  insert(seq: number, src: Uint8Array, start: number, len: number): number {
    const off = seqDiff(seq, this.nxt);
    if (len <= 0 || off < 0 || off + len > this.window()) return 0;
    if (off > 0 && !this.canRecord(seq, seq + len)) return -1;
    this.ensure(this.unread + off + len);
    const cap = this.buf.length;
    const pos = (this.head + this.unread + off) % cap;
    const first = Math.min(len, cap - pos);
    this.buf.set(src.subarray(start, start + first), pos);
    if (first < len) this.buf.set(src.subarray(start + first, start + len), 0);
    if (off > 0) {
      this.record(seq, (seq + len) >>> 0);
      return 0;
    }
    // In order: advance over it and over every range it now touches.
    let end = (seq + len) >>> 0;
    while (this.ranges > 0 && seqLe(this.edges[0]!, end)) {
      end = seqMax(end, this.edges[1]!);
      this.removeRange(0);
    }
    const advanced = seqDiff(end, this.nxt);
    this.nxt = end;
    this.unread += advanced;
    return advanced;
  }

  /** Takes up to `max` in-order bytes for the application (a new Buffer), or null when there are none. */
  take(max: number): Buffer | null {
    const n = Math.min(max, this.unread);
    if (n <= 0) return null;
    const out = Buffer.allocUnsafe(n);
    const cap = this.buf.length;
    const first = Math.min(n, cap - this.head);
    out.set(this.buf.subarray(this.head, this.head + first), 0);
    if (first < n) out.set(this.buf.subarray(0, n - first), first);
    this.head = (this.head + n) % cap;
    this.unread -= n;
    if (this.unread === 0 && this.ranges === 0) this.head = 0;
    return out;
  }

  /** Writes up to `max` SACK blocks, the most recently received first (RFC 2018 §4); returns how many. */
  sackBlocks(out: Uint32Array, max: number): number {
    const n = Math.min(max, this.ranges);
    let written = 0;
    let lastStamp = Infinity;
    while (written < n) {
      // The range with the largest stamp below lastStamp.
      let best = -1;
      for (let i = 0; i < this.ranges; i++) {
        const s = this.stamps[i]!;
        if (s < lastStamp && (best < 0 || s > this.stamps[best]!)) best = i;
      }
      if (best < 0) break;
      lastStamp = this.stamps[best]!;
      out[2 * written] = this.edges[2 * best]!;
      out[2 * written + 1] = this.edges[2 * best + 1]!;
      written++;
    }
    return written;
  }

  /** Forgets everything (connection reset). */
  release(): void {
    this.buf = NO_BYTES;
    this.edges = NO_EDGES;
    this.stamps = NO_STAMPS;
    this.head = 0;
    this.unread = 0;
    this.ranges = 0;
  }

  private canRecord(l: number, r: number): boolean {
    if (this.ranges < MAX_RANGES) return true;
    // Full: only a segment touching an existing range can be kept.
    for (let i = 0; i < this.ranges; i++) {
      if (seqLe(this.edges[2 * i]!, r) && seqLe(l, this.edges[2 * i + 1]!)) return true;
    }
    return false;
  }

  private record(left: number, right: number): void {
    if (this.edges.length === 0) {
      this.edges = new Uint32Array(2 * MAX_RANGES);
      this.stamps = new Float64Array(MAX_RANGES);
    }
    let i = 0;
    while (i < this.ranges && seqLt(this.edges[2 * i + 1]!, left)) i++;
    let j = i;
    let l = left;
    let r = right;
    while (j < this.ranges && seqLe(this.edges[2 * j]!, r)) {
      l = seqMin(l, this.edges[2 * j]!);
      r = seqMax(r, this.edges[2 * j + 1]!);
      j++;
    }
    const shift = 1 - (j - i);
    if (shift !== 0) {
      this.edges.copyWithin(2 * (i + 1), 2 * j, 2 * this.ranges);
      this.stamps.copyWithin(i + 1, j, this.ranges);
    }
    this.edges[2 * i] = l;
    this.edges[2 * i + 1] = r;
    this.stamps[i] = ++this.stamp;
    this.ranges += shift;
  }

  private removeRange(i: number): void {
    this.edges.copyWithin(2 * i, 2 * (i + 1), 2 * this.ranges);
    this.stamps.copyWithin(i, i + 1, this.ranges);
    this.ranges--;
  }

  /** Whether an out-of-order range reaches beyond `seq` (tests and SACK decisions). */
  hasDataBeyond(seq: number): boolean {
    return this.ranges > 0 && seqGt(this.edges[2 * this.ranges - 1]!, seq);
  }

  private ensure(need: number): void {
    if (need <= this.buf.length) return;
    const next = new Uint8Array(ringCapacity(this.buf.length, need, this.limit));
    const old = this.buf;
    const oc = old.length;
    // Keep every byte at the same distance from head (unread and out-of-order data alike).
    if (oc > 0) {
      next.set(old.subarray(this.head), 0);
      next.set(old.subarray(0, this.head), oc - this.head);
    }
    this.buf = next;
    this.head = 0;
  }
}
