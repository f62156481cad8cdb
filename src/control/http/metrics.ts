/**
 * Prometheus metrics, served by `metricsRequestListener` on a listener of
 * their own (`serve --metrics-listen`, default 127.0.0.1:9090), never on the
 * API's: the API faces the internet, the figures are for the operator. In a
 * registry of the app's own:
 * requests by method, route template and status, their durations, and
 * gauges read from SQLite at scrape time (active sessions, accounts by
 * tier, active nodes), the SQLite time of node reports, plus the process's
 * default metrics.
 */
import type { RequestListener } from 'node:http';
import { Counter, Gauge, Histogram, Registry, Summary, collectDefaultMetrics } from 'prom-client';
import type { ControlPlane } from '../control-plane.js';
import { TIERS } from '../config.js';

export interface ApiMetrics {
  registry: Registry;
  observe(method: string, route: string, status: number, seconds: number): void;
}

export function createMetrics(control: ControlPlane, opts: { defaultMetrics?: boolean } = {}): ApiMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'tunnelbyte_http_requests_total',
    help: 'API requests by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'tunnelbyte_http_request_duration_seconds',
    help: 'API request durations',
    labelNames: ['method', 'route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  new Gauge({
    name: 'tunnelbyte_sessions_active',
    help: 'Active sessions',
    registers: [registry],
    collect() {
      this.set(control.store.sessions.countActive());
    },
  });
  new Gauge({
    name: 'tunnelbyte_accounts',
    help: 'Accounts by tier',
    labelNames: ['tier'] as const,
    registers: [registry],
    collect() {
      const counts = control.store.accounts.countByTier();
      for (const t of TIERS) this.set({ tier: t }, counts[t]);
    },
  });
  // The SQLite side of the fleet's reports (bench --fleet reads it): quantiles from the start of the process.
  const reportWrites = new Summary({
    name: 'tunnelbyte_node_report_write_seconds',
    help: 'Time a node report (heartbeat, usage) spent in its SQLite reads and writes, reports answered 200 only',
    labelNames: ['kind'] as const,
    percentiles: [0.5, 0.9, 0.99],
    registers: [registry],
  });
  control.nodeReports.onReportTimed((kind, seconds) => reportWrites.observe({ kind }, seconds));
  new Gauge({
    name: 'tunnelbyte_regions_active',
    help: 'Regions with at least one active node',
    registers: [registry],
    collect() {
      this.set(control.regions.listActive().length);
    },
  });
  return {
    registry,
    observe(method, route, status, seconds) {
      requests.inc({ method, route, status: String(status) });
      duration.observe({ method, route }, seconds);
    },
  };
}

/** GET /metrics (Prometheus text) of `registry` (the API's, or a joined node's); any other path or method a JSON 404 / 405. */
export function metricsRequestListener(metrics: Pick<ApiMetrics, 'registry'>): RequestListener {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, error: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
      res.end(JSON.stringify({ error }));
    };
    if (path !== '/metrics') return json(404, 'not found (this listener serves GET /metrics only)');
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, 'method not allowed', { allow: 'GET, HEAD' });
    metrics.registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      () => json(503, 'metrics unavailable'),
    );
  };
}
