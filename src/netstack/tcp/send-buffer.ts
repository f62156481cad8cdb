/**
 * Bytes the application wrote and the peer has not acknowledged yet, as a
 * ring: byte 0 of the ring's content is SND.UNA (RFC 9293 §3.3.1). Grows by
 * doubling up to its limit, so an idle connection holds little memory; the
 * limit is the per-connection send buffer bound.
 */
import { ringCapacity } from './ring-capacity.js';

/** The empty ring every idle buffer shares (never written: its length is 0). */
const NO_BYTES = new Uint8Array(0);

export class SendBuffer {
  private buf: Uint8Array;
  private head = 0;
  /** Bytes held (acknowledged bytes are removed by consume()). */
  length = 0;

  /** Storage is allocated on first use, so an idle connection costs none. */
  constructor(readonly limit: number) {
    this.buf = NO_BYTES;
  }

  /** Bytes of storage held: none until the application writes. */
  get storageBytes(): number {
    return this.buf.byteLength;
  }

  get free(): number {
    return this.limit - this.length;
  }

  /** Appends up to `len` bytes of src[start..]; returns how many were taken. */
  append(src: Uint8Array, start: number, len: number): number {
    const n = Math.min(len, this.limit - this.length);
    if (n <= 0) return 0;
    this.ensure(this.length + n);
    const cap = this.buf.length;
    const tail = (this.head + this.length) % cap;
    const first = Math.min(n, cap - tail);
    this.buf.set(src.subarray(start, start + first), tail);
    if (first < n) this.buf.set(src.subarray(start + first, start + n), 0);
    this.length += n;
    return n;
  }

  /** Copies `len` bytes starting `offset` bytes after SND.UNA into dst[at..]. */
  copyOut(offset: number, dst: Uint8Array, at: number, len: number): void {
    const cap = this.buf.length;
    const from = (this.head + offset) % cap;
    const first = Math.min(len, cap - from);
    dst.set(this.buf.subarray(from, from + first), at);
    if (first < len) dst.set(this.buf.subarray(0, len - first), at + first);
  }

  /** Drops `n` acknowledged bytes from the front. */
  consume(n: number): void {
    n = Math.min(n, this.length);
    this.length -= n;
    this.head = this.length === 0 ? 0 : (this.head + n) % this.buf.length;
  }

  /** Releases the storage (connection closed). */
  release(): void {
    this.buf = NO_BYTES;
    this.head = 0;
    this.length = 0;
  }

  private ensure(need: number): void {
    if (need <= this.buf.length) return;
    const next = new Uint8Array(ringCapacity(this.buf.length, need, this.limit));
    if (this.length > 0) this.copyOut(0, next, 0, this.length);
    this.buf = next;
    this.head = 0;
  }
}
