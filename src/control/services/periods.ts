/**
 * Billing periods are calendar months in UTC: usage and quotas reset at
 * 00:00 UTC on the 1st. A period is named 'YYYY-MM'.
 */
export interface Period {
  id: string;
  startMs: number;
  /** Exclusive: the first millisecond of the next period. */
  endMs: number;
}

export function periodAt(ms: number): Period {
  const d = new Date(ms);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  return {
    id: `${String(y).padStart(4, '0')}-${String(m + 1).padStart(2, '0')}`,
    startMs: Date.UTC(y, m, 1),
    endMs: Date.UTC(y, m + 1, 1),
  };
}

/** Whole seconds from `now` until the period ends (at least 1): the Retry-After of an exhausted quota. */
export function secondsUntilPeriodEnd(now: number): number {
  return Math.max(1, Math.ceil((periodAt(now).endMs - now) / 1000));
}
