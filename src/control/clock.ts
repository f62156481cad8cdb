/**
 * Time for the control plane comes from an injected clock (milliseconds since
 * the epoch), never from Date.now() inside a service, so tests can move it
 * past a session's expiry or a billing period's end.
 */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();

/** A clock the caller moves by hand (tests, simulations). */
export interface ManualClock {
  (): number;
  set(ms: number): void;
  advance(ms: number): void;
}

export function manualClock(startMs: number): ManualClock {
  let now = startMs;
  const c = (() => now) as ManualClock;
  c.set = (ms) => {
    now = ms;
  };
  c.advance = (ms) => {
    now += ms;
  };
  return c;
}

export const iso = (ms: number): string => new Date(ms).toISOString();
