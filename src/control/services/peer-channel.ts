/**
 * The control → node channel's source of truth (issue 16): for every joined
 * node (one with a credential) the control plane keeps the peer set it has
 * published and a numbered log of the changes that built it (migration 5,
 * store/node-peers.ts). `publish(node)` computes the node's desired set by
 * the same rule as the in-process agent (desired-peers.ts), diffs it against
 * the published set, and appends the differences with the next revisions —
 * the read, the diff and the append in one IMMEDIATE transaction, so two
 * processes publishing the same node (the server and `tunnelbyte admin`)
 * cannot number two changes alike.
 *
 * When it runs: whenever something may have changed a node's set (PeerSync:
 * session create/close/expiry, tier change, account disable/delete, node
 * removal, a usage report — its node, and the nodes of an account whose
 * quota it used up) and on the server's
 * periodic tick (`publishAll`), which also catches what nothing announces —
 * a new period restoring quotas, another process's writes.
 *
 * Streams (http/peer-stream.ts) do not poll: `events` tells them in-process
 * that a node's log grew ('changed') and that a tick passed ('tick', when they
 * re-check their credential and read any change another process logged).
 */
import { EventEmitter } from 'node:events';
import type { LoggedPeerChange, PeerChange, PublishedPeer } from '../store/node-peers.js';
import type { ServiceContext } from './context.js';
import { desiredPeers } from './desired-peers.js';
import type { UsageService } from './usage.js';

export interface PeerSnapshot {
  revision: number;
  /**
   * The id of the change that made `revision` (store/node-peers.ts,
   * migration 6): what a node names with the revision when it resumes. Null
   * at revision 0 and for a change logged before change ids existed.
   */
  changeId: string | null;
  peers: PublishedPeer[];
}

/**
 * What a node holds, as it names it when it resumes: a revision, and the id
 * of the change that made it — undefined when the node does not say (a node
 * of an earlier release, or a stream's own position in this database).
 */
export interface ResumePoint {
  revision: number;
  changeId?: string | null;
}

/** Where a node resuming from a revision starts: the changes after it, or a whole snapshot. */
export type ResumePlan = { kind: 'changes'; from: number } | { kind: 'snapshot'; snapshot: PeerSnapshot };

export interface PeerChannelEvents {
  /** The node's log grew to `revision`. */
  changed: [nodeId: string, revision: number];
  /** A periodic pass finished. */
  tick: [];
}

export class PeerChannelService {
  readonly events = new EventEmitter<PeerChannelEvents>();

  constructor(
    private readonly ctx: ServiceContext,
    private readonly usage: UsageService,
  ) {
    this.events.setMaxListeners(0); // one listener per open stream, any number of nodes
  }

  /**
   * Brings the node's published set up to date; returns its revision. A node
   * without a credential (the one inside an all-in-one exit, or a revoked or
   * removed one) has no channel and is left as it is.
   */
  publish(nodeId: string): number {
    const { revision, grew } = this.ctx.store.transaction(() => this.diffAndAppend(nodeId));
    if (grew) this.events.emit('changed', nodeId, revision);
    return revision;
  }

  /**
   * The periodic pass: publishes every joined node in one transaction (one
   * lock and one commit for the whole fleet), then wakes the streams of the
   * nodes that changed — after the commit, so no stream sends a change that
   * could still be rolled back — and tells every open stream a tick passed.
   */
  publishAll(): void {
    const { store } = this.ctx;
    const grown = store.transaction(() => {
      const out: [string, number][] = [];
      for (const id of store.nodePeers.joinedNodeIds()) {
        const r = this.diffAndAppend(id);
        if (r.grew) out.push([id, r.revision]);
      }
      return out;
    });
    for (const [id, revision] of grown) this.events.emit('changed', id, revision);
    this.events.emit('tick');
  }

  /** Inside a transaction: appends what turns the node's published set into its desired one. */
  private diffAndAppend(nodeId: string): { revision: number; grew: boolean } {
    const { store } = this.ctx;
    const node = store.nodes.get(nodeId);
    const before = store.nodePeers.revision(nodeId);
    if (!node || node.credentialHash === null) return { revision: before, grew: false };
    const changes = diffPeers(store.nodePeers.published(nodeId), desiredPeers(this.ctx, this.usage, nodeId).peers);
    if (changes.length === 0) return { revision: before, grew: false };
    const after = store.nodePeers.append(nodeId, changes);
    // Bounded log: a resume point older than what is kept gets a snapshot (resume()).
    store.nodePeers.compact(nodeId, after - this.ctx.config.peerLogLimit);
    return { revision: after, grew: true };
  }

