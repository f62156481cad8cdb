/**
 * `tunnelbyte serve`: the exit in one process (docs/contract.md §4) — the
 * WireGuard device on a TUN interface (on a worker thread of its own,
 * device-channel.ts), the /v1 API, the SQLite store.
 *
 * Start-up, in order: data dir and server key → SQLite (migrations) → the
 * node registered in its region (endpoint, exit addresses, pools) → TUN with
 * the pools' gateway addresses → UDP on the listen port → NAT and forwarding
 * (unless disabled) → the device's peers reconciled with the active sessions
 * → the API listening. Then every few seconds the node agent syncs: heartbeat,
 * counters into SQLite, expiry, reconcile. Shutdown undoes it in reverse and
 * flushes the counters once more.
 */
import type { Logger } from 'pino';
import type { ControlPlane } from '../control/control-plane.js';
import type { ApiListener } from './api-listener.js';
import { listenApi, openControlPlane, type ControlSettings } from './control-settings.js';
import type { NodeAgent } from '../control/services/node-agent.js';
import { DEFAULT_MTU } from '../protocol/constants.js';
import { DROP_REASONS } from '../protocol/messages.js';
import { DeviceWorker, type DeviceFigures } from './device-channel.js';
import { WorkerDataPlane } from './worker-data-plane.js';
import { configureInterface, detectDefaultRoute, hostAddresses, setupNat, type NatHandle } from './host-network.js';
import { canonicalPrefix, DestinationPolicy, REFUSED_BY_DEFAULT } from '../device/destination-policy.js';
import { loadOrCreateServerKey } from './server-key.js';
import { Gauge } from 'prom-client';
import { keyToBase64 } from '../crypto/wireguard-keys.js';

/** The control plane's settings (shared with `tunnelbyte control`) and the data plane's. */
export interface ServeOptions extends ControlSettings {
  listenPort: number;
  /** HOST[:PORT] for client configs; null: the default-route interface's address. */
  endpoint: string | null;
  /** Exit addresses for /v1/ip; empty: the default-route interface's addresses. */
  exitAddresses: string[];
  region: string;
  tun: string;
  pool4: string;
  /** null: the node's ULA /64 chosen at first start. */
  pool6: string | null;
  nat: boolean;
  /** Ranges opened inside the refused private and special ranges (`--allow-private`). */
  allowPrivate: string[];
  /** Seconds between syncs of counters and peers (docs/contract.md §4: at most 5 s). */
  syncIntervalS: number;
}

export class ExitServer {
  private timer: NodeJS.Timeout | null = null;
  private stopping: Promise<void> | null = null;
  /** What the device's destination policy was last built from: the host's addresses, the pools, --allow-private. */
  private policyFrom: { addresses: string[]; pools: string[]; allow: string[] } = { addresses: [], pools: [], allow: [] };

  private constructor(
    readonly control: ControlPlane,
    readonly device: DeviceWorker,
    readonly agent: NodeAgent,
    readonly http: ApiListener,
    readonly metricsListener: ApiListener,
    private readonly nat: NatHandle | null,
    private readonly log: Logger,
    readonly info: { publicKey: string; endpoint: string; apiUrl: string; metricsUrl: string; exitAddresses: string[]; interfaceAddresses: string[]; nodeId: string },
  ) {}

  static async start(o: ServeOptions, log: Logger): Promise<ExitServer> {
    const allow = o.allowPrivate.map(canonicalPrefix); // a malformed range stops the start before anything is made
    // The data directory first (0700, parents as needed): the key and the database both live in it,
    // and on a first run neither it nor /var/lib/tunnelbyte exists yet.
    const key = loadOrCreateServerKey(o.dataDir);
    const publicKey = keyToBase64(key.publicKey);
    const route = detectDefaultRoute();
    const exitAddresses = o.exitAddresses.length ? o.exitAddresses : [...route.addresses4, ...route.addresses6];
    const endpoint = endpointOf(o.endpoint, route, o.listenPort);
    const control = openControlPlane(o);
    const cleanups: (() => void)[] = [() => control.close()];
    const undo = () => {
      for (const f of cleanups.reverse()) {
        try {
          f();
        } catch {
          /* best effort while failing */
        }
      }
    };
    try {
      const { node, interfaceAddresses } = control.nodes.register({ regionId: o.region, publicKey, endpoint, exitAddresses, pool4: o.pool4, pool6: o.pool6 });
      const pools = [node.pool4, ...(node.pool6 ? [node.pool6] : [])];
      const addresses = hostAddresses();
      const policy = new DestinationPolicy({ own: [...addresses, ...pools], allow });
      // The device (TUN, UDP, crypto, timers) runs on a worker thread of its own: device-channel.ts says why.
      const device = await DeviceWorker.start({ tun: o.tun, mtu: DEFAULT_MTU, listenPort: o.listenPort, privateKey: key.privateKey, policy: policy.spec }, (e) => {
        if (e.event === 'apply-failed') log.error({ publicKey: e.publicKey, err: e.error }, 'the device could not apply a peer change');
        if (e.event === 'failed') log.error({ err: e.error }, 'the device thread failed');
      });
      key.privateKey.fill(0); // only the device needs it, and it has its copy
      cleanups.push(() => void device.close());
      const [gw4, p4] = interfaceAddresses[0]!.split('/');
      const [gw6, p6] = interfaceAddresses[1]?.split('/') ?? [null, '64'];
      configureInterface(device.tun, gw4!, Number(p4), gw6 ?? null, Number(p6), DEFAULT_MTU);
      for (const d of control.config.dns) {
        if (policy.refusesAddress(d)) log.warn({ dns: d }, 'a DNS resolver of the client configs is in a refused range: clients cannot reach it (open it with --allow-private)');
      }
      let nat: NatHandle | null = null;
      if (o.nat) {
        nat = setupNat({ tun: device.tun, pool4: node.pool4, pool6: node.pool6, refuse: REFUSED_BY_DEFAULT.map((r) => r.cidr), allow });
        cleanups.push(() => nat!.remove());
      }
      const agent = control.attachDataPlane(node.id, new WorkerDataPlane(device, publicKey), exitAddresses);
      const first = agent.sync();
      log.info({ peers: first.added.length, suspended: first.suspended.length }, 'active sessions restored');

      const { http, metricsListener, close } = await listenApi(control, o, log, (registry) => registerDeviceMetrics(registry, device));
      cleanups.push(() => void close());
      const s = new ExitServer(control, device, agent, http, metricsListener, nat, log, {
        publicKey,
        endpoint,
        apiUrl: http.url,
        metricsUrl: metricsListener.url,
        exitAddresses,
        interfaceAddresses,
        nodeId: node.id,
      });
      s.policyFrom = { addresses, pools, allow };
      s.timer = setInterval(() => s.sync(), o.syncIntervalS * 1000);
      device.onGone((reason) => {
        if (s.stopping) return; // our own close during shutdown
        log.error({ reason }, 'the device stopped; shutting down');
        void s.stop();
      });
      return s;
    } catch (e) {
      undo();
      throw e;
    }
  }

