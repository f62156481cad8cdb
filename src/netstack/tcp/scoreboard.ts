/**
 * The sender's SACK scoreboard (RFC 2018 §5, RFC 6675 §2): which ranges
 * above SND.UNA the receiver has reported holding, as sorted, disjoint
 * [left, right) pairs in sequence space: the SACKed bytes that RFC 6675's
 * pipe leaves out (which segments are lost is RACK's judgement, rack.ts).
 * A bounded array, no objects per ACK.
 */
import { seqLe, seqLt, seqMax, seqMin } from './seq.js';

const MAX_RANGES = 32;
/** Shared by every board that has seen no SACK block yet (most connections on a clean path never do). */
const NO_EDGES = new Uint32Array(0);

export class Scoreboard {
  /** Allocated at the first reported block. */
  private edges = NO_EDGES;
  count = 0;
  /** Bytes covered by the ranges. */
  sackedBytes = 0;

  clear(): void {
    this.count = 0;
    this.sackedBytes = 0;
  }

  /** Highest right edge reported, or `una` with no ranges. */
  highest(una: number): number {
    return this.count === 0 ? una : this.edges[2 * this.count - 1]!;
  }

  /** Adds a reported block, ignoring what lies outside (una, sndMax]. Returns true when it covered new bytes. */
  add(left: number, right: number, una: number, sndMax: number): boolean {
    left = seqMax(left, una);
    right = seqMin(right, sndMax);
    if (!seqLt(left, right)) return false;
    const before = this.sackedBytes;
    if (this.edges.length === 0) this.edges = new Uint32Array(2 * MAX_RANGES);
    // Find the insertion point and merge overlapping/adjacent ranges.
    let i = 0;
    while (i < this.count && seqLt(this.edges[2 * i + 1]!, left)) i++;
    let j = i;
    let l = left;
    let r = right;
    while (j < this.count && seqLe(this.edges[2 * j]!, r)) {
      l = seqMin(l, this.edges[2 * j]!);
      r = seqMax(r, this.edges[2 * j + 1]!);
      j++;
    }
    const removed = j - i;
    if (removed === 0 && this.count === MAX_RANGES) return false; // full: the information is optional
    // Replace ranges i..j-1 with [l, r).
    const shift = 1 - removed;
    if (shift !== 0) this.edges.copyWithin(2 * (i + 1), 2 * j, 2 * this.count);
    this.edges[2 * i] = l;
    this.edges[2 * i + 1] = r;
    this.count += shift;
    this.recount();
    return this.sackedBytes > before;
  }

  /** SND.UNA moved: forget what lies below it. */
  advance(una: number): void {
    let k = 0;
    for (let i = 0; i < this.count; i++) {
      let l = this.edges[2 * i]!;
      const r = this.edges[2 * i + 1]!;
      if (seqLe(r, una)) continue;
      if (seqLt(l, una)) l = una;
      this.edges[2 * k] = l;
      this.edges[2 * k + 1] = r;
      k++;
    }
    this.count = k;
    this.recount();
  }

  private recount(): void {
    let n = 0;
    for (let i = 0; i < this.count; i++) n += (this.edges[2 * i + 1]! - this.edges[2 * i]!) >>> 0;
    this.sackedBytes = n;
  }
}
