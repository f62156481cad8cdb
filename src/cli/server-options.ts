/**
 * What `tunnelbyte serve` and `tunnelbyte control` share on the command line:
 * the options of the control plane (data directory, API listener, TLS,
 * metrics, DNS, tiers, signup, log level) with their environment variables
 * and defaults (docs/contract.md §4), and how either server runs: the data
 * directory's lock, a start failure as one line and exit status 1,
 * SIGTERM/SIGINT to stop, SIGHUP to reload the certificate.
 */
import { Command, Option } from 'commander';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { DATABASE_FILE, resolveDataDir } from '../control/paths.js';
import type { ControlSettings } from '../server/control-settings.js';
import type { DataDir } from '../server/data-dir.js';
export function hostPort(v: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(v);
  if (!m || Number(m[3]) > 65535) throw new Error(`expected HOST:PORT, got ${v}`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port: Number(m[3]) };
}

export function port(v: string): number {
  if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) throw new Error(`not a port: ${v}`);
  return Number(v);
}

/** "10GiB", "500MiB", "1e9", "unlimited" → bytes (null = no cap). */
export function parseBytes(v: string): number | null {
  if (v === 'unlimited' || v === 'none') return null;
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$/i.exec(v.trim());
  if (!m) throw new Error(`not a size: ${v} (e.g. 10GiB, 500MB, 1000000, unlimited)`);
  const units: Record<string, number> = { b: 1, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12 };
  return Math.round(Number(m[1]) * units[(m[2] ?? 'b').toLowerCase()]!);
}

export function count(v: string): number {
  if (!/^\d{1,6}$/.test(v)) throw new Error(`not a count: ${v}`);
  return Number(v);
}

/** --node-timeout (serve, control, admin): whole seconds, 3 to 3600. */
export function nodeTimeoutSeconds(v: string): number {
  const s = Number(v);
  if (!(/^\d{1,4}$/.test(v) && s >= 3 && s <= 3600)) throw new Error('--node-timeout must be 3..3600 seconds');
  return s;
}

export const list = (v: string | undefined): string[] => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : []);


/** The help text after the options of serve and control: billing's variables. */
export const BILLING_HELP = '\nBilling is off unless STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET are set (STRIPE_PRICE_ID optional).\n';

/** Adds the control plane's options to a server command (serve, control). */
export function addControlPlaneOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--data <dir>', 'state directory: SQLite file and server key (default: /var/lib/tunnelbyte as root, else the user data dir)').env('TB_DATA'))
    .addOption(new Option('--api-listen <host:port>', 'address of the HTTP API').env('TB_API_LISTEN').default('0.0.0.0:8080'))
    .addOption(new Option('--tls-cert <file>', 'PEM certificate (chain) for the API: with --tls-key it listens HTTPS only; re-read on SIGHUP').env('TB_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', 'PEM private key of --tls-cert').env('TB_TLS_KEY'))
    .addOption(new Option('--metrics-listen <host:port>', 'address of GET /metrics (Prometheus); not served on the API listener').env('TB_METRICS_LISTEN').default('127.0.0.1:9090'))
    .addOption(new Option('--dns <ip,...>', 'DNS servers written into client configs').env('TB_DNS'))
    .addOption(new Option('--trust-proxy', 'honour X-Forwarded-For (only behind a trusted reverse proxy; env TB_TRUST_PROXY=1)'))
    .addOption(new Option('--sync-interval <s>', 'seconds between counter flushes, expiry and peer reconciles (1-5)').env('TB_SYNC_INTERVAL').default('5'))
    .addOption(new Option('--node-timeout <s>', 'seconds without a heartbeat after which a node is down: no new sessions on it, its region unlisted when it was the last (3-3600)').env('TB_NODE_TIMEOUT').default('60'))
    .addOption(new Option('--anonymous-quota <size>', 'data per calendar month for anonymous accounts (e.g. 10GiB, unlimited)').env('TB_ANONYMOUS_QUOTA').default('10GiB'))
    .addOption(new Option('--anonymous-sessions <n>', 'active sessions per anonymous account').env('TB_ANONYMOUS_SESSIONS').default('1'))
    .addOption(new Option('--paid-quota <size>', 'data per calendar month for paid accounts').env('TB_PAID_QUOTA').default('unlimited'))
    .addOption(new Option('--paid-sessions <n>', 'active sessions per paid account').env('TB_PAID_SESSIONS').default('5'))
    .addOption(new Option('--anonymous-signup <mode>', 'open: anyone may sign up (5 per source address per hour); closed: no new anonymous accounts').env('TB_ANONYMOUS_SIGNUP').choices(['open', 'closed']).default('open'))
    .addOption(new Option('--log-level <level>', 'pino log level').env('TB_LOG_LEVEL').default('info'));
}

