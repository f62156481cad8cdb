/**
 * The reading half that the TUN (tun.ts) and the UDP socket (udp.ts) share:
 * the event loop polls the non-blocking fd (libuv, level-triggered); on each
 * wakeup we read into one PacketBatch, call onBatch once per batch, and
 * repeat while batches come back full, up to `maxBatches` — then yield to
 * the loop, and what is left wakes us again. With offloads the addon may
 * hold the rest of a super-packet or coalesced datagram after a full batch,
 * with nothing in the kernel's queue to wake the poll: then a read is
 * scheduled after yielding (setImmediate). ref()/unref() decide whether the
 * poll keeps the process alive, like a socket's.
 *
 * A subclass says how one read goes (readOnce: the native call and its
 * counters) and when a batch counts as full.
 */
import type { PacketBatch } from '../batch.js';
import { intOption, type NativeHandle } from './binding.js';

/** readOnce: a round that delivered nothing, but more may be waiting (read again now). */
export const READ_AGAIN = -1;
/** readOnce: stop reading until the next wakeup (an error, or the object closed). */
export const READ_STOP = -2;

export abstract class PolledReader {
  private onBatch: ((batch: PacketBatch) => void) | null = null;
  private headroom = 0;
  private rereadScheduled = false;

  constructor(
    protected readonly handle: NativeHandle,
    protected readonly batch: PacketBatch,
    private readonly maxBatches: number,
  ) {}

  abstract get closed(): boolean;
  /** Whether the addon may keep a remainder between reads (offloads on). */
  protected abstract get keepsRemainder(): boolean;
  /** One native read into the batch at `headroom`: packets read (0: none pending), READ_AGAIN or READ_STOP. */
  protected abstract readOnce(batch: PacketBatch, headroom: number): number;
  /** Whether the read that returned n packets filled the batch (so more may wait in the kernel). */
  protected abstract filled(n: number): boolean;

  /** Whether a read that kept no packet dropped some that the batch counts (the UDP shed). */
  protected shedOnly(_batch: PacketBatch): boolean {
    return false;
  }

  start(onBatch: (batch: PacketBatch) => void, headroom: number): void {
    if (typeof onBatch !== 'function') throw new TypeError('onBatch must be a function');
    this.headroom = intOption('headroom', headroom, 0, this.batch.slotSize - 64, 0);
    this.onBatch = onBatch;
    if (this.closed) return;
    this.handle.poll(this.onReadable);
    // A remainder kept from before a pause() would otherwise wait for the next packet.
    if (this.keepsRemainder) this.scheduleReread();
  }

  /** Stops reading until start() is called again. */
  pause(): void {
    this.onBatch = null;
    if (!this.closed) this.handle.pause();
  }

  /** Lets the process exit while reading (like socket.unref()). */
  unref(): void {
    if (!this.closed) this.handle.unref();
  }

  ref(): void {
    if (!this.closed) this.handle.ref();
  }

  /** Called by a subclass when it closes: no more deliveries. */
  protected stopReading(): void {
    this.onBatch = null;
  }

  /**
   * libuv stopped polling on POLLERR (the error was consumed by the read):
   * resume. The TUN first checks whether its interface is gone.
   */
  protected afterPollError(): void {
    if (this.onBatch !== null) this.handle.poll(this.onReadable);
  }

  private readonly onReadable = (status: number): void => {
    const b = this.batch;
    let full = false;
    for (let k = 0; k < this.maxBatches && this.onBatch !== null && !this.closed; k++) {
      full = false;
      const n = this.readOnce(b, this.headroom);
      if (n === READ_AGAIN) continue;
      if (n === 0 && this.shedOnly(b)) {
        // Everything read was shed: deliver the empty batch for its counts.
        b.count = 0;
        this.onBatch(b);
        break;
      }
      if (n <= 0) break;
      b.count = n;
      this.onBatch(b);
      if (!this.filled(n)) break;
      full = true;
    }
    if (full && this.keepsRemainder) this.scheduleReread();
    if (status < 0 && !this.closed) this.afterPollError();
  };

  private scheduleReread(): void {
    if (this.rereadScheduled) return;
    this.rereadScheduled = true;
    setImmediate(() => {
      this.rereadScheduled = false;
      if (this.onBatch !== null && !this.closed) this.onReadable(0);
    });
  }
}
