/**
 * What `tunnelbyte serve` and `tunnelbyte control` share: the control plane
 * on the data directory's SQLite file, built from the same settings, and its
 * API served the same way (the /v1 listener, HTTPS when given a certificate,
 * and /metrics on a listener of its own). The exit adds a data plane on top;
 * the control plane alone (issue 16) does not.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { billingConfigFromEnv, controlConfig } from '../control/config.js';
import { createControlPlane, type ControlPlane } from '../control/control-plane.js';
import { createApp } from '../control/http/app.js';
import { createMetrics, metricsRequestListener } from '../control/http/metrics.js';
import { databasePath } from '../control/paths.js';
import { ApiListener, type TlsFiles } from './api-listener.js';

export interface ControlSettings {
  dataDir: string;
  apiHost: string;
  apiPort: number;
  /** HTTPS only, with this certificate and key (reloaded by reloadTls / SIGHUP); null: plain HTTP. */
  tls: TlsFiles | null;
  /** Where GET /metrics is served (not on the API listener). */
  metricsHost: string;
  metricsPort: number;
  dns: string[];
  trustProxy: boolean;
  /** Anonymous signup open to anyone (limited per source) or closed (--anonymous-signup). */
  anonymousSignup: 'open' | 'closed';
  /** A node with no heartbeat for this long is down (--node-timeout): not placed on, its region unlisted when it was the last. */
  nodeStaleAfterMs: number;
  /** Tier limits that differ from the defaults (docs/contract.md §5). */
  tiers: { anonymous: { quotaBytes?: number | null; maxSessions?: number }; paid: { quotaBytes?: number | null; maxSessions?: number } };
  env: NodeJS.ProcessEnv;
}

/** Opens (creating and migrating) the data directory's database as a control plane with these settings. */
export function openControlPlane(s: ControlSettings): ControlPlane {
  return createControlPlane({
    dbPath: databasePath(s.dataDir),
    config: controlConfig({ dns: s.dns, trustProxy: s.trustProxy, billing: billingConfigFromEnv(s.env), tiers: s.tiers, signupLimit: { mode: s.anonymousSignup }, nodeStaleAfterMs: s.nodeStaleAfterMs }),
  });
}

export interface ApiListeners {
  http: ApiListener;
  metricsListener: ApiListener;
  close(): Promise<void>;
}

/**
 * Serves the /v1 app and /metrics. `addMetrics` registers figures of the
 * caller's own (the exit's device) before the first scrape.
 */
export async function listenApi(control: ControlPlane, s: ControlSettings, log: Logger, addMetrics?: (registry: Registry) => void): Promise<ApiListeners> {
  const metrics = createMetrics(control);
  addMetrics?.(metrics.registry);
  const app = createApp({ control, logger: log, metrics, hsts: s.tls !== null });
  const http = await ApiListener.listen(app.callback(), s.apiHost, s.apiPort, s.tls);
  let metricsListener: ApiListener;
  try {
    metricsListener = await ApiListener.listen(metricsRequestListener(metrics), s.metricsHost, s.metricsPort, null);
  } catch (e) {
    await http.close();
    throw e;
  }
  return { http, metricsListener, close: async () => void (await Promise.all([http.close(), metricsListener.close()])) };
}
