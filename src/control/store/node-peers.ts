/**
 * The peer sets published to joined nodes and the change log behind them
 * (migration 5; services/peer-channel.ts decides what is published). A
 * node's revision is the number of its last change; the published set is
 * what applying changes 1..revision to an empty set gives, so a node that
 * holds revision r needs exactly the changes above r — when r is this
 * database's revision r: each change has a random id (migration 6), and a
 * node names the id of the change it holds along with r.
 */
import type { Db } from './database.js';

/** One peer of a node as the channel carries it (the JSON of GET /v1/nodes/{id}/peers). */
export interface PublishedPeer {
  publicKey: string;
  allowedIps: string[];
  sessionId: string;
  presharedKey?: string;
}

export type PeerChange = { op: 'add'; peer: PublishedPeer } | { op: 'remove'; publicKey: string };

export interface LoggedPeerChange {
  revision: number;
  /** The change's random id (migration 6); null for a change logged before it. */
  changeId: string | null;
  change: PeerChange;
}

interface PeerRow {
  public_key: string;
  session_id: string;
  allowed_ips: string;
  preshared_key: string | null;
}

interface ChangeRow {
  revision: number;
  change_id: string | null;
  op: 'add' | 'remove';
  public_key: string;
  peer: string | null;
}

const peerFromRow = (r: PeerRow): PublishedPeer => ({
  publicKey: r.public_key,
  allowedIps: JSON.parse(r.allowed_ips) as string[],
  sessionId: r.session_id,
  ...(r.preshared_key !== null ? { presharedKey: r.preshared_key } : {}),
});

const changeFromRow = (r: ChangeRow): LoggedPeerChange => ({
  revision: r.revision,
  changeId: r.change_id,
  change: r.op === 'add' ? { op: 'add', peer: JSON.parse(r.peer!) as PublishedPeer } : { op: 'remove', publicKey: r.public_key },
});

export type NodePeerRepository = ReturnType<typeof nodePeerRepository>;

export function nodePeerRepository(db: Db) {
  const revisionOf = db.prepare(`SELECT peer_revision FROM nodes WHERE id = ?`);
  const setRevision = db.prepare(`UPDATE nodes SET peer_revision = ? WHERE id = ?`);
  const published = db.prepare(`SELECT public_key, session_id, allowed_ips, preshared_key FROM node_peers WHERE node_id = ? ORDER BY public_key`);
  const insertPeer = db.prepare(
    `INSERT INTO node_peers (node_id, public_key, session_id, allowed_ips, preshared_key) VALUES (@nodeId, @publicKey, @sessionId, @allowedIps, @presharedKey)`,
  );
  const deletePeer = db.prepare(`DELETE FROM node_peers WHERE node_id = ? AND public_key = ?`);
  const insertChange = db.prepare(
    `INSERT INTO node_peer_changes (node_id, revision, op, public_key, peer, change_id) VALUES (?, ?, ?, ?, ?, lower(hex(randomblob(8))))`,
  );
  const changesAfter = db.prepare(`SELECT revision, change_id, op, public_key, peer FROM node_peer_changes WHERE node_id = ? AND revision > ? ORDER BY revision LIMIT ?`);
  const changeIdAt = db.prepare(`SELECT change_id FROM node_peer_changes WHERE node_id = ? AND revision = ?`);
  const oldest = db.prepare(`SELECT MIN(revision) AS r FROM node_peer_changes WHERE node_id = ?`);
  const compact = db.prepare(`DELETE FROM node_peer_changes WHERE node_id = ? AND revision <= ?`);
  const joined = db.prepare(`SELECT id FROM nodes WHERE credential_hash IS NOT NULL ORDER BY id`);
  return {
    /** The revision of the node's published set (0: nothing published yet). */
    revision(nodeId: string): number {
      return (revisionOf.get(nodeId) as { peer_revision: number } | undefined)?.peer_revision ?? 0;
    },
    published(nodeId: string): PublishedPeer[] {
      return (published.all(nodeId) as PeerRow[]).map(peerFromRow);
    },
    /**
     * Applies the changes to the published set and logs them with the next
     * revisions; returns the new revision. Call inside a transaction that also
     * read the set the changes were computed from.
     */
    append(nodeId: string, changes: PeerChange[]): number {
      let rev = this.revision(nodeId);
      for (const c of changes) {
        rev++;
        if (c.op === 'add') {
          const p = c.peer;
          insertPeer.run({ nodeId, publicKey: p.publicKey, sessionId: p.sessionId, allowedIps: JSON.stringify(p.allowedIps), presharedKey: p.presharedKey ?? null });
          insertChange.run(nodeId, rev, 'add', p.publicKey, JSON.stringify(p));
        } else {
          deletePeer.run(nodeId, c.publicKey);
          insertChange.run(nodeId, rev, 'remove', c.publicKey, null);
        }
      }
      setRevision.run(rev, nodeId);
      return rev;
    },
    /** Up to `limit` logged changes above `revision`, in order. */
    changesAfter(nodeId: string, revision: number, limit: number): LoggedPeerChange[] {
      return (changesAfter.all(nodeId, revision, limit) as ChangeRow[]).map(changeFromRow);
    },
    /** The id of the node's change at `revision`; null when it is not logged (compacted, never made) or has none. */
    changeIdAt(nodeId: string, revision: number): string | null {
      return (changeIdAt.get(nodeId, revision) as { change_id: string | null } | undefined)?.change_id ?? null;
    },
    /** The lowest revision still in the log (null: the log of this node is empty). */
    oldestLogged(nodeId: string): number | null {
      return (oldest.get(nodeId) as { r: number | null }).r;
    },
    /** Forgets the changes at or below `revision`. */
    compact(nodeId: string, revision: number): void {
      compact.run(nodeId, revision);
    },
    /** Nodes that joined over the network and still hold a credential: the ones the channel publishes to. */
    joinedNodeIds(): string[] {
      return (joined.all() as { id: string }[]).map((r) => r.id);
    },
  };
}
