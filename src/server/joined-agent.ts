/**
 * A joined node's side of the node agent (issue 16; control/services/
 * node-agent.ts is the in-process exit's): it keeps the device's peers equal
 * to the peer set the control plane's channel last gave, and turns the
 * device's byte counters into cumulative per-session counters on the node's
 * disk (node-store.ts), from where usage-reporter.ts reports them.
 *
 *   - restore(): at start, the stored peer set goes on the device before the
 *     control plane is asked anything — with the control plane down the node
 *     still forwards for its current peers (fail-static);
 *   - applySnapshot() / applyChange(): the channel's snapshot and its ordered
 *     changes, each applied to the device and then written with its revision
 *     and change id (the resume point the stream names when it reconnects)
 *     (a crash between the two replays the change from the older revision:
 *     adding a present peer replaces it and removing an absent one does
 *     nothing, so a replay is harmless); a change at or below the stored
 *     revision was applied already and is skipped;
 *   - flushCounters(): device counter deltas since the last flush, added to
 *     the sessions' cumulative counters in one transaction; run before any
 *     removal too, so the bytes up to a removal still count.
 *
 * The device counts from its side (rx = from the client); sessions count
 * from the client's (rx = to the client): CounterMeter (data-plane.ts, shared
 * with NodeAgent) swaps the directions.
 */
import type { Logger } from 'pino';
import { CounterMeter, type DataPlane } from '../control/services/data-plane.js';
import type { PeerChange, PublishedPeer } from '../control/store/node-peers.js';
import type { SessionBytes, NodeStore, StoredPeer } from './node-store.js';

export class JoinedAgent {
  private readonly installed = new Map<string, StoredPeer>();
  private readonly meter = new CounterMeter();

  constructor(
    private readonly store: NodeStore,
    private readonly dataPlane: DataPlane,
    private readonly wallMs: () => number,
    private readonly log: Logger,
  ) {}

  /** The revision of the peers applied; null: never synced. */
  revision(): number | null {
    return this.store.revision();
  }

  /** The revision applied and the id of the change that made it: the stream's resume point (null: never synced). */
  held(): { revision: number; changeId: string | null } | null {
    return this.store.held();
  }

  /** Public keys on the device. */
  installedPeers(): string[] {
    return [...this.installed.keys()];
  }

  /** The session of an installed peer. */
  sessionOf(publicKey: string): string | null {
    return this.installed.get(publicKey)?.sessionId ?? null;
  }

  /** Puts the stored peer set on the device (start-up, before any contact with the control plane). */
  restore(): number {
    for (const p of this.store.peers()) this.install(p);
    return this.installed.size;
  }

  /** The channel's whole peer set at `revision`: peers not in it leave, new or changed ones are (re)installed. */
  applySnapshot(revision: number, published: readonly PublishedPeer[], changeId: string | null = null): { added: number; removed: number } {
    const peers = published.map(stored);
    const want = new Map(peers.map((p) => [p.publicKey, p]));
    const leaving = [...this.installed.values()].filter((p) => !same(want.get(p.publicKey), p));
    if (leaving.length > 0) this.flushCounters(); // the bytes up to removal still count
    for (const p of leaving) this.uninstall(p.publicKey);
    let added = 0;
    for (const p of peers) {
      if (this.installed.has(p.publicKey)) continue;
      this.install(p);
      added++;
    }
    this.store.saveSnapshot(revision, changeId, peers, this.wallMs());
    return { added, removed: leaving.length };
  }

  /** One change of the stream; false when its revision was applied already. */
  applyChange(revision: number, change: PeerChange, changeId: string | null = null): boolean {
    const at = this.store.revision();
    if (at !== null && revision <= at) return false;
    if (change.op === 'add') {
      const peer = stored(change.peer);
      const present = this.installed.get(peer.publicKey);
      if (!same(peer, present)) {
        if (present) {
          this.flushCounters();
          this.uninstall(present.publicKey);
        }
        this.install(peer);
      }
      this.store.savePeer(revision, changeId, { op: 'add', peer }, this.wallMs());
    } else {
      const present = this.installed.get(change.publicKey);
      if (present) {
        this.flushCounters();
        this.uninstall(change.publicKey);
      }
      this.store.savePeer(revision, changeId, { op: 'remove', publicKey: change.publicKey, sessionId: present?.sessionId ?? null }, this.wallMs());
    }
    return true;
  }

  /** Moves the device's counter deltas since the last flush into the sessions' cumulative counters; returns the bytes moved. */
  flushCounters(): number {
    const counters = this.dataPlane.readCounters();
    const deltas: SessionBytes[] = [];
    let total = 0;
    for (const { peer, toClient, fromClient, lastHandshakeMs } of this.meter.read(counters, this.installed)) {
      deltas.push({ sessionId: peer.sessionId, rx: toClient, tx: fromClient, lastHandshakeAt: lastHandshakeMs });
      total += toClient + fromClient;
    }
    this.store.addCounters(deltas);
    return total;
  }

  private install(p: StoredPeer): void {
    try {
      this.dataPlane.addPeer({ publicKey: p.publicKey, allowedIps: p.allowedIps });
      this.installed.set(p.publicKey, p);
      this.meter.forget(p.publicKey); // a (re)added peer's counters start at 0
    } catch (e) {
      // Only a malformed key or prefix throws: the control plane validated both, so this is a bug there; the
      // other peers still go on, and the next snapshot tries again.
      this.log.error({ publicKey: p.publicKey, session: p.sessionId, err: (e as Error).message }, 'a peer from the control plane could not be installed');
    }
  }

  private uninstall(publicKey: string): void {
    this.dataPlane.removePeer(publicKey);
    this.installed.delete(publicKey);
    this.meter.forget(publicKey);
  }
}

/** What the node keeps of a published peer. (Sessions carry no preshared key; the device's DataPlane takes none.) */
function stored(p: PublishedPeer): StoredPeer {
  return { publicKey: p.publicKey, sessionId: p.sessionId, allowedIps: [...p.allowedIps] };
}

function same(a: StoredPeer | undefined, b: StoredPeer | undefined): boolean {
  return !!a && !!b && a.sessionId === b.sessionId && a.allowedIps.join() === b.allowedIps.join();
}
