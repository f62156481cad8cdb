/**
 * Time as the device sees it: a monotonic clock for every protocol timer and
 * a wall clock for TAI64N timestamps and "latest handshake" reporting.
 * Injected, so tests move time instead of waiting.
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
  constructor(private mono = 1_000_000, private wall = Date.UTC(2026, 0, 1)) {}
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
}
