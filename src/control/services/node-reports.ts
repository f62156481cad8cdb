/**
 * What a joined node tells the control plane (issue 16, node → control):
 * heartbeats, and usage as cumulative per-session counters with a sequence
 * number. Cumulative counters make a report idempotent — applying one twice
 * adds nothing the second time — and the sequence number lets the control
 * plane acknowledge a retried or late report without reading it: a report at
 * or below the last applied sequence is answered with that sequence and
 * changes nothing. A report may name only sessions placed on the reporting
 * node; one that names another node's session is refused whole. A session
 * this database does not have at all counts nothing and the rest of the
 * report is applied: the node counted it under a database this one replaced
 * (restored from an older backup, or a new one — the peer channel sends the
 * node this database's snapshot, which takes that peer off), and refusing
 * would hold the node's report, and every report after it, forever. After an applied report
 * the reporting node's peers are re-evaluated (PeerSync), and so are those of
 * every node of an account whose quota the report used up: the cut reaches
 * the nodes at once rather than at the next tick.
 */
import { forbidden, invalid } from '../errors.js';
import type { NodeRecord } from '../store/nodes.js';
import type { ServiceContext } from './context.js';
import type { NodeService } from './nodes.js';
import { periodAt } from './periods.js';
import type { UsageService } from './usage.js';

export interface SessionUsage {
  sessionId: string;
  /** Bytes the client received through the node since the session began there (cumulative). */
  rxBytes: number;
  /** Bytes the client sent (cumulative). */
  txBytes: number;
  /** The latest handshake with the client, epoch ms; null: none yet. */
  lastHandshakeAt: number | null;
}

export interface UsageReportResult {
  /** The sequence the control plane has applied up to: the node may forget counters up to here. */
  ackedSeq: number;
  /** False when the report was a retry of one already applied. */
  applied: boolean;
  /** Bytes counted from this report (both directions). */
  countedBytes: number;
}

export type ReportKind = 'heartbeat' | 'usage';

/** Told the time (seconds, monotonic clock) each applied report spent in SQLite: /metrics' tunnelbyte_node_report_write_seconds. */
export type ReportTimer = (kind: ReportKind, seconds: number) => void;

export class NodeReportService {
  private readonly timers = new Set<ReportTimer>();

  constructor(
    private readonly ctx: ServiceContext,
    private readonly nodes: NodeService,
    private readonly quotas: UsageService,
  ) {}

  /** Subscribes to the SQLite time of every report (a fleet of 1,000 nodes sends hundreds a second); returns the unsubscribe. */
  onReportTimed(fn: ReportTimer): () => void {
    this.timers.add(fn);
    return () => this.timers.delete(fn);
  }

  /** The node is alive and leaves the internet from these addresses; returns its state (a draining node learns it here). */
  heartbeat(node: NodeRecord, exitAddresses: string[]): NodeRecord {
    return this.timed('heartbeat', () => {
      this.nodes.heartbeat(node.id, exitAddresses);
      return this.ctx.store.nodes.get(node.id)!;
    });
  }

  usage(node: NodeRecord, seq: number, sessions: SessionUsage[]): UsageReportResult {
    if (!Number.isSafeInteger(seq) || seq < 1) throw invalid('seq must be a positive integer');
    return this.timed('usage', () => this.applyUsage(node, seq, sessions));
  }

  /** Runs one report's reads and writes, telling the subscribers how long it took when it succeeded. */
  private timed<T>(kind: ReportKind, work: () => T): T {
    const start = this.ctx.clock.now();
    const result = work();
    const seconds = (this.ctx.clock.now() - start) / 1000;
    for (const fn of this.timers) fn(kind, seconds);
    return result;
  }

  private applyUsage(node: NodeRecord, seq: number, sessions: SessionUsage[]): UsageReportResult {
    const { store, clock, config, peers } = this.ctx;
    const grown = new Set<string>(); // accounts whose usage grew
    const result = store.transaction((): UsageReportResult => {
      const last = store.nodeReports.reportSeq(node.id);
      if (seq <= last) return { ackedSeq: last, applied: false, countedBytes: 0 };
      const now = clock.wallMs();
      const period = periodAt(now).id;
      let counted = 0;
      for (const u of sessions) {
        const s = store.sessions.get(u.sessionId);
        if (!s) continue; // made under another database (see the top of the file): nothing of it to count here
        if (s.nodeId !== node.id) throw forbidden(`session ${u.sessionId} is not on this node`);
        const prev = store.nodeReports.counters(s.id) ?? { rxBytes: 0, txBytes: 0 };
        // Cumulative counters only grow; one that went back (the node lost its disk) counts nothing until it passes the last value.
        const rx = Math.max(0, u.rxBytes - prev.rxBytes);
        const tx = Math.max(0, u.txBytes - prev.txBytes);
        store.nodeReports.saveCounters(s.id, node.id, { rxBytes: Math.max(u.rxBytes, prev.rxBytes), txBytes: Math.max(u.txBytes, prev.txBytes) });
        if (rx === 0 && tx === 0 && u.lastHandshakeAt === null) continue;
        store.sessions.addCounters({
          id: s.id,
          rx,
          tx,
          lastHandshakeAt: u.lastHandshakeAt,
          expiresAt: u.lastHandshakeAt === null ? 0 : u.lastHandshakeAt + config.sessionIdleTtlMs,
        });
        if (rx + tx > 0) {
          store.usage.add(s.accountId, period, rx, tx);
          grown.add(s.accountId);
        }
        counted += rx + tx;
      }
      store.nodeReports.setReportSeq(node.id, seq);
      return { ackedSeq: seq, applied: true, countedBytes: counted };
    });
    // The reporting node is re-evaluated after every applied report (a handshake it reports keeps a
    // session from expiring); a quota the report used up cuts the account's peers on every node now.
    if (!result.applied) return result;
    const nodes = new Set<string>([node.id]);
    for (const accountId of grown) {
      const account = store.accounts.get(accountId);
      if (!account || !this.quotas.isQuotaExhausted(account)) continue;
      for (const s of store.sessions.listByAccount(accountId, { activeOnly: true })) nodes.add(s.nodeId);
    }
    for (const n of nodes) peers.nodeChanged(n);
    return result;
  }
}