  /** The node's peer set at its current revision (published first, so it is never stale). */
  snapshot(nodeId: string): PeerSnapshot {
    this.publish(nodeId);
    return this.currentSnapshot(nodeId);
  }

  /** The published set and its revision as they are, read together. */
  currentSnapshot(nodeId: string): PeerSnapshot {
    const { store } = this.ctx;
    return store.transaction(() => {
      const revision = store.nodePeers.revision(nodeId);
      // The log always keeps the newest change (compaction leaves the last peerLogLimit ≥ 1).
      return { revision, changeId: revision === 0 ? null : store.nodePeers.changeIdAt(nodeId, revision), peers: store.nodePeers.published(nodeId) };
    });
  }

  /**
   * How to serve a node that holds `since` (null: nothing): the changes after
   * it when the log still has them all and the revision is this database's,
   * otherwise (nothing held, compacted away, a revision this control plane
   * never made, or made by another database) a snapshot. Publishes first, as
   * a stream opens; `planFrom` is the same without that, for an open stream
   * catching up after the publisher woke it.
   */
  resume(nodeId: string, since: ResumePoint | null): ResumePlan {
    this.publish(nodeId);
    return this.planFrom(nodeId, since);
  }

  planFrom(nodeId: string, since: ResumePoint | null): ResumePlan {
    const { store } = this.ctx;
    return store.transaction((): ResumePlan => {
      const revision = store.nodePeers.revision(nodeId);
      // (currentSnapshot below joins this transaction: the plan and the snapshot are one read.)
      if (since !== null && since.revision <= revision) {
        const from = since.revision;
        if (since.changeId !== undefined && from > 0) {
          // The node names the change it holds: only this database's change `from` continues it
          // (migration 6 says why). Logged, it is also no older than the oldest change kept.
          if (since.changeId !== null && store.nodePeers.changeIdAt(nodeId, from) === since.changeId) return { kind: 'changes', from };
        } else {
          // Revision 0 (the empty set, the same in every database), a node that names no change, or
          // the stream's own position: every change above `from` is still logged when the oldest
          // kept one is at most from + 1.
          const oldest = store.nodePeers.oldestLogged(nodeId);
          if (from === revision || (oldest !== null && oldest <= from + 1)) return { kind: 'changes', from };
        }
      }
      return { kind: 'snapshot', snapshot: this.currentSnapshot(nodeId) };
    });
  }

  /** Up to `limit` changes after `revision`, in order. */
  changesAfter(nodeId: string, revision: number, limit: number): LoggedPeerChange[] {
    return this.ctx.store.nodePeers.changesAfter(nodeId, revision, limit);
  }
}

/**
 * The changes that turn `published` into `desired`: removals first, then
 * additions, each in public-key order. A key whose session or addresses
 * changed (closed, and a new session opened with the same key) is removed
 * and added again, so the node never keeps a stale allowed-IPs entry.
 */
export function diffPeers(published: PublishedPeer[], desired: ReadonlyMap<string, { sessionId: string; allowedIps: string[] }>): PeerChange[] {
  const removes: PeerChange[] = [];
  const adds: PeerChange[] = [];
  const have = new Map(published.map((p) => [p.publicKey, p]));
  for (const p of published) {
    const want = desired.get(p.publicKey);
    if (!want || !samePeer(p, want)) removes.push({ op: 'remove', publicKey: p.publicKey });
  }
  for (const [publicKey, want] of desired) {
    const had = have.get(publicKey);
    if (had && samePeer(had, want)) continue;
    adds.push({ op: 'add', peer: { publicKey, allowedIps: [...want.allowedIps], sessionId: want.sessionId } });
  }
  const byKey = (a: PeerChange, b: PeerChange): number => {
    const ka = a.op === 'add' ? a.peer.publicKey : a.publicKey;
    const kb = b.op === 'add' ? b.peer.publicKey : b.publicKey;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  };
  return [...removes.sort(byKey), ...adds.sort(byKey)];
}

function samePeer(p: PublishedPeer, want: { sessionId: string; allowedIps: string[] }): boolean {
  return p.sessionId === want.sessionId && p.allowedIps.length === want.allowedIps.length && p.allowedIps.every((a, i) => a === want.allowedIps[i]);
}
