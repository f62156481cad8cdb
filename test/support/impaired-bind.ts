/**
 * A UdpBind wrapper that loses, duplicates, reorders and delays datagrams in
 * both directions, like `tc netem` on the link — for kernels without the
 * sch_netem module. The netstack interop test uses it for reordering and
 * delay, which nftables cannot do; loss and duplication it leaves to the
 * kernel (test/support/nft-impair.ts).
 * Every decision is per datagram; delayed datagrams are copied and sent or
 * delivered later in batches of their own.
 */
import { PacketBatch } from '../../src/io/batch.js';
import { deliverAndPoison } from '../../src/io/memory.js';
import { ENDPOINT_SIZE } from '../../src/io/endpoint.js';
import type { UdpBind } from '../../src/io/types.js';

export interface Impairment {
  loss?: number;
  duplicate?: number;
  /** Fixed delay (ms) for every datagram. */
  delayMs?: number;
  /** Probability that a datagram is held back `reorderMs` longer than the rest. */
  reorder?: number;
  reorderMs?: number;
}

export class ImpairedBind implements UdpBind {
  impairment: Impairment | null = null;
  readonly counts = { dropped: 0, duplicated: 0, delayed: 0 };
  private headroom = 0;
  private onBatch: ((b: PacketBatch) => void) | null = null;
  private closed = false;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly inner: UdpBind) {}

  port(): number {
    return this.inner.port();
  }

  start(onBatch: (batch: PacketBatch) => void, headroom: number): void {
    this.onBatch = onBatch;
    this.headroom = headroom;
    this.inner.start((b) => (this.impairment ? this.apply(b, 'in') : onBatch(b)), headroom);
  }

  send(batch: PacketBatch): void {
    if (this.impairment) this.apply(batch, 'out');
    else this.inner.send(batch);
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.inner.close();
  }

  private apply(b: PacketBatch, dir: 'in' | 'out'): void {
    const f = this.impairment!;
    const now: { data: Uint8Array; ep: Uint8Array }[] = [];
    for (let i = 0; i < b.count; i++) {
      if (f.loss && Math.random() < f.loss) {
        this.counts.dropped++;
        continue;
      }
      const item = { data: new Uint8Array(b.packet(i)), ep: b.endpoints.slice(i * ENDPOINT_SIZE, (i + 1) * ENDPOINT_SIZE) };
      const copies = f.duplicate && Math.random() < f.duplicate ? 2 : 1;
      if (copies === 2) this.counts.duplicated++;
      for (let k = 0; k < copies; k++) {
        const extra = f.reorder && Math.random() < f.reorder ? (f.reorderMs ?? 10) : 0;
        const delay = (f.delayMs ?? 0) + extra;
        if (delay > 0) {
          this.counts.delayed++;
          const t = setTimeout(() => {
            this.timers.delete(t);
            this.emit([item], dir);
          }, delay);
          this.timers.add(t);
        } else now.push(item);
      }
    }
    if (now.length > 0) this.emit(now, dir);
  }

  private emit(items: { data: Uint8Array; ep: Uint8Array }[], dir: 'in' | 'out'): void {
    if (this.closed) return;
    const b = new PacketBatch(Math.min(items.length, 4096), 65536 + 128);
    for (const it of items) {
      const i = b.count++;
      b.offsets[i] = dir === 'in' ? this.headroom : 0;
      b.lengths[i] = it.data.length;
      b.data.set(it.data, i * b.slotSize + b.offsets[i]!);
      b.endpoints.set(it.ep, i * ENDPOINT_SIZE);
    }
    // A batch of its own each time, so a kept view would stay intact: poisoned after the device's call instead.
    if (dir === 'in') {
      if (this.onBatch) deliverAndPoison(b, this.onBatch);
    } else this.inner.send(b);
  }
}
