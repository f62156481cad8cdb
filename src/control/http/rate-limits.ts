/**
 * Request limits, in memory (rate-limiter-flexible):
 *  - public endpoints, per source IP: a burst of `burst` requests, then
 *    `perSecond` per second. Built as a BurstyRateLimiter: a per-second
 *    limiter, backed by a bucket of (burst - perSecond) extra requests that
 *    refills every burst/perSecond seconds;
 *  - bearer endpoints, per token: the tier's requests per minute.
 * A refusal is a ControlError 'rate_limited' carrying Retry-After seconds.
 */
import { BurstyRateLimiter, RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { ControlConfig, Tier } from '../config.js';
import { ControlError } from '../errors.js';

export interface Limiter {
  consume(key: string): Promise<void>;
}

function refusal(e: unknown, what: string): never {
  if (e instanceof RateLimiterRes) {
    const s = Math.max(1, Math.ceil(e.msBeforeNext / 1000));
    throw new ControlError('rate_limited', `${what}; retry in ${s} s`, s);
  }
  throw e;
}

export function publicLimiter(cfg: ControlConfig['publicRateLimit']): Limiter {
  const perSecond = Math.max(1, Math.floor(cfg.perSecond));
  const extra = Math.max(0, Math.floor(cfg.burst) - perSecond);
  const steady = new RateLimiterMemory({ keyPrefix: 'pub', points: perSecond, duration: 1 });
  const limiter = extra > 0
    ? new BurstyRateLimiter(steady, new RateLimiterMemory({ keyPrefix: 'pub-burst', points: extra, duration: Math.ceil(cfg.burst / perSecond) }))
    : steady;
  return {
    consume: (key) =>
      limiter.consume(key).then(
        () => undefined,
        (e: unknown) => refusal(e, 'too many requests from this address'),
      ),
  };
}

export function tokenLimiter(tiers: ControlConfig['tiers']): { consume(tier: Tier, tokenId: string): Promise<void> } {
  const byTier = {
    anonymous: new RateLimiterMemory({ keyPrefix: 'tok-anonymous', points: tiers.anonymous.requestsPerMinute, duration: 60 }),
    paid: new RateLimiterMemory({ keyPrefix: 'tok-paid', points: tiers.paid.requestsPerMinute, duration: 60 }),
  };
  return {
    consume: (tier, tokenId) =>
      byTier[tier].consume(tokenId).then(
        () => undefined,
        (e: unknown) => refusal(e, `request cap of the ${tier} tier reached (${tiers[tier].requestsPerMinute}/min)`),
      ),
  };
}