export type ParsedOptions = Record<string, string | string[] | boolean | undefined>;

/** The control plane's settings from the options of addControlPlaneOptions (throws on a malformed value). */
export function controlSettingsOf(o: ParsedOptions, env: NodeJS.ProcessEnv): Omit<ControlSettings, 'dataDir'> & { syncIntervalS: number } {
  const api = hostPort(String(o.apiListen));
  const metricsAt = hostPort(String(o.metricsListen));
  const certFile = o.tlsCert as string | undefined;
  const keyFile = o.tlsKey as string | undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) throw new Error('--tls-cert and --tls-key go together');
  const syncIntervalS = Number(o.syncInterval);
  if (!(syncIntervalS >= 1 && syncIntervalS <= 5)) throw new Error('--sync-interval must be 1..5 seconds');
  const nodeTimeoutS = nodeTimeoutSeconds(String(o.nodeTimeout));
  // serve's own node heartbeats once per sync: a shorter timeout would mark it down between two syncs.
  if (nodeTimeoutS <= syncIntervalS) throw new Error('--node-timeout must be longer than --sync-interval');
  return {
    apiHost: api.host,
    apiPort: api.port,
    tls: certFile && keyFile ? { certFile, keyFile } : null,
    metricsHost: metricsAt.host,
    metricsPort: metricsAt.port,
    dns: list(o.dns as string | undefined),
    trustProxy: o.trustProxy === true || env.TB_TRUST_PROXY === '1',
    anonymousSignup: o.anonymousSignup === 'closed' ? 'closed' : 'open',
    nodeStaleAfterMs: nodeTimeoutS * 1000,
    tiers: {
      anonymous: { quotaBytes: parseBytes(String(o.anonymousQuota)), maxSessions: count(String(o.anonymousSessions)) },
      paid: { quotaBytes: parseBytes(String(o.paidQuota)), maxSessions: count(String(o.paidSessions)) },
    },
    env,
    syncIntervalS,
  };
}

export interface RunningServer {
  readonly http: { readonly secure: boolean };
  reloadTls(): void;
  stop(): Promise<void>;
}

/**
 * Runs a server on the data directory until SIGTERM/SIGINT: takes the
 * directory's lock first (one server per directory), starts it, and on a
 * failed start removes what the start created, prints one line naming the
 * fix and sets exit status 1. Returns the server and its data directory,
 * or null when it did not start.
 */
export async function runServer<S extends RunningServer>(
  name: string,
  o: ParsedOptions,
  log: Logger,
  start: (dataDir: string) => Promise<S>,
): Promise<{ server: S; dataDir: string } | null> {
  const [{ openDataDir }, { describeStartFailure }] = await Promise.all([import('../server/data-dir.js'), import('../server/start-error.js')]);
  const dataDir = resolveDataDir({ flag: o.data as string | undefined });
  let data: DataDir | null = null;
  let server: S;
  try {
    data = openDataDir(dataDir); // before anything else: the lock keeps a second server off this directory
    server = await start(dataDir);
  } catch (e) {
    data?.discardNew();
    process.stderr.write(`tunnelbyte ${name}: ${describeStartFailure(e, join(dataDir, DATABASE_FILE))}\n`);
    process.exitCode = 1;
    return null;
  }
  process.once('exit', () => data.release());
  let signals = 0;
  const onSignal = (sig: string) => {
    if (++signals > 1) process.exit(1);
    log.info({ signal: sig }, 'shutting down');
    void server.stop().then(() => {
      data.release();
      process.exit(0);
    });
  };
  process.on('SIGHUP', () => {
    try {
      server.reloadTls();
      // Plain HTTP and a joined node (no API listener) have no certificate: say so rather than "reloaded".
      if (server.http.secure) log.info({ tls: true }, 'SIGHUP: certificate reloaded');
      else log.info({ tls: false }, 'SIGHUP: no certificate to reload (the API is plain HTTP, or this process has none)');
    } catch (e) {
      log.error({ err: (e as Error).message }, 'SIGHUP: certificate not reloaded, the old one stays');
    }
  });
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  return { server, dataDir };
}
