/**
 * What the owner of a Stack must schedule, since the stack itself is
 * sans-I/O (stack.ts): flush() soon after it asks (wake — work the
 * application queued outside an entry point, flushed in a microtask so a
 * burst of calls costs one flush), and tick() when its next deadline comes
 * (a timer re-armed whenever the deadline moves). The only place in the
 * netstack layer that schedules, as device/runtime.ts is in the device's;
 * the kernel-free Tunnel (userspace/) and the netstack exit (server/) share it.
 *
 * Give `wake` and `onDeadline` to the Stack's options, then attach() it.
 *
 * Where the wakes come one per host socket callback — the netstack exit's
 * UDP replies, one dgram 'message' each — a microtask flush sends every
 * datagram alone (Node drains microtasks after each callback), so such an
 * owner passes `defer: setImmediate`: the flush then runs once after the
 * event loop's poll phase has read every ready socket, and a turn's output
 * leaves as one batch.
 */
import type { Stack } from './stack.js';

export interface StackSchedulerOptions {
  /** How a wake's flush is deferred (default queueMicrotask: the end of the current callback). */
  defer?: (fn: () => void) => void;
}

export class StackScheduler {
  private stack: Stack | null = null;
  private readonly defer: (fn: () => void) => void;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private flushQueued = false;
  private closed = false;

  constructor(opts: StackSchedulerOptions = {}) {
    this.defer = opts.defer ?? queueMicrotask;
  }

  /** The stack's `wake` option. */
  readonly wake = (): void => {
    if (this.flushQueued || this.closed) return;
    this.flushQueued = true;
    this.defer(() => {
      this.flushQueued = false;
      if (this.closed || this.stack === null) return;
      this.stack.flush();
      this.arm();
    });
  };

  /** The stack's `onDeadline` option; also call it after driving the stack yourself (input, tick). */
  readonly onDeadline = (): void => this.arm();

  attach(stack: Stack): void {
    this.stack = stack;
  }

  /** Stops scheduling: no flush and no tick after this. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(): void {
    if (this.closed || this.stack === null) return;
    const at = this.stack.nextDeadline();
    if (at === this.timerAt && this.timer) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = at;
    if (at === Infinity) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      if (this.closed || this.stack === null) return;
      this.stack.tick();
      this.arm();
    }, Math.max(0, Math.ceil(at - performance.now())));
  }
}
