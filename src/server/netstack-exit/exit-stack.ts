/**
 * The netstack exit's device side: the netstack in forwarding mode with the
 * exit's forwarder, dressed as a TUN (NetstackTun) for the WireGuard device,
 * and the scheduling it needs — a microtask to flush what host sockets
 * queued, a timer at the stack's next deadline, a sweep of idle UDP flows
 * once a second. It replaces the TUN interface of `serve`; the device, its
 * peers and the control plane's view of it are the same.
 */
import { NetstackTun } from '../../netstack/tun-adapter.js';
import { Stack } from '../../netstack/stack.js';
import type { ExitForwarder } from './forwarder.js';

export interface ExitStackOptions {
  /** The pools' gateway addresses: the stack's own (echo to them is answered locally). */
  addresses: string[];
  mtu: number;
  forwarder: ExitForwarder;
}

/** How often idle UDP flows and unanswered echo requests are looked for (ms). */
const SWEEP_INTERVAL_MS = 1000;

export class ExitStack {
  readonly tun: NetstackTun;
  readonly stack: Stack;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private flushQueued = false;
  private closed = false;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly opts: ExitStackOptions) {
    this.tun = new NetstackTun({ mtu: opts.mtu, defer: (fn) => setImmediate(fn) });
    this.stack = new Stack({
      addresses: opts.addresses,
      mtu: opts.mtu,
      clock: { now: () => performance.now() },
      sink: this.tun,
      forwarder: opts.forwarder,
      wake: () => this.queueFlush(),
      onDeadline: () => this.arm(),
    });
    this.tun.attach(this.stack);
    opts.forwarder.attach(this.stack);
    this.sweeper = setInterval(() => opts.forwarder.sweep(), SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  /** Ends every relay (host sockets reset, clients' connections aborted) and the timers. */
  close(): void {
    if (this.closed) return;
    this.opts.forwarder.close();
    this.stack.flush();
    this.closed = true;
    clearInterval(this.sweeper);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private queueFlush(): void {
    if (this.flushQueued || this.closed) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      if (this.closed) return;
      this.stack.flush();
      this.arm();
    });
  }

  private arm(): void {
    if (this.closed) return;
    const at = this.stack.nextDeadline();
    if (at === this.timerAt && this.timer) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = at;
    if (at === Infinity) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      if (this.closed) return;
      this.stack.tick();
      this.arm();
    }, Math.max(0, Math.ceil(at - performance.now())));
  }
}
