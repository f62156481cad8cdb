/**
 * Two netstacks joined by an in-memory IP link with a manual clock: each
 * packet is copied, may be dropped, duplicated or delayed (reordering), and
 * arrives when the simulated time reaches it. run() advances time event by
 * event (packet arrivals and the stacks' own deadlines), so a test of minutes
 * of TCP timers takes milliseconds and is deterministic for a given seed.
 *
 * Both batches are reused, as the device's are, and poisoned after each use
 * (deliverAndPoison, io/memory.ts): the input batch once the stack's input()
 * returns, the stack's output batch once the wire has copied its packets. A
 * stack, forwarder or relay that keeps a view into either (Buffer#slice is a
 * view) reads garbage at once.
 */
import { PacketBatch } from '../../src/io/batch.js';
import { deliverAndPoison } from '../../src/io/memory.js';
import type { PacketSink } from '../../src/netstack/output.js';
import { Stack, type StackOptions } from '../../src/netstack/stack.js';
import type { Random } from '../../src/protocol/random.js';
import type { TcpConnection, TcpError } from '../../src/netstack/tcp/connection.js';

export interface LinkFaults {
  loss?: number;
  duplicate?: number;
  /** Probability that a packet gets extra delay (so later ones overtake it). */
  reorder?: number;
  /** One-way delay in ms. */
  delayMs?: number;
}

/** A small deterministic PRNG (mulberry32). */
export function seededRandom(seed: number): Random & { next(): number } {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    fill(buf) {
      for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(next() * 256);
    },
    u32: () => Math.floor(next() * 4294967296) >>> 0,
    int: (max) => Math.floor(next() * max),
  };
}

interface InFlight {
  at: number;
  seq: number;
  pkt: Uint8Array;
}

class Wire implements PacketSink {
  readonly headroom = 0;
  readonly queue: InFlight[] = [];
  private readonly batch = new PacketBatch(64, 65536 + 64);
  /** Every packet offered to the wire (before faults), for assertions. */
  readonly seen: Uint8Array[] = [];
  record = false;
  faults: LinkFaults = {};
  /** Optional hook: return false to drop a packet. */
  filter: ((pkt: Uint8Array) => boolean) | null = null;
  private counter = 0;

  constructor(private readonly link: Link) {}

  acquire(): PacketBatch {
    return this.batch;
  }

  submit(batch: PacketBatch): void {
    deliverAndPoison(batch, (b) => this.take(b));
  }

  private take(b: PacketBatch): void {
    const r = this.link.rng;
    const f = this.faults;
    for (let i = 0; i < b.count; i++) {
      const pkt = new Uint8Array(b.packet(i));
      if (this.record) this.seen.push(pkt);
      if (this.filter && !this.filter(pkt)) continue;
      if (f.loss && r.next() < f.loss) continue;
      const copies = f.duplicate && r.next() < f.duplicate ? 2 : 1;
      for (let k = 0; k < copies; k++) {
        let at = this.link.now + (f.delayMs ?? 1);
        if (f.reorder && r.next() < f.reorder) at += 1 + r.next() * 10;
        this.queue.push({ at, seq: this.counter++, pkt });
      }
    }
    b.count = 0;
  }
}

export class Link {
  now = 1_000_000;
  readonly rng: ReturnType<typeof seededRandom>;
  readonly a: Stack;
  readonly b: Stack;
  readonly aWire: Wire;
  readonly bWire: Wire;
  private wokenA = false;
  private wokenB = false;
  private readonly inBatch = new PacketBatch(64, 65536 + 64);

  constructor(opts: { seed?: number; mtu?: number; a?: Partial<StackOptions>; b?: Partial<StackOptions>; v6?: boolean } = {}) {
    this.rng = seededRandom(opts.seed ?? 1);
    this.aWire = new Wire(this);
    this.bWire = new Wire(this);
    const clock = { now: () => this.now };
    const mtu = opts.mtu ?? 1420;
    this.a = new Stack({ addresses: ['10.0.0.1', 'fd00::1'], mtu, clock, sink: this.aWire, random: seededRandom((opts.seed ?? 1) * 7 + 1), wake: () => (this.wokenA = true), ...opts.a });
    this.b = new Stack({ addresses: ['10.0.0.2', 'fd00::2'], mtu, clock, sink: this.bWire, random: seededRandom((opts.seed ?? 1) * 7 + 2), wake: () => (this.wokenB = true), ...opts.b });
  }

  faults(f: LinkFaults): void {
    this.aWire.faults = f;
    this.bWire.faults = f;
  }

