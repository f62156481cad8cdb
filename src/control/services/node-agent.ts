/**
 * The control plane's side of one exit node running in this process: it
 * keeps the node's WireGuard peers equal to what SQLite says they should be,
 * and moves the device's byte counters into SQLite.
 *
 * The exit server creates one with `ControlPlane.attachDataPlane()` after
 * registering its node, calls `sync()` once at start (which re-installs the
 * peers of every active session: clients reconnect after a restart without
 * new configs), then every few seconds (≤ 5 s, docs/contract.md §4) and once more at
 * shutdown. One `sync()`:
 *
 *   1. heartbeat: the node is alive, with its current exit addresses;
 *   2. flushCounters: device counter deltas → session bytes, last handshake,
 *      sliding expiry, and the account's usage of the current period;
 *   3. expireDue: sessions past their expiry become `expired`;
 *   4. reconcile: desired peers = active sessions of this node whose account
 *      has quota left (desired-peers.ts, the rule joined nodes get too); peers not desired are removed (closed here, by
 *      `tunnelbyte admin` in another process, expired, cut for quota), and
 *      missing ones added (new sessions, quota restored by a new period or
 *      an upgrade).
 *
 * Reconcile is derived from SQLite alone, so it is idempotent and heals any
 * missed change on the next tick. API calls (create, close, tier change)
 * trigger it at once through PeerSync.
 */
import { CounterMeter, type DataPlane } from './data-plane.js';
import type { ServiceContext } from './context.js';
import type { NodeService } from './nodes.js';
import { periodAt } from './periods.js';
import { desiredPeers } from './desired-peers.js';
import type { SessionService } from './sessions.js';
import type { UsageService } from './usage.js';

export interface ReconcileReport {
  /** Public keys added to the data plane. */
  added: string[];
  /** Public keys removed from the data plane. */
  removed: string[];
  /** Active sessions whose peers are kept off because their account's quota is used up. */
  suspended: string[];
  /** Data-plane calls that threw, by public key (retried on the next reconcile). */
  failures: { publicKey: string; error: string }[];
}

export interface SyncReport extends ReconcileReport {
  /** Sessions that expired in this sync. */
  expired: string[];
  /** Bytes (both directions) moved from the device's counters into SQLite. */
  bytesFlushed: number;
}

interface InstalledPeer {
  sessionId: string;
  accountId: string;
  allowedIps: string[];
}

export class NodeAgent {
  private readonly installed = new Map<string, InstalledPeer>();
  private readonly meter = new CounterMeter();
  private exitAddresses: string[];

  constructor(
    private readonly ctx: ServiceContext,
    private readonly services: { nodes: NodeService; sessions: SessionService; usage: UsageService },
    readonly nodeId: string,
    private readonly dataPlane: DataPlane,
    exitAddresses: string[],
  ) {
    this.exitAddresses = [...exitAddresses];
  }

  /** The addresses the node's traffic leaves from changed (recorded at the next heartbeat). */
  setExitAddresses(addresses: string[]): void {
    this.exitAddresses = [...addresses];
  }

  /** Public keys this agent has put on the data plane. */
  installedPeers(): string[] {
    return [...this.installed.keys()];
  }

  /** One tick: heartbeat, counters, expiry, reconcile (see the file comment). */
  sync(): SyncReport {
    const before = new Set(this.installed.keys());
    this.services.nodes.heartbeat(this.nodeId, this.exitAddresses);
    const bytesFlushed = this.flushCounters();
    const expired = this.services.sessions.expireDue(); // may already reconcile this node through PeerSync
    const last = this.reconcile();
    return {
      added: [...this.installed.keys()].filter((pk) => !before.has(pk)),
      removed: [...before].filter((pk) => !this.installed.has(pk)),
      suspended: last.suspended,
      failures: last.failures,
      expired,
      bytesFlushed,
    };
  }

  /**
   * Moves counter deltas since the last flush into SQLite, in one transaction
   * (CounterMeter, data-plane.ts, turns the device's readings into what each
   * session moved, from the client's side).
   */
  flushCounters(): number {
    const { store, clock, config } = this.ctx;
    const counters = this.dataPlane.readCounters();
    let total = 0;
    store.transaction(() => {
      const period = periodAt(clock.wallMs()).id;
      for (const { peer, toClient, fromClient, lastHandshakeMs } of this.meter.read(counters, this.installed)) {
        store.sessions.addCounters({
          id: peer.sessionId,
          rx: toClient,
          tx: fromClient,
          lastHandshakeAt: lastHandshakeMs,
          expiresAt: lastHandshakeMs === null ? 0 : lastHandshakeMs + config.sessionIdleTtlMs,
        });
        if (toClient + fromClient > 0) store.usage.add(peer.accountId, period, toClient, fromClient);
        total += toClient + fromClient;
      }
    });
    return total;
  }

  /** Makes the data plane's peers match SQLite (see the file comment). */
  reconcile(): ReconcileReport {
    const { peers: desired, suspended } = desiredPeers(this.ctx, this.services.usage, this.nodeId);

    const report: ReconcileReport = { added: [], removed: [], suspended, failures: [] };
    const removals = [...this.installed].filter(([pk, p]) => desired.get(pk)?.sessionId !== p.sessionId).map(([pk]) => pk);
    if (removals.length > 0) this.flushCounters(); // the bytes up to removal still count
    for (const pk of removals) {
      try {
        this.dataPlane.removePeer(pk);
        this.installed.delete(pk);
        this.meter.forget(pk);
        report.removed.push(pk);
      } catch (e) {
        report.failures.push({ publicKey: pk, error: (e as Error).message });
      }
    }
    for (const [pk, want] of desired) {
      if (this.installed.has(pk)) continue;
      try {
        this.dataPlane.addPeer({ publicKey: pk, allowedIps: want.allowedIps });
        this.installed.set(pk, want);
        this.meter.forget(pk);
        report.added.push(pk);
      } catch (e) {
        report.failures.push({ publicKey: pk, error: (e as Error).message });
      }
    }
    return report;
  }
}
