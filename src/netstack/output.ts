/**
 * Where the stack's packets go: slots of a PacketBatch taken from a sink,
 * each packet written at the sink's headroom (so the WireGuard device can
 * put its 16-byte header in front and seal in place, like a TUN read).
 *
 * The stack fills the current batch and hands it over when it is full or
 * when an entry point (input, tick, flush) ends. A sink that delivers later
 * (the TUN adapter) gives out a fresh batch each time, so nothing the stack
 * writes afterwards can overwrite a batch in flight.
 */
import type { PacketBatch } from '../io/batch.js';

export interface PacketSink {
  /** Bytes to leave in front of each packet in its slot. */
  readonly headroom: number;
  /** An empty batch to fill. */
  acquire(): PacketBatch;
  /** A filled batch (count > 0); it belongs to the sink from now on. */
  submit(batch: PacketBatch): void;
}

export class Output {
  private batch: PacketBatch | null = null;
  /** Packets handed to the sink. */
  packets = 0;

  constructor(private readonly sink: PacketSink) {}

  /**
   * Reserves the next slot for a packet of at most `maxLen` bytes and returns
   * the absolute offset in `data()` where it starts. Call commit() after writing.
   */
  reserve(maxLen: number): number {
    let b = this.batch;
    if (b !== null && b.count >= b.capacity) {
      this.flush();
      b = null;
    }
    if (b === null) {
      b = this.batch = this.sink.acquire();
      b.count = 0;
    }
    if (this.sink.headroom + maxLen > b.slotSize) throw new RangeError(`packet of ${maxLen} bytes does not fit a slot`);
    const i = b.count;
    b.offsets[i] = this.sink.headroom;
    return i * b.slotSize + this.sink.headroom;
  }

  /** The buffer reserve() offsets point into. */
  data(): Uint8Array {
    return this.batch!.data;
  }

  commit(len: number): void {
    const b = this.batch!;
    b.lengths[b.count] = len;
    b.count++;
    this.packets++;
  }

  flush(): void {
    const b = this.batch;
    if (b === null || b.count === 0) return;
    this.batch = null;
    this.sink.submit(b);
  }
}
