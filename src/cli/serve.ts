/**
 * `tunnelbyte serve`: the all-in-one exit — the control plane's options
 * (server-options.ts, shared with `tunnelbyte control`) plus the data
 * plane's, then the exit server until SIGTERM/SIGINT. With `--join URL` the
 * same data plane runs as a node of the control plane at URL instead
 * (server/joined-node.ts): no API of its own, peers and usage over the
 * control plane's node channel.
 */
import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { bannerLines, bannerOf } from './serve-banner.js';
import { addControlPlaneOptions, BILLING_HELP, controlSettingsOf, list, port, runServer, type ParsedOptions } from './server-options.js';

export function registerServeCommand(program: Command): void {
  const cmd = program
    .command('serve')
    .description('run the VPN exit: WireGuard on a TUN interface (needs root) or on a userspace stack (--netstack, needs nothing), the /v1 API and the SQLite store');
  addControlPlaneOptions(cmd)
    .addOption(new Option('--listen-port <n>', 'WireGuard UDP port (IPv4 and IPv6)').env('TB_LISTEN_PORT').default('51820'))
    .addOption(new Option('--endpoint <host[:port]>', 'what client configs put in Endpoint (default: the default-route address)').env('TB_ENDPOINT'))
    .addOption(new Option('--exit-address <ip...>', 'addresses traffic leaves from, for /v1/ip (default: the default-route addresses); env: comma-separated').env('TB_EXIT_ADDRESSES'))
    .addOption(new Option('--region <id>', 'region of this node').env('TB_REGION').default('local'))
    .addOption(new Option('--tun <name>', 'TUN interface name').env('TB_TUN').default('tb0'))
    .addOption(new Option('--pool <cidr>', 'IPv4 pool for client addresses').env('TB_POOL').default('10.64.0.0/10'))
    .addOption(new Option('--pool6 <cidr>', 'IPv6 pool (default: a random ULA /64 fixed at first start)').env('TB_POOL6'))
    .addOption(new Option('--no-nat', 'do not set up masquerading NAT and IP forwarding (env TB_NAT=0)'))
    .addOption(new Option('--allow-private <cidr...>', 'let clients reach these private/special ranges (a LAN behind the exit); env: comma-separated').env('TB_ALLOW_PRIVATE'))
    .addOption(new Option('--netstack', 'userspace exit: no TUN, no NAT, no root — clients\' connections are relayed through this host\'s own sockets (env TB_NETSTACK=1)'))
    .addOption(new Option('--udp-idle-timeout <s>', '(--netstack) seconds a relayed UDP flow (QUIC among them) lives without a datagram either way before its host socket is closed (1-86400)').env('TB_UDP_IDLE_TIMEOUT').default('120'))
    .addOption(new Option('--dns-idle-timeout <s>', '(--netstack) the same for UDP flows to port 53 (1-86400)').env('TB_DNS_IDLE_TIMEOUT').default('30'))
    .addOption(new Option('--join <url>', 'run as an exit node of the control plane at this API URL (tunnelbyte control): no API here, peers and usage over its node channel').env('TB_JOIN'))
    .addOption(new Option('--node-token <token>', 'one-time enrollment token for the first --join (tunnelbyte admin node token); later starts use the credential kept in --data').env('TB_NODE_TOKEN'))
    .addOption(new Option('--ca <file>', 'PEM of the CA to trust for an https --join URL (its certificate is still verified)').env('TB_CA'))
    .addOption(new Option('--heartbeat-interval <s>', 'seconds between a joined node\'s heartbeats (1-60)').env('TB_HEARTBEAT_INTERVAL').default('15'))
    .addHelpText(
      'after',
      BILLING_HELP + 'Every flag also reads the environment variable shown; TB_NAT=0 equals --no-nat, TB_TRUST_PROXY=1 equals --trust-proxy.',
    )
    .action(async (o: ParsedOptions) => {
      // The server (device, Koa, SQLite, pino) is imported when serve runs, not when the CLI starts.
      const [{ createLogger }, { ExitServer }] = await Promise.all([import('../control/http/logger.js'), import('../server/exit-server.js')]);
      const log = createLogger({ level: String(o.logLevel) });
      process.exitCode = 0;
      const env = process.env;
      const exits = Array.isArray(o.exitAddress) ? o.exitAddress.flatMap((x) => list(x)) : list(o.exitAddress as string | undefined);
      const allowPrivate = Array.isArray(o.allowPrivate) ? o.allowPrivate.flatMap((x) => list(x)) : list(o.allowPrivate as string | undefined);
      const netstack = o.netstack === true || env.TB_NETSTACK === '1';
      const settings = controlSettingsOf(o, env); // malformed flags fail here, before the data directory is touched
      const udpIdle = { dnsS: idleSeconds('--dns-idle-timeout', String(o.dnsIdleTimeout)), otherS: idleSeconds('--udp-idle-timeout', String(o.udpIdleTimeout)) };
      if (netstack) {
        // What only the TUN exit has: refused rather than silently ignored.
        const tunOnly = [cmd.getOptionValueSource('tun') !== 'default' ? '--tun (TB_TUN)' : null, o.nat === false || env.TB_NAT === '0' ? '--no-nat (TB_NAT=0)' : null].filter((f) => f !== null);
        if (tunOnly.length > 0) {
          process.stderr.write(`tunnelbyte serve: ${tunOnly.join(' and ')} only apply to the TUN exit; --netstack has no interface and no NAT to configure\n`);
          process.exitCode = 2;
          return;
        }
      } else {
        // The TUN exit's UDP mappings are the kernel's conntrack (its own timeouts, net.netfilter.nf_conntrack_udp_timeout*).
        const netstackOnly = [['udpIdleTimeout', '--udp-idle-timeout (TB_UDP_IDLE_TIMEOUT)'], ['dnsIdleTimeout', '--dns-idle-timeout (TB_DNS_IDLE_TIMEOUT)']].filter(([k]) => cmd.getOptionValueSource(k!) !== 'default').map(([, f]) => f);
        if (netstackOnly.length > 0) {
          process.stderr.write(`tunnelbyte serve: ${netstackOnly.join(' and ')} only apply to --netstack; the TUN exit's UDP mappings are the kernel's conntrack\n`);
          process.exitCode = 2;
          return;
        }
        if (process.geteuid?.() !== 0) log.warn('not running as root: creating the TUN interface will probably fail (or use --netstack)');
      }
      const exit = {
        listenPort: port(String(o.listenPort)),
        endpoint: (o.endpoint as string | undefined) ?? null,
        exitAddresses: exits,
        tun: String(o.tun),
        pool4: String(o.pool),
        pool6: (o.pool6 as string | undefined) ?? null,
        nat: o.nat !== false && env.TB_NAT !== '0',
        allowPrivate,
        syncIntervalS: settings.syncIntervalS,
        netstack,
        udpIdle,
      };
      if (o.join !== undefined) return joinControlPlane(o, { ...exit, metricsHost: settings.metricsHost, metricsPort: settings.metricsPort }, log);
      const started = await runServer('serve', o, log, (dataDir) => ExitServer.start({ ...settings, ...exit, dataDir, region: String(o.region) }, log));
      if (!started) return;
      const { server, dataDir } = started;
      const facts = { endpoint: server.info.endpoint, apiListenUrl: server.info.apiUrl, region: String(o.region), dataFlag: o.data ? dataDir : null };
      if (process.stdout.isTTY) process.stdout.write(bannerLines(facts).join('\n') + '\n');
      else {
        const { api: apiUrl, next } = bannerOf(facts);
        log.info({ endpoint: server.info.endpoint, api: apiUrl, apiListen: server.info.apiUrl, metrics: server.info.metricsUrl, region: facts.region, next, publicKey: server.info.publicKey, exitAddresses: server.info.exitAddresses, tunAddresses: server.info.interfaceAddresses }, 'tunnelbyte exit running');
      }
    });
}

