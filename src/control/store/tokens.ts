/** Bearer tokens, stored only as the hex SHA-256 of the token text. */
import type { Db } from './database.js';

export type TokenKind = 'signup' | 'login' | 'upgrade';

export interface TokenRecord {
  id: string;
  accountId: string;
  tokenHash: string;
  kind: TokenKind;
  fingerprintHash: string | null;
  createdAt: number;
  lastUsedAt: number | null;
}

interface TokenRow {
  id: string;
  account_id: string;
  token_hash: string;
  kind: TokenKind;
  fingerprint_hash: string | null;
  created_at: number;
  last_used_at: number | null;
}

const fromRow = (r: TokenRow): TokenRecord => ({
  id: r.id,
  accountId: r.account_id,
  tokenHash: r.token_hash,
  kind: r.kind,
  fingerprintHash: r.fingerprint_hash,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at,
});

export type TokenRepository = ReturnType<typeof tokenRepository>;

/** last_used_at is written at most once per this interval per token, so reads do not each cost a write. */
const TOUCH_INTERVAL_MS = 60_000;

export function tokenRepository(db: Db) {
  const insert = db.prepare(
    `INSERT INTO tokens (id, account_id, token_hash, kind, fingerprint_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
  );
  const byHash = db.prepare(`SELECT * FROM tokens WHERE token_hash = ? AND revoked_at IS NULL`);
  const byId = db.prepare(`SELECT * FROM tokens WHERE id = ?`);
  const revoke = db.prepare(`UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`);
  const revokeAccount = db.prepare(`UPDATE tokens SET revoked_at = ? WHERE account_id = ? AND revoked_at IS NULL RETURNING id`);
  const revokeMachine = db.prepare(
    `UPDATE tokens SET revoked_at = ? WHERE account_id = ? AND kind = 'signup' AND fingerprint_hash = ? AND revoked_at IS NULL RETURNING id`,
  );
  const touch = db.prepare(
    `UPDATE tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`,
  );
  return {
    insert(t: { id: string; accountId: string; tokenHash: string; kind: TokenKind; fingerprintHash: string | null; now: number }): void {
      insert.run(t.id, t.accountId, t.tokenHash, t.kind, t.fingerprintHash, t.now);
    },
    /** A token that is not revoked, by the SHA-256 of its text. */
    findByHash(tokenHash: string): TokenRecord | null {
      const r = byHash.get(tokenHash) as TokenRow | undefined;
      return r ? fromRow(r) : null;
    },
    /** Any token by id, revoked ones too. */
    get(id: string): (TokenRecord & { revokedAt: number | null }) | null {
      const r = byId.get(id) as (TokenRow & { revoked_at: number | null }) | undefined;
      return r ? { ...fromRow(r), revokedAt: r.revoked_at } : null;
    },
    /** Revokes one token; false when it was revoked already. */
    revoke(id: string, now: number): boolean {
      return revoke.run(now, id).changes === 1;
    },
    /** Revokes every live token of the account; returns their ids. */
    revokeAllOfAccount(accountId: string, now: number): string[] {
      return (revokeAccount.all(now, accountId) as { id: string }[]).map((r) => r.id);
    },
    /** Revokes the live signup tokens the account issued to one machine; returns their ids. */
    revokeSignupTokensOfMachine(accountId: string, fingerprintHash: string, now: number): string[] {
      return (revokeMachine.all(now, accountId, fingerprintHash) as { id: string }[]).map((r) => r.id);
    },
    touch(id: string, now: number): void {
      touch.run(now, id, now - TOUCH_INTERVAL_MS);
    },
  };
}
