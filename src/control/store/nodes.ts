/**
 * Exit nodes and the history of their exit addresses. A node is identified
 * by its WireGuard public key: registering the same key again updates the
 * node (region, endpoint, pools) instead of creating another.
 *
 * A node's state decides placement: only `active` nodes take new sessions
 * (migration 3). A node that joined over the network (serve --join) has a
 * credential, stored as its SHA-256 only.
 */
import type { Db } from './database.js';

/** active: takes new sessions; draining: keeps its sessions, takes none; revoked: credential refused; removed: sessions closed. */
export type NodeState = 'active' | 'draining' | 'revoked' | 'removed';

export interface NodeRecord {
  id: string;
  regionId: string;
  publicKey: string;
  endpoint: string;
  pool4: string;
  pool6: string | null;
  createdAt: number;
  lastHeartbeatAt: number;
  state: NodeState;
  /** hex SHA-256 of the node credential; null for a node inside the control plane's process. */
  credentialHash: string | null;
}

export interface NodeLoad extends NodeRecord {
  activeSessions: number;
}

export interface ExitAddressInterval {
  nodeId: string;
  regionId: string;
  address: string;
  firstSeenAt: number;
  lastSeenAt: number;
}

interface NodeRow {
  id: string;
  region_id: string;
  public_key: string;
  endpoint: string;
  pool4: string;
  pool6: string | null;
  created_at: number;
  last_heartbeat_at: number;
  state: NodeState;
  credential_hash: string | null;
}

const fromRow = (r: NodeRow): NodeRecord => ({
  id: r.id,
  regionId: r.region_id,
  publicKey: r.public_key,
  endpoint: r.endpoint,
  pool4: r.pool4,
  pool6: r.pool6,
  createdAt: r.created_at,
  lastHeartbeatAt: r.last_heartbeat_at,
  state: r.state,
  credentialHash: r.credential_hash,
});

export type NodeRepository = ReturnType<typeof nodeRepository>;

export function nodeRepository(db: Db) {
  const byKey = db.prepare(`SELECT * FROM nodes WHERE public_key = ?`);
  const byId = db.prepare(`SELECT * FROM nodes WHERE id = ?`);
  const insert = db.prepare(
    `INSERT INTO nodes (id, region_id, public_key, endpoint, pool4, pool6, created_at, last_heartbeat_at)
     VALUES (@id, @regionId, @publicKey, @endpoint, @pool4, @pool6, @now, @now)`,
  );
  const update = db.prepare(
    `UPDATE nodes SET region_id = @regionId, endpoint = @endpoint, pool4 = @pool4, pool6 = @pool6,
       last_heartbeat_at = @now WHERE id = @id`,
  );
  const heartbeat = db.prepare(`UPDATE nodes SET last_heartbeat_at = ? WHERE id = ?`);
  const activeInRegion = db.prepare(
    `SELECT n.*, (SELECT COUNT(*) FROM sessions s WHERE s.node_id = n.id AND s.state = 'active') AS active_sessions
     FROM nodes n WHERE n.region_id = ? AND n.last_heartbeat_at >= ? AND n.state = 'active'
     ORDER BY active_sessions, n.created_at, n.id`,
  );
  const setState = db.prepare(`UPDATE nodes SET state = ? WHERE id = ?`);
  const setCredential = db.prepare(`UPDATE nodes SET credential_hash = ? WHERE id = ?`);
  const byCredential = db.prepare(`SELECT * FROM nodes WHERE credential_hash = ?`);
  const all = db.prepare(`SELECT * FROM nodes ORDER BY region_id, id`);
  const latestInterval = db.prepare(
    `SELECT id, last_seen_at FROM node_exit_addresses WHERE node_id = ? AND address = ? ORDER BY last_seen_at DESC LIMIT 1`,
  );
  const extendInterval = db.prepare(`UPDATE node_exit_addresses SET last_seen_at = ? WHERE id = ?`);
  const openInterval = db.prepare(
    `INSERT INTO node_exit_addresses (node_id, address, first_seen_at, last_seen_at) VALUES (?, ?, ?, ?)`,
  );
  const intervalsAt = db.prepare(
    `SELECT e.node_id, n.region_id, e.address, e.first_seen_at, e.last_seen_at
     FROM node_exit_addresses e JOIN nodes n ON n.id = e.node_id
     WHERE e.address = @address AND e.first_seen_at <= @at AND e.last_seen_at >= @at - @slack
     ORDER BY e.last_seen_at DESC`,
  );
  const currentAddresses = db.prepare(
    `SELECT address FROM node_exit_addresses WHERE node_id = ? AND last_seen_at >= ? GROUP BY address ORDER BY address`,
  );

  return {
    getByPublicKey(publicKey: string): NodeRecord | null {
      const r = byKey.get(publicKey) as NodeRow | undefined;
      return r ? fromRow(r) : null;
    },
    get(id: string): NodeRecord | null {
      const r = byId.get(id) as NodeRow | undefined;
      return r ? fromRow(r) : null;
    },
    insert(n: { id: string; regionId: string; publicKey: string; endpoint: string; pool4: string; pool6: string | null; now: number }): void {
      insert.run(n);
    },
    update(n: { id: string; regionId: string; endpoint: string; pool4: string; pool6: string | null; now: number }): void {
      update.run(n);
    },
    heartbeat(id: string, now: number): void {
      heartbeat.run(now, id);
    },
    setState(id: string, state: NodeState): void {
      setState.run(state, id);
    },
    /** Replaces the node's credential hash (null: no credential works any more). */
    setCredential(id: string, credentialHash: string | null): void {
      setCredential.run(credentialHash, id);
    },
    getByCredential(credentialHash: string): NodeRecord | null {
      const r = byCredential.get(credentialHash) as NodeRow | undefined;
      return r ? fromRow(r) : null;
    },
    /** Active nodes of the region that heartbeated at or after the cutoff, least loaded first. */
    activeInRegion(regionId: string, heartbeatCutoff: number): NodeLoad[] {
      return (activeInRegion.all(regionId, heartbeatCutoff) as (NodeRow & { active_sessions: number })[]).map((r) => ({
        ...fromRow(r),
        activeSessions: r.active_sessions,
      }));
    },
    list(): NodeRecord[] {
      return (all.all() as NodeRow[]).map(fromRow);
    },
    /**
     * Records that the node uses `address` now: extends its latest interval when
     * that was seen within `gapMs`, else opens a new one (so downtime shows as a gap).
     */
    sawExitAddress(nodeId: string, address: string, now: number, gapMs: number): void {
      const last = latestInterval.get(nodeId, address) as { id: number; last_seen_at: number } | undefined;
      if (last && last.last_seen_at >= now - gapMs) extendInterval.run(Math.max(now, last.last_seen_at), last.id);
      else openInterval.run(nodeId, address, now, now);
    },
    /** Intervals containing `at` (an interval's end is stretched by `slackMs`, the heartbeat spacing). */
    exitAddressAt(address: string, at: number, slackMs: number): ExitAddressInterval[] {
      return (
        intervalsAt.all({ address, at, slack: slackMs }) as {
          node_id: string;
          region_id: string;
          address: string;
          first_seen_at: number;
          last_seen_at: number;
        }[]
      ).map((r) => ({
        nodeId: r.node_id,
        regionId: r.region_id,
        address: r.address,
        firstSeenAt: r.first_seen_at,
        lastSeenAt: r.last_seen_at,
      }));
    },
    currentExitAddresses(nodeId: string, seenSince: number): string[] {
      return (currentAddresses.all(nodeId, seenSince) as { address: string }[]).map((r) => r.address);
    },
  };
}