/** `serve --join URL`: this exit as a node of the control plane at URL, until SIGTERM/SIGINT or its credential is refused. */
async function joinControlPlane(o: ParsedOptions, exit: Omit<import('../server/exit-data-plane.js').ExitOptions, 'dataDir'> & { metricsHost: string; metricsPort: number }, log: import('pino').Logger): Promise<void> {
  const heartbeatIntervalS = Number(o.heartbeatInterval);
  if (!(Number.isInteger(heartbeatIntervalS) && heartbeatIntervalS >= 1 && heartbeatIntervalS <= 60)) throw new Error('--heartbeat-interval must be 1..60 seconds');
  let ca: Buffer | null = null;
  if (o.ca !== undefined) {
    try {
      ca = readFileSync(String(o.ca));
    } catch (e) {
      throw new Error(`cannot read the CA file ${String(o.ca)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (--ca / TB_CA takes a PEM file)`);
    }
  }
  const { JoinedNode } = await import('../server/joined-node.js');
  const started = await runServer('serve', o, log, (dataDir) =>
    JoinedNode.start(
      {
        ...exit,
        dataDir,
        joinUrl: String(o.join),
        nodeToken: (o.nodeToken as string | undefined) ?? null,
        ca,
        heartbeatIntervalS,
        onRefused: (message) => {
          process.stderr.write(`tunnelbyte serve: ${message}\n`);
          process.exit(1);
        },
      },
      log,
    ),
  );
  if (!started) return;
  const i = started.server.info;
  log.info({ node: i.nodeId, control: i.controlUrl, state: i.state, metrics: i.metricsUrl, endpoint: i.endpoint, publicKey: i.publicKey, exitAddresses: i.exitAddresses, tunAddresses: i.interfaceAddresses, restoredPeers: i.restoredPeers }, 'tunnelbyte exit node running');
}

/** --udp-idle-timeout, --dns-idle-timeout: whole seconds, 1 to 86400. */
function idleSeconds(flag: string, v: string): number {
  const s = Number(v);
  if (!(/^\d{1,5}$/.test(v) && s >= 1 && s <= 86_400)) throw new Error(`${flag} must be 1..86400 seconds`);
  return s;
}
