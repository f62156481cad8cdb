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
 */
import type { Stack } from './stack.js';

export class StackScheduler {
  private stack: Stack | null = null;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private flushQueued = false;
  private closed = false;

  /** The stack's `wake` option. */
  readonly wake = (): void => {
    if (this.flushQueued || this.closed) return;
    this.flushQueued = true;
    queueMicrotask(() => {
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
