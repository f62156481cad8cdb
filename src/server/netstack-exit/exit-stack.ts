/**
 * The netstack exit's device side: the netstack in forwarding mode with the
 * exit's forwarder, dressed as a TUN (NetstackTun) for the WireGuard device,
 * and the scheduling it needs — the stack's flushes and timers
 * (netstack/stack-scheduler.ts, as the kernel-free Tunnel has them), a sweep
 * of idle UDP flows once a second. It replaces the TUN interface of `serve`; the device, its
 * peers and the control plane's view of it are the same.
 */
import { NetstackTun } from '../../netstack/tun-adapter.js';
import { Stack } from '../../netstack/stack.js';
import { StackScheduler } from '../../netstack/stack-scheduler.js';
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
  private readonly scheduler = new StackScheduler();
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
      wake: this.scheduler.wake,
      onDeadline: this.scheduler.onDeadline,
    });
    this.scheduler.attach(this.stack);
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
    this.scheduler.close();
  }
}
