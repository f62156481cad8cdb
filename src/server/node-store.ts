/**
 * What a joined exit node (`serve --join`) keeps on its own disk, beside its
 * key and credential: a small SQLite file (`node.db`, WAL, numbered
 * migrations through the control plane's migration helper) holding
 *
 *   - the peer set last applied from the control plane's channel, its
 *     revision and the id of the change that made it: a node restarted while
 *     the control plane is down installs these and keeps forwarding for them
 *     (fail-static, issue 16), and a reconnect resumes the stream from that
 *     revision, naming that change (a control plane on another database
 *     answers with a snapshot);
 *   - per session, the cumulative bytes counted through this node and what
 *     of them the control plane has acknowledged;
 *   - the usage report in flight: its sequence number and body, frozen until
 *     acknowledged, so a retry — after a timeout, a node restart or a
 *     control-plane restart — repeats exactly the report the control plane
 *     may already have applied (POST /v1/nodes/{id}/usage counts a sequence
 *     once).
 *
 * This file is the only code that writes the node's SQL.
 */
import type { Migration } from '../control/store/migrations.js';
import { openDatabase, type Db } from '../control/store/database.js';

export const NODE_DATABASE_FILE = 'node.db';

export const NODE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'joined node: channel peers, session counters, usage outbox',
    sql: `
CREATE TABLE channel_state (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  revision INTEGER NOT NULL                 -- the channel's revision the peers below are at
);
CREATE TABLE peers (
  public_key  TEXT PRIMARY KEY,             -- the client's WireGuard key (base64)
  session_id  TEXT NOT NULL,
  allowed_ips TEXT NOT NULL                 -- JSON array of host routes
);
CREATE TABLE session_counters (
  session_id            TEXT PRIMARY KEY,
  rx_bytes              INTEGER NOT NULL,   -- bytes the client received through this node, cumulative
  tx_bytes              INTEGER NOT NULL,   -- bytes the client sent, cumulative
  last_handshake_at     INTEGER,            -- epoch ms of the latest handshake; NULL: none yet
  acked_rx_bytes        INTEGER NOT NULL DEFAULT 0,
  acked_tx_bytes        INTEGER NOT NULL DEFAULT 0,
  acked_handshake_at    INTEGER,
  removed_at            INTEGER             -- when its peer left this node; NULL: installed
);
CREATE TABLE usage_outbox (
  id   INTEGER PRIMARY KEY CHECK (id = 1),  -- at most one report in flight
  seq  INTEGER NOT NULL,
  body TEXT NOT NULL                        -- JSON: [{ id, rx_bytes, tx_bytes, last_handshake_at }]
);
CREATE TABLE report_state (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  last_seq INTEGER NOT NULL                 -- the highest sequence number used
);
`,
  },
  {
    version: 2,
    name: 'joined node: the id of the change the peers are at',
    sql: `
-- The control plane's random id of the change that made channel_state.revision (its migration 6),
-- sent with the revision on resume; NULL: revision 0, or from a control plane without change ids.
ALTER TABLE channel_state ADD COLUMN change_id TEXT;
`,
  },
];

export interface StoredPeer {
  publicKey: string;
  sessionId: string;
  allowedIps: string[];
}

/** One session's cumulative counters as a usage report carries them (the control plane's SessionUsage). */
export interface ReportedSession {
  id: string;
  rx_bytes: number;
  tx_bytes: number;
  last_handshake_at: string | null;
}

export interface PendingReport {
  seq: number;
  sessions: ReportedSession[];
}

/** A session's bytes to add from one counter flush (the client's view: rx = to the client). */
export interface SessionBytes {
  sessionId: string;
  rx: number;
  tx: number;
  lastHandshakeAt: number | null;
}

/** Sessions whose peer left more than this long ago and whose bytes are all acknowledged are forgotten:
 *  longer than a calendar month plus the idle TTL, so a session suspended for quota that comes back in
 *  the next period still continues its cumulative counters (a restart from 0 would count nothing there). */
export const FORGET_REMOVED_AFTER_MS = 40 * 24 * 3600_000;

export type NodeStore = ReturnType<typeof openNodeStore>;

