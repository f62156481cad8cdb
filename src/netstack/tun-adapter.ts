/**
 * The netstack dressed as a TUN device (io/types.ts TunDevice), so a
 * WireGuard Device runs over it exactly as over a Linux TUN: what the device
 * "writes to the TUN" (decrypted packets from the peer) is the stack's input;
 * what the stack sends is "read from the TUN" by the device, at the headroom
 * the device asked for so it seals in place. Neither device/ nor io/ knows
 * this exists.
 *
 * The device must not be re-entered from inside its own write (it is in the
 * middle of a receive batch), so the stack's output batches are queued and
 * handed to the device from a deferred callback the owner supplies (a
 * setImmediate in the userspace runtime, a manual pump in tests). Batches
 * come from a small pool and return to it once the device has taken them.
 */
import { PacketBatch } from '../io/batch.js';
import type { TunDevice } from '../io/types.js';
import type { PacketSink } from './output.js';
import type { Stack } from './stack.js';

/** Slots per output batch (wireguard-go's IdealBatchSize is 128; 64 keeps one batch at ~100 KiB). */
const BATCH_SLOTS = 64;
/** Room after a packet for the device's padding (to 16) and its 16-byte tag. */
const TRAILER = 64;
/** Batches kept for reuse; beyond this, finished batches are left to the GC. */
const POOL_MAX = 16;

export interface NetstackTunOptions {
  mtu: number;
  /** Runs `fn` later, outside the current call stack (setImmediate, queueMicrotask, a test's pump). */
  defer: (fn: () => void) => void;
}

export class NetstackTun implements TunDevice, PacketSink {
  readonly name = 'netstack';
  headroom = 0;
  private stack: Stack | null = null;
  private onBatch: ((b: PacketBatch) => void) | null = null;
  private readonly pending: PacketBatch[] = [];
  private readonly pool: PacketBatch[] = [];
  private scheduled = false;
  private closed = false;
  private readonly closeCbs: ((reason: string) => void)[] = [];
  private readonly slotSize: number;
  /** Packets handed to the device / taken from it. */
  readonly counters = { toDevice: 0, fromDevice: 0, batchesQueued: 0 };

  constructor(private readonly opts: NetstackTunOptions) {
    this.slotSize = Math.max(256, 128 + opts.mtu + TRAILER);
  }

  /** Connects the stack whose input this TUN feeds (set once, before start). */
  attach(stack: Stack): void {
    this.stack = stack;
  }

  mtu(): number {
    return this.opts.mtu;
  }

  start(onBatch: (batch: PacketBatch) => void, headroom: number): void {
    this.onBatch = onBatch;
    this.headroom = headroom;
    this.schedule();
  }

  /** The device's decrypted packets: into the stack. */
  write(batch: PacketBatch): void {
    if (this.closed || this.stack === null) return;
    this.counters.fromDevice += batch.count;
    this.stack.input(batch);
  }

  onClose(cb: (reason: string) => void): void {
    this.closeCbs.push(cb);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending.length = 0;
    for (const cb of this.closeCbs) cb('closed');
  }

  // ---- PacketSink (the stack's output) ----

  acquire(): PacketBatch {
    const b = this.pool.pop() ?? new PacketBatch(BATCH_SLOTS, this.slotSize);
    b.count = 0;
    return b;
  }

  submit(batch: PacketBatch): void {
    if (this.closed) return;
    this.pending.push(batch);
    this.counters.batchesQueued++;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.onBatch === null || this.pending.length === 0) return;
    this.scheduled = true;
    this.opts.defer(() => this.deliver());
  }

  private deliver(): void {
    this.scheduled = false;
    const onBatch = this.onBatch;
    if (this.closed || onBatch === null) return;
    // Only what is queued now: batches the device's reaction produces wait for the next turn.
    let n = this.pending.length;
    while (n-- > 0) {
      const b = this.pending.shift()!;
      this.counters.toDevice += b.count;
      onBatch(b);
      if (this.pool.length < POOL_MAX) this.pool.push(b);
    }
    this.schedule();
  }
}