  /** SIGHUP: re-reads the API's certificate and key; open connections keep theirs. */
  reloadTls(): void {
    this.http.reloadTls();
  }

  private sync(): void {
    this.refreshPolicy();
    try {
      const r = this.agent.sync();
      if (r.added.length || r.removed.length || r.expired.length || r.failures.length) {
        this.log.info({ added: r.added.length, removed: r.removed.length, expired: r.expired.length, failures: r.failures.length }, 'peers reconciled');
      }
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'sync failed');
    }
    try {
      this.control.peerChannel.publishAll(); // nodes that joined this exit's API, if any
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'peer publishing failed');
    }
  }

  /**
   * The host's addresses change (DHCP, an operator's `ip addr add`): the
   * device's policy follows at the next sync, so a new address is refused
   * within one sync interval also without the firewall (--no-nat).
   */
  private refreshPolicy(): void {
    const now = hostAddresses();
    const { addresses, pools, allow } = this.policyFrom;
    if (now.join() === addresses.join()) return;
    this.device.post({ op: 'policy', spec: { own: [...now, ...pools], allow } });
    this.policyFrom = { addresses: now, pools, allow };
    this.log.info({ addresses: now.length }, 'host addresses changed: destination policy updated');
  }

  /** Flushes counters, closes the API, removes NAT and the interface, closes the database. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.timer) clearInterval(this.timer);
      this.sync();
      await Promise.all([this.http.close(), this.metricsListener.close()]);
      await this.device.close();
      this.nat?.remove();
      this.control.close();
      this.log.info('stopped');
    })();
    return this.stopping;
  }
}

function endpointOf(flag: string | null, route: ReturnType<typeof detectDefaultRoute>, listenPort: number): string {
  if (flag) {
    if (/^\[.*\]:\d+$/.test(flag) || /^[^:]+:\d+$/.test(flag)) return flag;
    return flag.includes(':') ? `[${flag}]:${listenPort}` : `${flag}:${listenPort}`;
  }
  const addr = route.addresses4[0] ?? route.addresses6[0];
  if (!addr) throw new Error('cannot tell the endpoint clients should use: no default-route address (use --endpoint HOST[:PORT])');
  return addr.includes(':') ? `[${addr}]:${listenPort}` : `${addr}:${listenPort}`;
}

/** Device figures on /metrics: peers, handshakes, bytes, drops by reason — one request to the device per scrape. */
function registerDeviceMetrics(registry: import('prom-client').Registry, device: DeviceWorker): void {
  let cached: { at: number; figures: DeviceFigures } | null = null;
  const figures = (): DeviceFigures => {
    const now = Date.now();
    if (!cached || now - cached.at > 500) cached = { at: now, figures: device.request('figures') };
    return cached.figures;
  };
  new Gauge({ name: 'tunnelbyte_device_peers', help: 'WireGuard peers on the device', registers: [registry], collect() {
    this.set(figures().peers);
  } });
  new Gauge({ name: 'tunnelbyte_device_peers_with_session', help: 'Peers with a current keypair (a completed handshake)', registers: [registry], collect() {
    this.set(figures().peersWithSession);
  } });
  new Gauge({ name: 'tunnelbyte_device_bytes', help: 'Bytes through the device since start, by direction', labelNames: ['direction'], registers: [registry], collect() {
    const f = figures();
    this.set({ direction: 'rx' }, f.rxBytes);
    this.set({ direction: 'tx' }, f.txBytes);
  } });
  new Gauge({ name: 'tunnelbyte_device_drops', help: 'Datagrams and packets dropped, by reason', labelNames: ['reason'], registers: [registry], collect() {
    const f = figures();
    for (const r of DROP_REASONS) this.set({ reason: r }, f.drops[r]);
  } });
}