  /**
   * Runs events until `done()` holds or `maxMs` of simulated time pass.
   * Returns whether done() held.
   */
  run(done: () => boolean, maxMs = 600_000, maxSteps = 2_000_000): boolean {
    const end = this.now + maxMs;
    for (let step = 0; step < maxSteps; step++) {
      this.settle();
      if (done()) return true;
      const next = Math.min(earliest(this.aWire.queue), earliest(this.bWire.queue), this.a.nextDeadline(), this.b.nextDeadline());
      if (next === Infinity || next > end) {
        if (next > end) this.now = end;
        return done();
      }
      if (next > this.now) this.now = next;
      this.deliver(this.aWire, this.b);
      this.deliver(this.bWire, this.a);
      if (this.a.nextDeadline() <= this.now) this.a.tick();
      if (this.b.nextDeadline() <= this.now) this.b.tick();
    }
    return done();
  }

  /** Flushes work the application side created. */
  settle(): void {
    for (let i = 0; i < 16 && (this.wokenA || this.wokenB); i++) {
      if (this.wokenA) {
        this.wokenA = false;
        this.a.flush();
      }
      if (this.wokenB) {
        this.wokenB = false;
        this.b.flush();
      }
    }
  }

  private deliver(w: Wire, to: Stack): void {
    const q = w.queue;
    if (q.length === 0) return;
    q.sort((x, y) => x.at - y.at || x.seq - y.seq);
    const b = this.inBatch;
    while (q.length > 0 && q[0]!.at <= this.now) {
      b.count = 0;
      while (q.length > 0 && q[0]!.at <= this.now && b.count < b.capacity) {
        const p = q.shift()!;
        const i = b.count++;
        b.offsets[i] = 0;
        b.lengths[i] = p.pkt.length;
        b.data.set(p.pkt, i * b.slotSize);
      }
      deliverAndPoison(b, (x) => to.input(x));
    }
  }

  /** Plays a raw packet into a stack (tests of hostile input). */
  inject(to: Stack, pkt: Uint8Array): void {
    const b = this.inBatch;
    b.count = 1;
    b.offsets[0] = 0;
    b.lengths[0] = pkt.length;
    b.data.set(pkt, 0);
    deliverAndPoison(b, (x) => to.input(x));
  }
}

function earliest(q: InFlight[]): number {
  let m = Infinity;
  for (const p of q) if (p.at < m) m = p.at;
  return m;
}

export interface Collected {
  data: Buffer[];
  connected: boolean;
  ended: boolean;
  closed: boolean;
  error: TcpError | null;
}

/** Attaches events that read everything and record what happened. */
export function collect(c: TcpConnection, opts: { read?: boolean } = {}): Collected {
  const r: Collected = { data: [], connected: false, ended: false, closed: false, error: null };
  c.events = {
    onConnect: () => (r.connected = true),
    onReadable: () => {
      if (opts.read === false) return;
      for (let b = c.read(); b; b = c.read()) r.data.push(b);
    },
    onEnd: () => (r.ended = true),
    onWritable: () => {},
    onClose: (e) => {
      r.closed = true;
      r.error = e;
    },
  };
  return r;
}

/** Listens on `port` of side b and collects every connection it accepts, in accept order. */
export function acceptAll(link: Link, port = 80): TcpConnection[] {
  const accepted: TcpConnection[] = [];
  link.b.listen(port, (c) => {
    accepted.push(c);
    collect(c);
  });
  return accepted;
}

/** One connection from side a to side b's port 80, run until both ends have it established. */
export function established(link: Link): { client: TcpConnection; cr: Collected; server: () => TcpConnection; sr: () => Collected } {
  let server: TcpConnection | null = null;
  let sr: Collected | null = null;
  link.b.listen(80, (c) => {
    server = c;
    sr = collect(c);
  });
  const client = link.a.connect('10.0.0.2', 80);
  const cr = collect(client);
  if (!link.run(() => cr.connected && server !== null)) throw new Error('the connection was not established');
  return { client, cr, server: () => server!, sr: () => sr! };
}

/** Writes all of `payload` from `client` as its window allows (64 KiB at a time), then FIN; re-runs on every writable event. */
export function sendAllThenFin(client: TcpConnection, payload: Buffer): void {
  let off = 0;
  const pump = (): void => {
    while (off < payload.length) {
      const n = client.write(payload, off, Math.min(65536, payload.length - off));
      if (n === 0) break;
      off += n;
    }
    if (off === payload.length) client.shutdown();
  };
  client.events.onWritable = pump;
  pump();
}
