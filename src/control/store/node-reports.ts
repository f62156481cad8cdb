/**
 * What a joined node has reported (migration 4): the sequence number of its
 * last applied usage report and, per session, the cumulative counters that
 * report carried.
 */
import type { Db } from './database.js';

export interface CumulativeCounters {
  rxBytes: number;
  txBytes: number;
}

export type NodeReportRepository = ReturnType<typeof nodeReportRepository>;

export function nodeReportRepository(db: Db) {
  const seqOf = db.prepare(`SELECT report_seq FROM nodes WHERE id = ?`);
  const setSeq = db.prepare(`UPDATE nodes SET report_seq = ? WHERE id = ?`);
  const counters = db.prepare(`SELECT rx_bytes, tx_bytes FROM node_session_counters WHERE session_id = ?`);
  const saveCounters = db.prepare(
    `INSERT INTO node_session_counters (session_id, node_id, rx_bytes, tx_bytes) VALUES (@sessionId, @nodeId, @rx, @tx)
     ON CONFLICT (session_id) DO UPDATE SET rx_bytes = excluded.rx_bytes, tx_bytes = excluded.tx_bytes`,
  );
  return {
    reportSeq(nodeId: string): number {
      return (seqOf.get(nodeId) as { report_seq: number } | undefined)?.report_seq ?? 0;
    },
    setReportSeq(nodeId: string, seq: number): void {
      setSeq.run(seq, nodeId);
    },
    counters(sessionId: string): CumulativeCounters | null {
      const r = counters.get(sessionId) as { rx_bytes: number; tx_bytes: number } | undefined;
      return r ? { rxBytes: r.rx_bytes, txBytes: r.tx_bytes } : null;
    },
    saveCounters(sessionId: string, nodeId: string, c: CumulativeCounters): void {
      saveCounters.run({ sessionId, nodeId, rx: c.rxBytes, tx: c.txBytes });
    },
  };
}
