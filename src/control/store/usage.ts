/** Bytes per account per billing period ('YYYY-MM', UTC). */
import type { Db } from './database.js';

export interface UsageRecord {
  accountId: string;
  period: string;
  /** Bytes received by the account's clients. */
  rxBytes: number;
  /** Bytes sent by the account's clients. */
  txBytes: number;
}

export type UsageRepository = ReturnType<typeof usageRepository>;

export function usageRepository(db: Db) {
  const add = db.prepare(
    `INSERT INTO usage (account_id, period, rx_bytes, tx_bytes) VALUES (@accountId, @period, @rx, @tx)
     ON CONFLICT (account_id, period) DO UPDATE SET rx_bytes = rx_bytes + excluded.rx_bytes, tx_bytes = tx_bytes + excluded.tx_bytes`,
  );
  const get = db.prepare(`SELECT rx_bytes, tx_bytes FROM usage WHERE account_id = ? AND period = ?`);
  return {
    add(accountId: string, period: string, rx: number, tx: number): void {
      add.run({ accountId, period, rx, tx });
    },
    get(accountId: string, period: string): UsageRecord {
      const r = get.get(accountId, period) as { rx_bytes: number; tx_bytes: number } | undefined;
      return { accountId, period, rxBytes: r?.rx_bytes ?? 0, txBytes: r?.tx_bytes ?? 0 };
    },
  };
}
