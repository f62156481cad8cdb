/**
 * Usage and quotas. Bytes are counted per account per calendar month (UTC),
 * received plus sent; an account on a tier with a quota that has used it up
 * cannot open sessions (429 until the period ends) and its peers are taken
 * off the data plane until the period ends or the tier changes.
 */
import { ControlError } from '../errors.js';
import type { Account } from '../store/accounts.js';
import type { TierLimits } from '../config.js';
import type { ServiceContext } from './context.js';
import { periodAt, secondsUntilPeriodEnd, type Period } from './periods.js';

export interface UsageReport {
  account: Account;
  limits: TierLimits;
  period: Period;
  rxBytes: number;
  txBytes: number;
  totalBytes: number;
  quotaBytes: number | null;
  quotaExhausted: boolean;
  activeSessions: number;
}

export class UsageService {
  constructor(private readonly ctx: ServiceContext) {}

  report(account: Account): UsageReport {
    const { store, config, clock } = this.ctx;
    const period = periodAt(clock.wallMs());
    const u = store.usage.get(account.id, period.id);
    const limits = config.tiers[account.tier];
    const total = u.rxBytes + u.txBytes;
    return {
      account,
      limits,
      period,
      rxBytes: u.rxBytes,
      txBytes: u.txBytes,
      totalBytes: total,
      quotaBytes: limits.quotaBytes,
      quotaExhausted: limits.quotaBytes !== null && total >= limits.quotaBytes,
      activeSessions: store.sessions.countActiveByAccount(account.id),
    };
  }

  /** Has the account used up its tier's quota for the current period? */
  isQuotaExhausted(account: Account): boolean {
    const quota = this.ctx.config.tiers[account.tier].quotaBytes;
    if (quota === null) return false;
    const u = this.ctx.store.usage.get(account.id, periodAt(this.ctx.clock.wallMs()).id);
    return u.rxBytes + u.txBytes >= quota;
  }

  /** Throws the 429 of an exhausted quota, with Retry-After until the period ends. */
  assertQuotaLeft(account: Account): void {
    if (this.isQuotaExhausted(account)) {
      const now = this.ctx.clock.wallMs();
      throw new ControlError(
        'quota_exhausted',
        `data quota of this period is used up; it resets at ${new Date(periodAt(now).endMs).toISOString()}`,
        secondsUntilPeriodEnd(now),
      );
    }
  }
}