export function openNodeStore(path: string) {
  const db: Db = openDatabase(path, { migrations: NODE_MIGRATIONS });
  const q = {
    revision: db.prepare(`SELECT revision, change_id FROM channel_state WHERE id = 1`),
    setRevision: db.prepare(
      `INSERT INTO channel_state (id, revision, change_id) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET revision = excluded.revision, change_id = excluded.change_id`,
    ),
    peers: db.prepare(`SELECT public_key, session_id, allowed_ips FROM peers ORDER BY public_key`),
    putPeer: db.prepare(
      `INSERT INTO peers (public_key, session_id, allowed_ips) VALUES (?, ?, ?)
       ON CONFLICT (public_key) DO UPDATE SET session_id = excluded.session_id, allowed_ips = excluded.allowed_ips`,
    ),
    deletePeer: db.prepare(`DELETE FROM peers WHERE public_key = ?`),
    clearPeers: db.prepare(`DELETE FROM peers`),
    addCounters: db.prepare(
      `INSERT INTO session_counters (session_id, rx_bytes, tx_bytes, last_handshake_at) VALUES (@id, @rx, @tx, @hs)
       ON CONFLICT (session_id) DO UPDATE SET rx_bytes = rx_bytes + excluded.rx_bytes, tx_bytes = tx_bytes + excluded.tx_bytes,
         last_handshake_at = COALESCE(excluded.last_handshake_at, last_handshake_at)`,
    ),
    installed: db.prepare(
      `INSERT INTO session_counters (session_id, rx_bytes, tx_bytes) VALUES (?, 0, 0)
       ON CONFLICT (session_id) DO UPDATE SET removed_at = NULL`,
    ),
    removed: db.prepare(`UPDATE session_counters SET removed_at = ? WHERE session_id = ? AND removed_at IS NULL`),
    unacked: db.prepare(
      `SELECT session_id, rx_bytes, tx_bytes, last_handshake_at FROM session_counters
       WHERE rx_bytes <> acked_rx_bytes OR tx_bytes <> acked_tx_bytes OR last_handshake_at IS NOT acked_handshake_at
       ORDER BY session_id LIMIT ?`,
    ),
    ack: db.prepare(
      `UPDATE session_counters SET acked_rx_bytes = MAX(acked_rx_bytes, @rx), acked_tx_bytes = MAX(acked_tx_bytes, @tx), acked_handshake_at = @hs
       WHERE session_id = @id`,
    ),
    forget: db.prepare(
      `DELETE FROM session_counters WHERE removed_at IS NOT NULL AND removed_at < ?
         AND rx_bytes = acked_rx_bytes AND tx_bytes = acked_tx_bytes AND last_handshake_at IS acked_handshake_at`,
    ),
    counters: db.prepare(`SELECT rx_bytes, tx_bytes, acked_rx_bytes, acked_tx_bytes FROM session_counters WHERE session_id = ?`),
    backlog: db.prepare(
      `SELECT COUNT(*) AS sessions, COALESCE(SUM(MAX(rx_bytes - acked_rx_bytes, 0) + MAX(tx_bytes - acked_tx_bytes, 0)), 0) AS bytes FROM session_counters
       WHERE rx_bytes <> acked_rx_bytes OR tx_bytes <> acked_tx_bytes OR last_handshake_at IS NOT acked_handshake_at`,
    ),
    pending: db.prepare(`SELECT seq, body FROM usage_outbox WHERE id = 1`),
    putPending: db.prepare(`INSERT INTO usage_outbox (id, seq, body) VALUES (1, ?, ?)`),
    dropPending: db.prepare(`DELETE FROM usage_outbox WHERE id = 1`),
    lastSeq: db.prepare(`SELECT last_seq FROM report_state WHERE id = 1`),
    setLastSeq: db.prepare(`INSERT INTO report_state (id, last_seq) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET last_seq = excluded.last_seq`),
  };
  const lastSeq = (): number => (q.lastSeq.get() as { last_seq: number } | undefined)?.last_seq ?? 0;
  const tx = <T>(fn: () => T): T => db.transaction(fn).immediate();

  return {
    db,
    /** The channel revision the stored peers are at; null: never synced. */
    revision(): number | null {
      return (q.revision.get() as { revision: number } | undefined)?.revision ?? null;
    },
    /** The revision and the id of the change that made it (the stream's resume point); null: never synced. */
    held(): { revision: number; changeId: string | null } | null {
      const r = q.revision.get() as { revision: number; change_id: string | null } | undefined;
      return r ? { revision: r.revision, changeId: r.change_id } : null;
    },
    peers(): StoredPeer[] {
      return (q.peers.all() as { public_key: string; session_id: string; allowed_ips: string }[]).map((r) => ({
        publicKey: r.public_key,
        sessionId: r.session_id,
        allowedIps: JSON.parse(r.allowed_ips) as string[],
      }));
    },
    /** Replaces the peer set with a snapshot at `revision`, made by change `changeId` (one transaction). */
    saveSnapshot(revision: number, changeId: string | null, peers: readonly StoredPeer[], now: number): void {
      tx(() => {
        const before = new Set((q.peers.all() as { session_id: string }[]).map((r) => r.session_id));
        q.clearPeers.run();
        for (const p of peers) {
          q.putPeer.run(p.publicKey, p.sessionId, JSON.stringify(p.allowedIps));
          q.installed.run(p.sessionId);
          before.delete(p.sessionId);
        }
        for (const gone of before) q.removed.run(now, gone);
        q.setRevision.run(revision, changeId);
      });
    },
    /** One change of the stream at `revision` (its id `changeId`): a peer added (or replaced) or removed. */
    savePeer(revision: number, changeId: string | null, change: { op: 'add'; peer: StoredPeer } | { op: 'remove'; publicKey: string; sessionId: string | null }, now: number): void {
      tx(() => {
        if (change.op === 'add') {
          q.putPeer.run(change.peer.publicKey, change.peer.sessionId, JSON.stringify(change.peer.allowedIps));
          q.installed.run(change.peer.sessionId);
        } else {
          q.deletePeer.run(change.publicKey);
          if (change.sessionId !== null) q.removed.run(now, change.sessionId);
        }
        q.setRevision.run(revision, changeId);
      });
    },
    /** Adds one flush's byte deltas to the sessions' cumulative counters (one transaction). */
    addCounters(deltas: readonly SessionBytes[]): void {
      if (deltas.length === 0) return;
      tx(() => {
        for (const d of deltas) q.addCounters.run({ id: d.sessionId, rx: d.rx, tx: d.tx, hs: d.lastHandshakeAt });
      });
    },
    /** A session's cumulative and acknowledged bytes (tests and diagnostics). */
    counters(sessionId: string): { rxBytes: number; txBytes: number; ackedRxBytes: number; ackedTxBytes: number } | null {
      const r = q.counters.get(sessionId) as { rx_bytes: number; tx_bytes: number; acked_rx_bytes: number; acked_tx_bytes: number } | undefined;
      return r ? { rxBytes: r.rx_bytes, txBytes: r.tx_bytes, ackedRxBytes: r.acked_rx_bytes, ackedTxBytes: r.acked_tx_bytes } : null;
    },
    /**
     * What the control plane has not acknowledged yet (/metrics): whether a
     * report is in flight, and the sessions and bytes counted here beyond
     * their acknowledged counters.
     */
    backlog(): { inFlight: boolean; sessions: number; bytes: number } {
      const r = q.backlog.get() as { sessions: number; bytes: number };
      return { inFlight: q.pending.get() !== undefined, sessions: r.sessions, bytes: r.bytes };
    },
    /**
     * The report to send: the one in flight if there is one (a retry repeats
     * it whole), else a new one — the next sequence number and the sessions
     * whose counters moved since their last acknowledgement (at most `limit`)
     * — written to disk before it is sent. Null when there is nothing to report.
     */
    nextReport(limit: number): PendingReport | null {
      return tx(() => {
        const p = q.pending.get() as { seq: number; body: string } | undefined;
        if (p) return { seq: p.seq, sessions: JSON.parse(p.body) as ReportedSession[] };
        const rows = q.unacked.all(limit) as { session_id: string; rx_bytes: number; tx_bytes: number; last_handshake_at: number | null }[];
        if (rows.length === 0) return null;
        const sessions = rows.map((r) => ({
          id: r.session_id,
          rx_bytes: r.rx_bytes,
          tx_bytes: r.tx_bytes,
          last_handshake_at: r.last_handshake_at === null ? null : new Date(r.last_handshake_at).toISOString(),
        }));
        const seq = lastSeq() + 1;
        q.setLastSeq.run(seq);
        q.putPending.run(seq, JSON.stringify(sessions));
        return { seq, sessions };
      });
    },
    /** The control plane has applied the report in flight: its counters are acknowledged. */
    acknowledge(report: PendingReport, now: number): void {
      tx(() => {
        for (const s of report.sessions) {
          q.ack.run({ id: s.id, rx: s.rx_bytes, tx: s.tx_bytes, hs: s.last_handshake_at === null ? null : Date.parse(s.last_handshake_at) });
        }
        q.dropPending.run();
        q.forget.run(now - FORGET_REMOVED_AFTER_MS);
      });
    },
    /**
     * The control plane has applied sequence numbers up to `ackedSeq`, above
     * the report in flight, which it therefore did not apply: this disk is
     * behind the control plane's (restored from an older copy). The report is
     * dropped unacknowledged and numbering continues above `ackedSeq`, so the
     * next report carries the same counters under a sequence it will apply.
     */
    renumberAbove(ackedSeq: number): void {
      tx(() => {
        q.dropPending.run();
        q.setLastSeq.run(Math.max(lastSeq(), ackedSeq));
      });
    },
    close(): void {
      db.close();
    },
  };
}
