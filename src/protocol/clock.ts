/**
 * Time as the program sees it: a monotonic clock for every protocol timer
 * and a wall clock for TAI64N timestamps, "latest handshake" reporting and
 * the control plane's records (sessions, billing periods). The protocol core
 * itself takes `now` as a number; whoever drives it reads this clock.
 * Injected everywhere, so tests move time instead of waiting.
 */
export interface Clock {
  /** Monotonic milliseconds (arbitrary origin). */
  now(): number;
  /** Wall-clock milliseconds since the Unix epoch. */
  wallMs(): number;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallMs: () => Date.now(),
};

/** A clock that moves only when told to (tests, simulations). */
export class ManualClock implements Clock {
  constructor(
    private wall = Date.UTC(2026, 0, 1),
    private mono = 1_000_000,
  ) {}
  now(): number {
    return this.mono;
  }
  wallMs(): number {
    return this.wall;
  }
  advance(ms: number): void {
    this.mono += ms;
    this.wall += ms;
  }
  /** Sets the wall clock; the monotonic clock moves by the same amount (never backwards). */
  set(wallMs: number): void {
    this.mono += Math.max(0, wallMs - this.wall);
    this.wall = wallMs;
  }
}
