/**
 * In-memory TUN and UDP (docs/principles.md §6): the test doubles and benchmark rig
 * for the batch interfaces of types.ts, so two devices can talk in one
 * process without root.
 *
 * Delivery is asynchronous (a macrotask per destination), like a real
 * socket, so a device is never re-entered from inside its own send. Packets
 * are copied on send, since the sender reuses its batch.
 *
 * Every batch is handed over with deliverAndPoison: a batch belongs to the
 * callee only for the call (types.ts), and Buffer#slice/subarray are views,
 * so a consumer that kept a view instead of a copy (a connection's
 * addresses, a flow's client, a queued message) reads garbage at once — not
 * only when a later packet happens to land in the same slot.
 */
import { PacketBatch } from './batch.js';
import { decodeEndpoint, encodeEndpoint, ENDPOINT_SIZE, formatEndpoint, type Endpoint } from './endpoint.js';
import type { TunDevice, UdpBind } from './types.js';

const SLOT = 65536 + 128;
/** Bytes past a packet's end a consumer may write while it holds the batch (the device's padding and tag when it seals in place). */
const POISON_MARGIN = 64;

let poisonRound = 0;

/**
 * Hands `batch` to `consume`, then overwrites what the consumer was given —
 * the packets' slots up to the furthest packet end (plus a margin, since a
 * consumer may move packets within the batch) and their endpoint records —
 * with garbage: a byte that changes on every call, so views kept from two
 * deliveries do not even agree with each other. For producers in tests (the
 * in-memory adapters here, test/support's links); the cost is one fill of
 * about what the producer copied in.
 */
export function deliverAndPoison(batch: PacketBatch, consume: (b: PacketBatch) => void): void {
  const n = batch.count;
  let extent = 0;
  for (let i = 0; i < n; i++) extent = Math.max(extent, batch.offsets[i]! + batch.lengths[i]!);
  extent = Math.min(batch.slotSize, extent + POISON_MARGIN);
  try {
    consume(batch);
  } finally {
    poisonRound = (poisonRound + 1) % 255;
    const garbage = 0xa5 ^ (poisonRound + 1);
    for (let i = 0; i < n; i++) batch.data.fill(garbage, i * batch.slotSize, i * batch.slotSize + extent);
    batch.endpoints.fill(garbage, 0, n * ENDPOINT_SIZE);
  }
}

interface Datagram {
  data: Uint8Array;
  from: Uint8Array; // endpoint record of the sender
}

/** A switch connecting in-memory UDP binds by address. */
export class MemoryNetwork {
  private readonly binds = new Map<string, MemoryUdpBind>();
  /** Optional hook: return false to drop a datagram (loss, firewalls), or rewrite `from` (NAT). */
  filter: ((d: { data: Uint8Array; from: Endpoint; to: Endpoint }) => boolean) | null = null;
  delivered = 0;
  dropped = 0;

  bind(address: string, port: number): MemoryUdpBind {
    const b = new MemoryUdpBind(this, { family: address.includes(':') ? 6 : 4, address, port });
    this.register(b);
    return b;
  }

  /** @internal */
  register(b: MemoryUdpBind): void {
    const key = formatEndpoint(b.local);
    if (this.binds.has(key)) throw new Error(`address in use: ${key}`);
    this.binds.set(key, b);
  }

  /** @internal */
  unregister(b: MemoryUdpBind): void {
    const key = formatEndpoint(b.local);
    if (this.binds.get(key) === b) this.binds.delete(key);
  }

  /** @internal */
  route(data: Uint8Array, from: Endpoint, to: Endpoint): void {
    if (this.filter) {
      const d = { data, from, to };
      if (!this.filter(d)) {
        this.dropped++;
        return;
      }
      from = d.from;
    }
    const dst = this.binds.get(formatEndpoint(to));
    if (!dst) {
      this.dropped++;
      return;
    }
    const rec = new Uint8Array(ENDPOINT_SIZE);
    encodeEndpoint(from, rec);
    this.delivered++;
    dst.enqueue({ data, from: rec });
  }
}

