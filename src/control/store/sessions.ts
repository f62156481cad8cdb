/**
 * Sessions: one WireGuard peer of one node for one account. Only `active`
 * sessions hold an address; a partial unique index keeps two active sessions
 * of a node from sharing an address or a client key, whatever the callers do.
 */
import type { Db } from './database.js';

export type SessionState = 'active' | 'closed' | 'expired';
export type CloseReason = 'client' | 'admin' | 'expired' | 'tier';

export interface SessionRecord {
  id: string;
  accountId: string;
  nodeId: string;
  regionId: string;
  clientPublicKey: string;
  addressOffset: number;
  ipv4: string;
  ipv6: string | null;
  state: SessionState;
  closeReason: CloseReason | null;
  createdAt: number;
  expiresAt: number;
  closedAt: number | null;
  lastHandshakeAt: number | null;
  /** Bytes received by the client (sent by the exit). */
  rxBytes: number;
  /** Bytes sent by the client (received by the exit). */
  txBytes: number;
}

interface SessionRow {
  id: string;
  account_id: string;
  node_id: string;
  region_id: string;
  client_public_key: string;
  address_offset: number;
  ipv4: string;
  ipv6: string | null;
  state: SessionState;
  close_reason: CloseReason | null;
  created_at: number;
  expires_at: number;
  closed_at: number | null;
  last_handshake_at: number | null;
  rx_bytes: number;
  tx_bytes: number;
}

const fromRow = (r: SessionRow): SessionRecord => ({
  id: r.id,
  accountId: r.account_id,
  nodeId: r.node_id,
  regionId: r.region_id,
  clientPublicKey: r.client_public_key,
  addressOffset: r.address_offset,
  ipv4: r.ipv4,
  ipv6: r.ipv6,
  state: r.state,
  closeReason: r.close_reason,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  closedAt: r.closed_at,
  lastHandshakeAt: r.last_handshake_at,
  rxBytes: r.rx_bytes,
  txBytes: r.tx_bytes,
});

export type SessionRepository = ReturnType<typeof sessionRepository>;

export function sessionRepository(db: Db) {
  // The lowest offset >= @min not held by an active session of the node:
  // @min itself if free, else the smallest "held + 1" that is not held.
  const lowestFree = db.prepare(
    `SELECT CASE
       WHEN NOT EXISTS (SELECT 1 FROM sessions WHERE node_id = @node AND state = 'active' AND address_offset = @min) THEN @min
       ELSE (SELECT MIN(s.address_offset + 1) FROM sessions s
             WHERE s.node_id = @node AND s.state = 'active' AND s.address_offset >= @min
               AND NOT EXISTS (SELECT 1 FROM sessions t WHERE t.node_id = @node AND t.state = 'active'
                                 AND t.address_offset = s.address_offset + 1))
     END AS free`,
  );
  const insert = db.prepare(
    `INSERT INTO sessions (id, account_id, node_id, region_id, client_public_key, address_offset, ipv4, ipv6,
       state, created_at, expires_at)
     VALUES (@id, @accountId, @nodeId, @regionId, @clientPublicKey, @addressOffset, @ipv4, @ipv6, 'active', @now, @expiresAt)`,
  );
  const byId = db.prepare(`SELECT * FROM sessions WHERE id = ?`);
  const byAccount = db.prepare(`SELECT * FROM sessions WHERE account_id = ? ORDER BY created_at DESC, rowid DESC`);
  const activeByAccount = db.prepare(
    `SELECT * FROM sessions WHERE account_id = ? AND state = 'active' ORDER BY created_at DESC, rowid DESC`,
  );
  const countActiveByAccount = db.prepare(`SELECT COUNT(*) AS n FROM sessions WHERE account_id = ? AND state = 'active'`);
  const activeKey = db.prepare(`SELECT 1 FROM sessions WHERE client_public_key = ? AND state = 'active' LIMIT 1`);
  const close = db.prepare(
    `UPDATE sessions SET state = @state, close_reason = @reason, closed_at = @now WHERE id = @id AND state = 'active'`,
  );
  const activeByNode = db.prepare(`SELECT * FROM sessions WHERE node_id = ? AND state = 'active' ORDER BY address_offset`);
  const dueForExpiry = db.prepare(`SELECT id FROM sessions WHERE state = 'active' AND expires_at <= ?`);
  const addCounters = db.prepare(
    `UPDATE sessions SET rx_bytes = rx_bytes + @rx, tx_bytes = tx_bytes + @tx,
       last_handshake_at = CASE WHEN @hs IS NOT NULL AND (last_handshake_at IS NULL OR @hs > last_handshake_at)
                                THEN @hs ELSE last_handshake_at END,
       expires_at = MAX(expires_at, @expiresAt)
     WHERE id = @id`,
  );
  const all = db.prepare(`SELECT * FROM sessions ORDER BY created_at DESC, rowid DESC`);
  const allActive = db.prepare(`SELECT * FROM sessions WHERE state = 'active' ORDER BY created_at DESC, rowid DESC`);
  const countActive = db.prepare(`SELECT COUNT(*) AS n FROM sessions WHERE state = 'active'`);

  return {
    /** The lowest free address offset of the node in [min, max], or null when all are held. */
    lowestFreeOffset(nodeId: string, min: number, max: number): number | null {
      const r = lowestFree.get({ node: nodeId, min }) as { free: number | null };
      return r.free !== null && r.free <= max ? r.free : null;
    },
    insert(s: {
      id: string;
      accountId: string;
      nodeId: string;
      regionId: string;
      clientPublicKey: string;
      addressOffset: number;
      ipv4: string;
      ipv6: string | null;
      now: number;
      expiresAt: number;
    }): SessionRecord {
      insert.run(s);
      return fromRow(byId.get(s.id) as SessionRow);
    },
    get(id: string): SessionRecord | null {
      const r = byId.get(id) as SessionRow | undefined;
      return r ? fromRow(r) : null;
    },
    listByAccount(accountId: string, opts: { activeOnly: boolean }): SessionRecord[] {
      return ((opts.activeOnly ? activeByAccount : byAccount).all(accountId) as SessionRow[]).map(fromRow);
    },
    countActiveByAccount(accountId: string): number {
      return (countActiveByAccount.get(accountId) as { n: number }).n;
    },
    /** Is the key a peer of any active session, on any node? */
    isKeyActive(publicKey: string): boolean {
      return activeKey.get(publicKey) !== undefined;
    },
    /** Ends an active session; false when it was not active. */
    end(id: string, state: 'closed' | 'expired', reason: CloseReason, now: number): boolean {
      return close.run({ id, state, reason, now }).changes === 1;
    },
    listActiveByNode(nodeId: string): SessionRecord[] {
      return (activeByNode.all(nodeId) as SessionRow[]).map(fromRow);
    },
    idsDueForExpiry(now: number): string[] {
      return (dueForExpiry.all(now) as { id: string }[]).map((r) => r.id);
    },
    /** Adds byte deltas, raises the last handshake time, and pushes expiry out to at least `expiresAt`. */
    addCounters(c: { id: string; rx: number; tx: number; lastHandshakeAt: number | null; expiresAt: number }): void {
      addCounters.run({ id: c.id, rx: c.rx, tx: c.tx, hs: c.lastHandshakeAt, expiresAt: c.expiresAt });
    },
    list(opts: { activeOnly: boolean }): SessionRecord[] {
      return ((opts.activeOnly ? allActive : all).all() as SessionRow[]).map(fromRow);
    },
    countActive(): number {
      return (countActive.get() as { n: number }).n;
    },
  };
}
