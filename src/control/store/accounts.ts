/** Accounts: tier, credentials of upgraded accounts, the Stripe customer. */
import type { Tier } from '../config.js';
import type { Db } from './database.js';

export interface Account {
  id: string;
  tier: Tier;
  email: string | null;
  passwordHash: string | null;
  signupFingerprintHash: string | null;
  stripeCustomerId: string | null;
  stripeSubscriptionId: string | null;
  createdAt: number;
  updatedAt: number;
  /** Set by `admin account disable`: no token of it works. */
  disabledAt: number | null;
  /** Set by `admin account delete`: personal data scrubbed, the row stays as a tombstone. */
  deletedAt: number | null;
}

interface AccountRow {
  id: string;
  tier: Tier;
  email: string | null;
  password_hash: string | null;
  signup_fingerprint_hash: string | null;
  stripe_customer_id: string | null;
  stripe_subscription_id: string | null;
  created_at: number;
  updated_at: number;
  disabled_at: number | null;
  deleted_at: number | null;
}

const fromRow = (r: AccountRow): Account => ({
  id: r.id,
  tier: r.tier,
  email: r.email,
  passwordHash: r.password_hash,
  signupFingerprintHash: r.signup_fingerprint_hash,
  stripeCustomerId: r.stripe_customer_id,
  stripeSubscriptionId: r.stripe_subscription_id,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  disabledAt: r.disabled_at,
  deletedAt: r.deleted_at,
});

export type AccountRepository = ReturnType<typeof accountRepository>;

export function accountRepository(db: Db) {
  const insert = db.prepare(
    `INSERT INTO accounts (id, tier, signup_fingerprint_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
  );
  const byId = db.prepare(`SELECT * FROM accounts WHERE id = ?`);
  const byEmail = db.prepare(`SELECT * FROM accounts WHERE email = ?`);
  const byStripeCustomer = db.prepare(`SELECT * FROM accounts WHERE stripe_customer_id = ?`);
  const bySubscription = db.prepare(`SELECT * FROM accounts WHERE stripe_subscription_id = ?`);
  const anonBySignup = db.prepare(
    `SELECT * FROM accounts WHERE signup_fingerprint_hash = ? AND email IS NULL ORDER BY created_at DESC LIMIT 1`,
  );
  const setCreds = db.prepare(`UPDATE accounts SET email = ?, password_hash = ?, updated_at = ? WHERE id = ?`);
  const setTier = db.prepare(`UPDATE accounts SET tier = ?, updated_at = ? WHERE id = ?`);
  const setStripe = db.prepare(
    `UPDATE accounts SET stripe_customer_id = COALESCE(?, stripe_customer_id),
       stripe_subscription_id = COALESCE(?, stripe_subscription_id), updated_at = ? WHERE id = ?`,
  );
  const all = db.prepare(`SELECT * FROM accounts WHERE deleted_at IS NULL ORDER BY created_at, id`);
  const disable = db.prepare(`UPDATE accounts SET disabled_at = ?, updated_at = ? WHERE id = ? AND disabled_at IS NULL`);
  const scrub = db.prepare(
    `UPDATE accounts SET email = NULL, password_hash = NULL, signup_fingerprint_hash = NULL, stripe_customer_id = NULL,
       stripe_subscription_id = NULL, disabled_at = COALESCE(disabled_at, ?), deleted_at = ?, updated_at = ? WHERE id = ?`,
  );
  const countTier = db.prepare(`SELECT tier, COUNT(*) AS n FROM accounts WHERE deleted_at IS NULL GROUP BY tier`);

  return {
    insert(a: { id: string; tier: Tier; signupFingerprintHash: string | null; now: number }): Account {
      insert.run(a.id, a.tier, a.signupFingerprintHash, a.now, a.now);
      return fromRow(byId.get(a.id) as AccountRow);
    },
    get(id: string): Account | null {
      const r = byId.get(id) as AccountRow | undefined;
      return r ? fromRow(r) : null;
    },
    getByEmail(email: string): Account | null {
      const r = byEmail.get(email) as AccountRow | undefined;
      return r ? fromRow(r) : null;
    },
    getByStripeCustomer(customerId: string): Account | null {
      const r = byStripeCustomer.get(customerId) as AccountRow | undefined;
      return r ? fromRow(r) : null;
    },
    getByStripeSubscription(subscriptionId: string): Account | null {
      const r = bySubscription.get(subscriptionId) as AccountRow | undefined;
      return r ? fromRow(r) : null;
    },
    /** The most recent never-upgraded account created by signup from this machine. */
    findAnonymousBySignupFingerprint(fingerprintHash: string): Account | null {
      const r = anonBySignup.get(fingerprintHash) as AccountRow | undefined;
      return r ? fromRow(r) : null;
    },
    setCredentials(id: string, email: string, passwordHash: string, now: number): void {
      setCreds.run(email, passwordHash, now, id);
    },
    setTier(id: string, tier: Tier, now: number): void {
      setTier.run(tier, now, id);
    },
    setStripeIds(id: string, customerId: string | null, subscriptionId: string | null, now: number): void {
      setStripe.run(customerId, subscriptionId, now, id);
    },
    /** false when it was disabled already. */
    disable(id: string, now: number): boolean {
      return disable.run(now, now, id).changes === 1;
    },
    /** Deletes the account's personal data (email, password, fingerprint, Stripe ids) and marks it deleted. */
    scrub(id: string, now: number): void {
      scrub.run(now, now, now, id);
    },
    /** Accounts that are not deleted. */
    list(): Account[] {
      return (all.all() as AccountRow[]).map(fromRow);
    },
    countByTier(): Record<Tier, number> {
      const out: Record<Tier, number> = { anonymous: 0, paid: 0 };
      for (const r of countTier.all() as { tier: Tier; n: number }[]) out[r.tier] = r.n;
      return out;
    },
  };
}
