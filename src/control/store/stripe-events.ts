/** Stripe event ids already applied: each webhook event takes effect once. */
import type { Db } from './database.js';

export type StripeEventRepository = ReturnType<typeof stripeEventRepository>;

export function stripeEventRepository(db: Db) {
  const insert = db.prepare(`INSERT INTO stripe_events (id, type, received_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`);
  return {
    /** Records the event; false when it had been recorded before (a replay). */
    recordIfNew(id: string, type: string, now: number): boolean {
      return insert.run(id, type, now).changes === 1;
    },
  };
}
