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

export type TokenRepository = ReturnType<typeof tokenRepository>;

/** last_used_at is written at most once per this interval per token, so reads do not each cost a write. */
const TOUCH_INTERVAL_MS = 60_000;

export function tokenRepository(db: Db) {
  const insert = db.prepare(
    `INSERT INTO tokens (id, account_id, token_hash, kind, fingerprint_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
  );
  const byHash = db.prepare(`SELECT * FROM tokens WHERE token_hash = ? AND revoked_at IS NULL`);
  const touch = db.prepare(
    `UPDATE tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`,
  );
  return {
    insert(t: { id: string; accountId: string; tokenHash: string; kind: TokenKind; fingerprintHash: string | null; now: number }): void {
      insert.run(t.id, t.accountId, t.tokenHash, t.kind, t.fingerprintHash, t.now);
    },
    findByHash(tokenHash: string): TokenRecord | null {
      const r = byHash.get(tokenHash) as TokenRow | undefined;
      if (!r) return null;
      return {
        id: r.id,
        accountId: r.account_id,
        tokenHash: r.token_hash,
        kind: r.kind,
        fingerprintHash: r.fingerprint_hash,
        createdAt: r.created_at,
        lastUsedAt: r.last_used_at,
      };
    },
    touch(id: string, now: number): void {
      touch.run(now, id, now - TOUCH_INTERVAL_MS);
    },
  };
}
