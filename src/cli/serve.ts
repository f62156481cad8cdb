/**
 * `tunnelbyte serve`: flags, their environment variables and embedded
 * defaults (docs/contract.md §4), then the exit server until SIGTERM/SIGINT.
 */
import { Command, Option } from 'commander';
import { join } from 'node:path';
import { DATABASE_FILE, resolveDataDir } from '../control/paths.js';
import type { DataDir } from '../server/data-dir.js';
import { bannerLines, bannerOf } from './serve-banner.js';

function hostPort(v: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(v);
  if (!m || Number(m[3]) > 65535) throw new Error(`expected HOST:PORT, got ${v}`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port: Number(m[3]) };
}

function port(v: string): number {
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

function count(v: string): number {
  if (!/^\d{1,6}$/.test(v)) throw new Error(`not a count: ${v}`);
  return Number(v);
}

const list = (v: string | undefined): string[] => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : []);

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the VPN exit: WireGuard on a TUN interface, the /v1 API and the SQLite store (needs root)')
    .addOption(new Option('--data <dir>', 'state directory: SQLite file and server key (default: /var/lib/tunnelbyte as root, else the user data dir)').env('TB_DATA'))
    .addOption(new Option('--api-listen <host:port>', 'address of the HTTP API').env('TB_API_LISTEN').default('0.0.0.0:8080'))
    .addOption(new Option('--tls-cert <file>', 'PEM certificate (chain) for the API: with --tls-key it listens HTTPS only; re-read on SIGHUP').env('TB_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', 'PEM private key of --tls-cert').env('TB_TLS_KEY'))
    .addOption(new Option('--metrics-listen <host:port>', 'address of GET /metrics (Prometheus); not served on the API listener').env('TB_METRICS_LISTEN').default('127.0.0.1:9090'))
    .addOption(new Option('--listen-port <n>', 'WireGuard UDP port (IPv4 and IPv6)').env('TB_LISTEN_PORT').default('51820'))
    .addOption(new Option('--endpoint <host[:port]>', 'what client configs put in Endpoint (default: the default-route address)').env('TB_ENDPOINT'))
    .addOption(new Option('--exit-address <ip...>', 'addresses traffic leaves from, for /v1/ip (default: the default-route addresses); env: comma-separated').env('TB_EXIT_ADDRESSES'))
    .addOption(new Option('--region <id>', 'region of this node').env('TB_REGION').default('local'))
    .addOption(new Option('--tun <name>', 'TUN interface name').env('TB_TUN').default('tb0'))
    .addOption(new Option('--pool <cidr>', 'IPv4 pool for client addresses').env('TB_POOL').default('10.64.0.0/10'))
    .addOption(new Option('--pool6 <cidr>', 'IPv6 pool (default: a random ULA /64 fixed at first start)').env('TB_POOL6'))
    .addOption(new Option('--dns <ip,...>', 'DNS servers written into client configs').env('TB_DNS'))
    .addOption(new Option('--no-nat', 'do not set up masquerading NAT and IP forwarding (env TB_NAT=0)'))
    .addOption(new Option('--allow-private <cidr...>', 'let clients reach these private/special ranges (a LAN behind the exit); env: comma-separated').env('TB_ALLOW_PRIVATE'))
    .addOption(new Option('--trust-proxy', 'honour X-Forwarded-For (only behind a trusted reverse proxy; env TB_TRUST_PROXY=1)'))
    .addOption(new Option('--sync-interval <s>', 'seconds between counter flushes and peer reconciles (1-5)').env('TB_SYNC_INTERVAL').default('5'))
    .addOption(new Option('--anonymous-quota <size>', 'data per calendar month for anonymous accounts (e.g. 10GiB, unlimited)').env('TB_ANONYMOUS_QUOTA').default('10GiB'))
    .addOption(new Option('--anonymous-sessions <n>', 'active sessions per anonymous account').env('TB_ANONYMOUS_SESSIONS').default('1'))
    .addOption(new Option('--paid-quota <size>', 'data per calendar month for paid accounts').env('TB_PAID_QUOTA').default('unlimited'))
    .addOption(new Option('--paid-sessions <n>', 'active sessions per paid account').env('TB_PAID_SESSIONS').default('5'))
    .addOption(new Option('--anonymous-signup <mode>', 'open: anyone may sign up (5 per source address per hour); closed: no new anonymous accounts').env('TB_ANONYMOUS_SIGNUP').choices(['open', 'closed']).default('open'))
    .addOption(new Option('--log-level <level>', 'pino log level').env('TB_LOG_LEVEL').default('info'))
    .addHelpText(
      'after',
      '\nBilling is off unless STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET are set (STRIPE_PRICE_ID optional).\n' +
        'Every flag also reads the environment variable shown; TB_NAT=0 equals --no-nat, TB_TRUST_PROXY=1 equals --trust-proxy.',
    )
    .action(async (o: Record<string, string | string[] | boolean | undefined>) => {
      // The server (device, Koa, SQLite, pino) is imported when serve runs, not when the CLI starts.
      const [{ createLogger }, { ExitServer }, { openDataDir }, { describeStartFailure }] = await Promise.all([
        import('../control/http/logger.js'),
        import('../server/exit-server.js'),
        import('../server/data-dir.js'),
        import('../server/start-error.js'),
      ]);
      const log = createLogger({ level: String(o.logLevel) });
      process.exitCode = 0;
      const env = process.env;
      const api = hostPort(String(o.apiListen));
      const metricsAt = hostPort(String(o.metricsListen));
      const certFile = o.tlsCert as string | undefined;
      const keyFile = o.tlsKey as string | undefined;
      if ((certFile === undefined) !== (keyFile === undefined)) throw new Error('--tls-cert and --tls-key go together');
      const exits = Array.isArray(o.exitAddress) ? o.exitAddress.flatMap((x) => list(x)) : list(o.exitAddress as string | undefined);
      const allowPrivate = Array.isArray(o.allowPrivate) ? o.allowPrivate.flatMap((x) => list(x)) : list(o.allowPrivate as string | undefined);
      const syncIntervalS = Number(o.syncInterval);
      if (!(syncIntervalS >= 1 && syncIntervalS <= 5)) throw new Error('--sync-interval must be 1..5 seconds');
      if (process.geteuid?.() !== 0) log.warn('not running as root: creating the TUN interface will probably fail');
      const dataDir = resolveDataDir({ flag: o.data as string | undefined });
      let data: DataDir | null = null;
      let server: Awaited<ReturnType<typeof ExitServer.start>>;
      try {
        data = openDataDir(dataDir); // before anything else: the lock keeps a second serve off this directory
        server = await ExitServer.start(
          {
            dataDir,
            apiHost: api.host,
            apiPort: api.port,
            tls: certFile && keyFile ? { certFile, keyFile } : null,
            metricsHost: metricsAt.host,
            metricsPort: metricsAt.port,
            listenPort: port(String(o.listenPort)),
            endpoint: (o.endpoint as string | undefined) ?? null,
            exitAddresses: exits,
            region: String(o.region),
            tun: String(o.tun),
            pool4: String(o.pool),
            pool6: (o.pool6 as string | undefined) ?? null,
            dns: list(o.dns as string | undefined),
            nat: o.nat !== false && env.TB_NAT !== '0',
            allowPrivate,
            trustProxy: o.trustProxy === true || env.TB_TRUST_PROXY === '1',
            syncIntervalS,
            anonymousSignup: o.anonymousSignup === 'closed' ? 'closed' : 'open',
            tiers: {
              anonymous: { quotaBytes: parseBytes(String(o.anonymousQuota)), maxSessions: count(String(o.anonymousSessions)) },
              paid: { quotaBytes: parseBytes(String(o.paidQuota)), maxSessions: count(String(o.paidSessions)) },
            },
            env,
          },
          log,
        );
      } catch (e) {
        data?.discardNew();
        process.stderr.write(`tunnelbyte serve: ${describeStartFailure(e, join(dataDir, DATABASE_FILE))}\n`);
        process.exitCode = 1;
        return;
      }
      process.once('exit', () => data.release());
      const facts = { endpoint: server.info.endpoint, apiListenUrl: server.info.apiUrl, region: String(o.region), dataFlag: o.data ? dataDir : null };
      if (process.stdout.isTTY) process.stdout.write(bannerLines(facts).join('\n') + '\n');
      else {
        const { api: apiUrl, next } = bannerOf(facts);
        log.info({ endpoint: server.info.endpoint, api: apiUrl, apiListen: server.info.apiUrl, metrics: server.info.metricsUrl, region: facts.region, next, publicKey: server.info.publicKey, exitAddresses: server.info.exitAddresses, tunAddresses: server.info.interfaceAddresses }, 'tunnelbyte exit running');
      }
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
          log.info({ tls: server.http.secure }, 'SIGHUP: certificate reloaded');
        } catch (e) {
          log.error({ err: (e as Error).message }, 'SIGHUP: certificate not reloaded, the old one stays');
        }
      });
      process.on('SIGTERM', () => onSignal('SIGTERM'));
      process.on('SIGINT', () => onSignal('SIGINT'));
    });
}
