/**
 * The control plane's settings: tier limits, rate limits, session lifetime,
 * node liveness and billing. Every field has a default (docs/contract.md §5); the exit
 * server builds one from its flags and environment with
 * `controlConfig(overrides)` and `billingConfigFromEnv(process.env)`.
 */
export type Tier = 'anonymous' | 'paid';
export const TIERS: readonly Tier[] = ['anonymous', 'paid'];

export interface TierLimits {
  /** Active sessions an account may hold at once. */
  maxSessions: number;
  /** Bytes (received + sent) per calendar month (UTC); null: no cap. */
  quotaBytes: number | null;
  /** May this tier use regions marked paid-only? */
  paidRegions: boolean;
  /** Bearer-endpoint requests per token per minute. */
  requestsPerMinute: number;
}

export interface PublicRateLimit {
  /** Requests a source IP may make at once. */
  burst: number;
  /** Sustained requests per second once the burst is spent. */
  perSecond: number;
}

export interface AuthFailureLimit {
  /** Failed authentications (bad token, wrong fingerprint, wrong password) a source may make per window. */
  failures: number;
  windowSeconds: number;
}

export interface SignupLimit {
  /** 'closed': POST /v1/signup creates no new accounts (403); --anonymous-signup / TB_ANONYMOUS_SIGNUP. */
  mode: 'open' | 'closed';
  /** Signup requests a source may make per window. */
  perSource: number;
  windowSeconds: number;
}

export interface BillingConfig {
  /** STRIPE_SECRET_KEY: creates Checkout Sessions. */
  secretKey: string | null;
  /** STRIPE_WEBHOOK_SECRET: verifies `Stripe-Signature`. */
  webhookSecret: string | null;
  /** STRIPE_PRICE_ID: the recurring price of the paid tier; when unset an inline monthly price is used. */
  priceId: string | null;
  /** The inline price when no price id is set: amount in the currency's minor unit, per month. */
  inlinePrice: { currency: string; unitAmount: number; productName: string };
  /** Where Checkout sends the customer afterwards (TB_CHECKOUT_SUCCESS_URL / TB_CHECKOUT_CANCEL_URL);
   *  null: this API's own /v1/billing/success and /v1/billing/cancel pages. */
  successUrl: string | null;
  cancelUrl: string | null;
  /** Where the Stripe client connects (tests point it at a local fake); null: Stripe's own API. */
  apiHost: { host: string; port: number; protocol: 'http' | 'https' } | null;
}

export interface ControlConfig {
  tiers: Record<Tier, TierLimits>;
  publicRateLimit: PublicRateLimit;
  authFailureLimit: AuthFailureLimit;
  signupLimit: SignupLimit;
  /** A session with no handshake for this long expires (its peer is removed). */
  sessionIdleTtlMs: number;
  /** A node whose last heartbeat is older than this is not active; a region with no active node is not listed. */
  nodeStaleAfterMs: number;
  /** Largest request body accepted (bytes); more is a 413. */
  maxBodyBytes: number;
  /** DNS servers written into client configs (TB_DNS). */
  dns: string[];
  /** PersistentKeepalive written into client configs. */
  persistentKeepaliveSeconds: number;
  /** Honour X-Forwarded-For (only behind a trusted proxy: --trust-proxy / TB_TRUST_PROXY=1). */
  trustProxy: boolean;
  /** Peer changes kept per joined node; a node resuming from an older revision is sent a snapshot instead. */
  peerLogLimit: number;
  /** Milliseconds between `: keepalive` comments on an open peer stream, so either end notices a dead link. */
  peerStreamKeepaliveMs: number;
  billing: BillingConfig;
}

export const GiB = 1024 ** 3;

export function defaultBillingConfig(): BillingConfig {
  return {
    secretKey: null,
    webhookSecret: null,
    priceId: null,
    inlinePrice: { currency: 'usd', unitAmount: 500, productName: 'tunnelbyte paid tier' },
    successUrl: null,
    cancelUrl: null,
    apiHost: null,
  };
}

export function defaultControlConfig(): ControlConfig {
  return {
    tiers: {
      anonymous: { maxSessions: 1, quotaBytes: 10 * GiB, paidRegions: false, requestsPerMinute: 60 },
      paid: { maxSessions: 5, quotaBytes: null, paidRegions: true, requestsPerMinute: 600 },
    },
    publicRateLimit: { burst: 10, perSecond: 1 },
    authFailureLimit: { failures: 10, windowSeconds: 60 },
    signupLimit: { mode: 'open', perSource: 5, windowSeconds: 3600 },
    sessionIdleTtlMs: 24 * 3600_000,
    nodeStaleAfterMs: 60_000,
    maxBodyBytes: 64 * 1024,
    dns: ['1.1.1.1', '2606:4700:4700::1111'],
    persistentKeepaliveSeconds: 25,
    trustProxy: false,
    peerLogLimit: 10_000,
    peerStreamKeepaliveMs: 15_000,
    billing: defaultBillingConfig(),
  };
}

/** Deep-enough merge of overrides onto the defaults (tiers and billing merged per field). */
export function controlConfig(over: DeepPartial<ControlConfig> = {}): ControlConfig {
  const d = defaultControlConfig();
  return {
    ...d,
    ...(over as Partial<ControlConfig>),
    tiers: {
      anonymous: { ...d.tiers.anonymous, ...over.tiers?.anonymous },
      paid: { ...d.tiers.paid, ...over.tiers?.paid },
    },
    publicRateLimit: { ...d.publicRateLimit, ...over.publicRateLimit },
    authFailureLimit: { ...d.authFailureLimit, ...over.authFailureLimit },
    signupLimit: { ...d.signupLimit, ...over.signupLimit },
    billing: { ...d.billing, ...(over.billing as Partial<BillingConfig>) },
    dns: (over.dns as string[] | undefined) ?? d.dns,
  };
}

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };

/** Billing settings from STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, STRIPE_PRICE_ID, TB_CHECKOUT_SUCCESS_URL, TB_CHECKOUT_CANCEL_URL. */
export function billingConfigFromEnv(env: NodeJS.ProcessEnv): BillingConfig {
  const d = defaultBillingConfig();
  return {
    ...d,
    secretKey: env.STRIPE_SECRET_KEY || null,
    webhookSecret: env.STRIPE_WEBHOOK_SECRET || null,
    priceId: env.STRIPE_PRICE_ID || null,
    successUrl: env.TB_CHECKOUT_SUCCESS_URL || null,
    cancelUrl: env.TB_CHECKOUT_CANCEL_URL || null,
  };
}