export class MemoryUdpBind implements UdpBind {
  local: Endpoint;
  private onBatch: ((b: PacketBatch) => void) | null = null;
  private headroom = 0;
  private readonly queue: Datagram[] = [];
  private scheduled = false;
  private closed = false;
  private readonly batch: PacketBatch;
  sent = 0;

  constructor(private readonly net: MemoryNetwork, local: Endpoint, batchSize = 32) {
    this.local = local;
    this.batch = new PacketBatch(batchSize, SLOT);
  }

  port(): number {
    return this.local.port;
  }

  /** Moves the bind to another port (a client that roams). */
  rebind(port: number): void {
    this.net.unregister(this);
    this.local = { ...this.local, port };
    this.net.register(this);
  }

  start(onBatch: (b: PacketBatch) => void, headroom: number): void {
    this.onBatch = onBatch;
    this.headroom = headroom;
    this.schedule();
  }

  send(batch: PacketBatch): void {
    if (this.closed) return;
    for (let i = 0; i < batch.count; i++) {
      const to = decodeEndpoint(batch.endpoints, i * ENDPOINT_SIZE);
      if (!to) continue;
      this.sent++;
      this.net.route(new Uint8Array(batch.packet(i)), this.local, to);
    }
  }

  /** @internal */
  enqueue(d: Datagram): void {
    if (this.closed) return;
    this.queue.push(d);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || !this.onBatch || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => this.deliver());
  }

  private deliver(): void {
    this.scheduled = false;
    if (this.closed || !this.onBatch) return;
    const b = this.batch;
    b.count = 0;
    while (this.queue.length > 0 && b.count < b.capacity) {
      const d = this.queue.shift()!;
      if (d.data.length > b.slotSize - this.headroom) continue;
      const i = b.count++;
      b.offsets[i] = this.headroom;
      b.lengths[i] = d.data.length;
      b.data.set(d.data, i * b.slotSize + this.headroom);
      b.endpoints.set(d.from, i * ENDPOINT_SIZE);
    }
    if (b.count > 0) deliverAndPoison(b, this.onBatch);
    this.schedule();
  }

  close(): void {
    this.closed = true;
    this.net.unregister(this);
    this.queue.length = 0;
  }
}

/** A TUN whose "kernel side" is the test: `inject` plays packets in, `written` collects what the device wrote. */
export class MemoryTun implements TunDevice {
  readonly name: string;
  readonly written: Uint8Array[] = [];
  onWrite: ((pkt: Uint8Array) => void) | null = null;
  private onBatch: ((b: PacketBatch) => void) | null = null;
  private headroom = 0;
  private readonly queue: Uint8Array[] = [];
  private scheduled = false;
  private closeCbs: ((reason: string) => void)[] = [];
  private closed = false;
  private readonly batch: PacketBatch;

  constructor(name = 'mem0', private readonly mtuValue = 1420, batchSize = 32) {
    this.name = name;
    this.batch = new PacketBatch(batchSize, SLOT);
  }

  mtu(): number {
    return this.mtuValue;
  }

  start(onBatch: (b: PacketBatch) => void, headroom: number): void {
    this.onBatch = onBatch;
    this.headroom = headroom;
    this.schedule();
  }

  /** A packet "from the kernel" (an application sending through the tunnel). */
  inject(pkt: Uint8Array): void {
    this.queue.push(new Uint8Array(pkt));
    this.schedule();
  }

  write(batch: PacketBatch): void {
    for (let i = 0; i < batch.count; i++) {
      const p = new Uint8Array(batch.packet(i));
      this.written.push(p);
      this.onWrite?.(p);
    }
  }

  onClose(cb: (reason: string) => void): void {
    this.closeCbs.push(cb);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const cb of this.closeCbs) cb('closed');
  }

  private schedule(): void {
    if (this.scheduled || !this.onBatch || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.closed || !this.onBatch) return;
      const b = this.batch;
      b.count = 0;
      while (this.queue.length > 0 && b.count < b.capacity) {
        const p = this.queue.shift()!;
        const i = b.count++;
        b.offsets[i] = this.headroom;
        b.lengths[i] = p.length;
        b.data.set(p, i * b.slotSize + this.headroom);
      }
      if (b.count > 0) deliverAndPoison(b, this.onBatch);
      this.schedule();
    });
  }
}
