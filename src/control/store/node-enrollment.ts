/**
 * One-time enrollment tokens for exit nodes joining over the network
 * (migration 3), stored only as the hex SHA-256 of the token text.
 */
import type { Db } from './database.js';

export interface EnrollmentTokenRecord {
  id: string;
  regionId: string;
  tokenHash: string;
  createdAt: number;
  expiresAt: number;
  usedAt: number | null;
  nodeId: string | null;
}

interface EnrollmentTokenRow {
  id: string;
  region_id: string;
  token_hash: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  node_id: string | null;
}

export type EnrollmentTokenRepository = ReturnType<typeof enrollmentTokenRepository>;

export function enrollmentTokenRepository(db: Db) {
  const insert = db.prepare(
    `INSERT INTO node_enrollment_tokens (id, region_id, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
  );
  const byHash = db.prepare(`SELECT * FROM node_enrollment_tokens WHERE token_hash = ?`);
  // The WHERE makes a second use fail even if two enrollments race past the read.
  const use = db.prepare(`UPDATE node_enrollment_tokens SET used_at = ?, node_id = ? WHERE id = ? AND used_at IS NULL`);
  return {
    insert(t: { id: string; regionId: string; tokenHash: string; now: number; expiresAt: number }): void {
      insert.run(t.id, t.regionId, t.tokenHash, t.now, t.expiresAt);
    },
    findByHash(tokenHash: string): EnrollmentTokenRecord | null {
      const r = byHash.get(tokenHash) as EnrollmentTokenRow | undefined;
      if (!r) return null;
      return {
        id: r.id,
        regionId: r.region_id,
        tokenHash: r.token_hash,
        createdAt: r.created_at,
        expiresAt: r.expires_at,
        usedAt: r.used_at,
        nodeId: r.node_id,
      };
    },
    /** Marks the token used by `nodeId`; false when it was already used. */
    markUsed(id: string, nodeId: string, now: number): boolean {
      return use.run(now, nodeId, id).changes === 1;
    },
  };
}
