/**
 * Request limits, in memory (rate-limiter-flexible). "Source" is the client
 * address, an IPv6 one as its /64 (client-ip.ts `sourceKey`):
 *  - public endpoints, per source: a burst of `burst` requests, then
 *    `perSecond` per second. Built as a BurstyRateLimiter: a per-second
 *    limiter, backed by a bucket of (burst - perSecond) extra requests that
 *    refills every burst/perSecond seconds;
 *  - failed authentication, per source: after `failures` failed bearer
 *    tokens, fingerprints or logins within `windowSeconds`, every request of
 *    that source that needs credentials is refused until the window ends —
 *    checked BEFORE the token is hashed or the database read, so a flood of
 *    wrong tokens costs one map lookup each (issue 15: 4,467 wrong tokens/s
 *    from one address kept the server at 100 % CPU);
 *  - anonymous signups, per source: `perSource` per `windowSeconds`;
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

/** Failed-authentication limiter: `check` before authenticating, `failed` after each failure. */
export interface FailureLimiter {
  /** Throws a 429 when the source has used up its failures of the current window. */
  check(source: string): Promise<void>;
  /** Counts one failed authentication of the source. */
  failed(source: string): Promise<void>;
}

export function authFailureLimiter(cfg: ControlConfig['authFailureLimit']): FailureLimiter {
  const failures = Math.max(1, Math.floor(cfg.failures));
  const limiter = new RateLimiterMemory({ keyPrefix: 'auth-fail', points: failures, duration: Math.max(1, Math.floor(cfg.windowSeconds)) });
  return {
    async check(source) {
      const r = await limiter.get(source);
      if (r && r.remainingPoints <= 0) {
        refusal(r, `too many failed authentications from this address (${failures} per ${cfg.windowSeconds} s)`);
      }
    },
    failed: (source) =>
      limiter.consume(source).then(
        () => undefined,
        () => undefined, // already over: the next check refuses
      ),
  };
}

/** Anonymous signups per source and window. */
export function signupLimiter(cfg: ControlConfig['signupLimit']): Limiter {
  const limiter = new RateLimiterMemory({ keyPrefix: 'signup', points: Math.max(1, Math.floor(cfg.perSource)), duration: Math.max(1, Math.floor(cfg.windowSeconds)) });
  return {
    consume: (key) =>
      limiter.consume(key).then(
        () => undefined,
        (e: unknown) => refusal(e, `too many signups from this address (${cfg.perSource} per ${cfg.windowSeconds} s)`),
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
