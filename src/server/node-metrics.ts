/**
 * A joined node's own figures on its /metrics (`serve --join
 * --metrics-listen`, served beside the device's figures that
 * exit-data-plane.ts registers): how far its peers and its usage are in step
 * with the control plane. Each gauge is read from the node when scraped.
 *
 *   tunnelbyte_node_peer_revision             the channel revision of the peers applied (-1: none yet)
 *   tunnelbyte_node_channel_connected         1 while the peer stream is open, else 0
 *   tunnelbyte_node_reports_pending           usage reports on disk not yet acknowledged (0 or 1: one at a time)
 *   tunnelbyte_node_unreported_sessions       sessions whose counters the control plane has not acknowledged
 *   tunnelbyte_node_unreported_bytes          bytes counted here and not acknowledged (what a lost disk would lose)
 *   tunnelbyte_node_last_report_age_seconds   since the last report round that left nothing unacknowledged (-1: none since start)
 *   tunnelbyte_node_last_heartbeat_age_seconds since the last heartbeat the control plane answered (-1: none since start)
 */
import { Gauge, type Registry } from 'prom-client';

export interface NodeFigures {
  /** The revision of the applied peer set; null: never synced. */
  revision: number | null;
  channelConnected: boolean;
  backlog: { inFlight: boolean; sessions: number; bytes: number };
  /** Wall-clock ms of the last report round that ended with everything acknowledged; null: none since start. */
  lastReportOkMs: number | null;
  /** Wall-clock ms of the last answered heartbeat; null: none since start. */
  lastHeartbeatOkMs: number | null;
}

/** Registers the node's gauges; `figures` is read once per scrape, `wallMs` gives the ages. */
export function registerNodeMetrics(registry: Registry, figures: () => NodeFigures, wallMs: () => number): void {
  let cached: { scrape: number; f: NodeFigures } | null = null;
  // One read of the node (one SQLite query) per scrape, shared by the gauges below.
  const read = (): NodeFigures => {
    const now = wallMs();
    if (!cached || now - cached.scrape > 500) cached = { scrape: now, f: figures() };
    return cached.f;
  };
  const age = (at: number | null): number => (at === null ? -1 : Math.max(0, (wallMs() - at) / 1000));
  const gauge = (name: string, help: string, value: (f: NodeFigures) => number): void => {
    new Gauge({ name, help, registers: [registry], collect() {
      this.set(value(read()));
    } });
  };
  gauge('tunnelbyte_node_peer_revision', 'The control plane channel revision of the peer set applied on this node (-1: none applied yet)', (f) => f.revision ?? -1);
  gauge('tunnelbyte_node_channel_connected', '1 while the peer stream from the control plane is open, else 0', (f) => (f.channelConnected ? 1 : 0));
  gauge('tunnelbyte_node_reports_pending', 'Usage reports written to disk and not yet acknowledged by the control plane (one at a time)', (f) => (f.backlog.inFlight ? 1 : 0));
  gauge('tunnelbyte_node_unreported_sessions', 'Sessions whose counters on this node the control plane has not acknowledged', (f) => f.backlog.sessions);
  gauge('tunnelbyte_node_unreported_bytes', 'Bytes counted on this node that the control plane has not acknowledged', (f) => f.backlog.bytes);
  gauge('tunnelbyte_node_last_report_age_seconds', 'Seconds since the last usage report round that left nothing unacknowledged (-1: none since start)', (f) => age(f.lastReportOkMs));
  gauge('tunnelbyte_node_last_heartbeat_age_seconds', 'Seconds since the control plane last answered a heartbeat (-1: none since start)', (f) => age(f.lastHeartbeatOkMs));
}
