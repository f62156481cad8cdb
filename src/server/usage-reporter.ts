/**
 * A joined node's usage reports (issue 16, node → control): the cumulative
 * per-session counters on the node's disk (node-store.ts), sent to POST
 * /v1/nodes/{id}/usage under a sequence number.
 *
 * One report is in flight at a time and it is on disk before it is sent;
 * until the control plane acknowledges it, every attempt — after a timeout,
 * a 5xx, a node restart or a control-plane restart — sends that same report
 * again. The control plane applies a sequence number once (a retry of an
 * applied report is acknowledged and counts nothing) and counts cumulative
 * counters by their difference from the last ones it applied, so a report
 * is never counted twice and no byte is lost between report and
 * acknowledgement. Counters that grow meanwhile go into the next report.
 */
import type { ControlLink } from './control-link.js';
import type { NodeStore, PendingReport } from './node-store.js';

/** Sessions per report: the API takes up to 100,000; smaller reports keep each request and transaction short. */
export const REPORT_SESSIONS = 5000;

export interface ReportOutcome {
  /** Reports the control plane acknowledged in this call. */
  acknowledged: number;
  /** Sessions in them. */
  sessions: number;
}

export class UsageReporter {
  private running: Promise<ReportOutcome> | null = null;

  constructor(
    private readonly store: NodeStore,
    private readonly link: ControlLink,
    private readonly node: { id: string; credential: string },
    private readonly wallMs: () => number,
  ) {}

  /**
   * Sends reports until nothing is left unacknowledged. A failure (the
   * control plane unreachable, the credential refused) is thrown with the
   * report still on disk for the next call. Calls while one runs join it.
   */
  report(): Promise<ReportOutcome> {
    this.running ??= this.drain().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async drain(): Promise<ReportOutcome> {
    const out: ReportOutcome = { acknowledged: 0, sessions: 0 };
    // Bounded: each round acknowledges or renumbers one report; renumbering happens at most once per call.
    for (let round = 0; round < 1000; round++) {
      const report: PendingReport | null = this.store.nextReport(REPORT_SESSIONS);
      if (!report) break;
      const r = await this.link.usage(this.node.id, this.node.credential, report);
      if (r.applied || r.acked_seq === report.seq) {
        // Applied now, or a retry of the report the control plane applied when its answer was lost. (A disk
        // restored from an older copy may also land here by coincidence of numbers: its counters are then
        // below the control plane's, which counts nothing until they pass — routes/nodes.ts's usage rule.)
        this.store.acknowledge(report, this.wallMs());
        out.acknowledged++;
        out.sessions += report.sessions.length;
      } else if (r.acked_seq > report.seq) {
        this.store.renumberAbove(r.acked_seq); // this disk is behind the control plane's numbering (node-store.ts)
      } else {
        throw new Error(`the control plane acknowledged sequence ${r.acked_seq} for report ${report.seq} without applying it`);
      }
    }
    return out;
  }
}
