/**
 * The audit log: one row per account, tier, billing, token, session or admin
 * event, with who did it (actor), from where (source) and when. Rows are only
 * ever inserted; triggers in migration 2 refuse UPDATE and DELETE, so not even
 * a bug here can rewrite history.
 */
import type { Db } from './database.js';

export interface AuditEntry {
  id: number;
  at: number;
  actor: string;
  source: string | null;
  action: string;
  accountId: string | null;
  subject: string | null;
  detail: Record<string, unknown> | null;
}

interface AuditRow {
  id: number;
  at: number;
  actor: string;
  source: string | null;
  action: string;
  account_id: string | null;
  subject: string | null;
  detail: string | null;
}

export type AuditRepository = ReturnType<typeof auditRepository>;

export function auditRepository(db: Db) {
  const insert = db.prepare(`INSERT INTO audit (at, actor, source, action, account_id, subject, detail) VALUES (?, ?, ?, ?, ?, ?, ?)`);
  const list = db.prepare(
    `SELECT * FROM audit WHERE at >= ? AND (? IS NULL OR account_id = ?) ORDER BY id DESC LIMIT ?`,
  );
  return {
    append(e: Omit<AuditEntry, 'id'>): void {
      insert.run(e.at, e.actor, e.source, e.action, e.accountId, e.subject, e.detail === null ? null : JSON.stringify(e.detail));
    },
    /** Newest first. */
    list(q: { since?: number; accountId?: string | null; limit?: number } = {}): AuditEntry[] {
      const account = q.accountId ?? null;
      return (list.all(q.since ?? 0, account, account, q.limit ?? 1000) as AuditRow[]).map((r) => ({
        id: r.id,
        at: r.at,
        actor: r.actor,
        source: r.source,
        action: r.action,
        accountId: r.account_id,
        subject: r.subject,
        detail: r.detail === null ? null : (JSON.parse(r.detail) as Record<string, unknown>),
      }));
    },
  };
}
