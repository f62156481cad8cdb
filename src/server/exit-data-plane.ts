/**
 * The exit's data plane, as both kinds of exit run it — the all-in-one
 * `serve` (exit-server.ts) and a node joined to a control plane
 * (joined-node.ts): the WireGuard device on a TUN interface on a worker
 * thread of its own (device-channel.ts), the pools' gateway addresses on
 * the interface, NAT and forwarding (unless disabled), and the destination
 * policy that refuses the host's own and private ranges (exposure policy),
 * kept current as the host's addresses change. The two exits differ only in
 * where the peers come from (SQLite in this process, or the control plane's
 * channel), so this part is written once.
 *
 * In two steps, because registration sits between them: exitIdentity()
 * gives what the node registers with (public key, endpoint, exit
 * addresses); ExitDataPlane.start() builds the device once the registration
 * has given the pools and the interface's addresses.
 *
 * With `netstack` (serve --netstack) the TUN, the addresses on it, NAT,
 * forwarding and the firewall table are all skipped: the device runs over
 * the netstack in forwarding mode and its forwarder relays the clients'
 * connections through the host's own sockets (netstack-exit/), so the exit
 * needs no root and no capabilities. Everything else is the same.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { Gauge } from 'prom-client';
import { keyToBase64 } from '../crypto/wireguard-keys.js';
import { canonicalPrefix, DestinationPolicy, REFUSED_BY_DEFAULT, type DestinationPolicySpec } from '../device/destination-policy.js';
import { DEFAULT_MTU } from '../protocol/constants.js';
import { ACCEPT_KINDS, DROP_REASONS } from '../protocol/messages.js';
import { DeviceWorker, type DeviceFigures } from './device-channel.js';
import { configureInterface, detectDefaultRoute, hostAddresses, setupNat, type NatHandle } from './host-network.js';
import { loadOrCreateServerKey } from './server-key.js';
import { WorkerDataPlane } from './worker-data-plane.js';
import { FORWARD_DROP_REASONS } from './netstack-exit/forwarder.js';

export interface ExitIdentityOptions {
  dataDir: string;
  listenPort: number;
  /** HOST[:PORT] for client configs; null: the default-route interface's address. */
  endpoint: string | null;
  /** Exit addresses for /v1/ip; empty: the default-route interface's addresses. */
  exitAddresses: string[];
  /** Ranges opened inside the refused private and special ranges (`--allow-private`). */
  allowPrivate: string[];
}

export interface ExitIdentity {
  /** The server key's private half: handed to the device, then zeroed. */
  privateKey: Uint8Array;
  publicKey: string;
  endpoint: string;
  exitAddresses: string[];
  /** --allow-private, canonical. */
  allow: string[];
}

/** The key (created on first start), endpoint and exit addresses of this exit; a malformed --allow-private throws first. */
export function exitIdentity(o: ExitIdentityOptions): ExitIdentity {
  const allow = o.allowPrivate.map(canonicalPrefix); // a malformed range stops the start before anything is made
  // The data directory first (0700, parents as needed): the key and the database both live in it,
  // and on a first run neither it nor /var/lib/tunnelbyte exists yet.
  const key = loadOrCreateServerKey(o.dataDir);
  const route = detectDefaultRoute();
  return {
    privateKey: key.privateKey,
    publicKey: keyToBase64(key.publicKey),
    endpoint: endpointOf(o.endpoint, route, o.listenPort),
    exitAddresses: o.exitAddresses.length ? o.exitAddresses : [...route.addresses4, ...route.addresses6],
    allow,
  };
}

/** The data plane's settings of either exit (serve's flags without the control plane's). */
export interface ExitOptions extends ExitIdentityOptions {
  tun: string;
  /** IPv4 pool for client addresses. */
  pool4: string;
  /** null: the node's ULA /64 chosen at first start. */
  pool6: string | null;
  nat: boolean;
  /** Seconds between syncs of counters and peers (docs/contract.md §4: at most 5 s). */
  syncIntervalS: number;
  /** The userspace exit: no TUN, no NAT (netstack-exit/). */
  netstack?: boolean;
  /** The netstack exit's UDP flow idle times (serve --udp-idle-timeout, --dns-idle-timeout); absent: the forwarder's defaults. */
  udpIdle?: UdpIdleTimes;
}

/** How long a netstack exit's UDP flow lives without a datagram either way (s): to port 53, and to anything else. */
export interface UdpIdleTimes {
  dnsS: number;
  otherS: number;
}

export interface ExitDataPlaneOptions {
  tun: string;
  listenPort: number;
  nat: boolean;
  pool4: string;
  pool6: string | null;
  /** The interface's own addresses in the pools, with prefixes (the registration's interface addresses). */
  interfaceAddresses: string[];
  /** The userspace exit (serve --netstack): the device over the netstack, no TUN, no NAT. */
  netstack?: boolean;
  /** The netstack exit's own TCP listeners as configured (API, metrics; 0s left out): refused from the start, before setOwnPorts. */
  ownTcpPorts?: number[];
  udpIdle?: UdpIdleTimes;
}

export class ExitDataPlane {
  private stopped = false;
  /** What the device's destination policy was last built from: the host's addresses, the pools, --allow-private. */
  private policyFrom: { addresses: string[]; pools: string[]; allow: string[]; netstack: boolean };

  private constructor(
    readonly device: DeviceWorker,
    /** The DataPlane over the device that the peers' source (NodeAgent or the joined node's agent) drives. */
    readonly dataPlane: WorkerDataPlane,
    private readonly policy: DestinationPolicy,
    private readonly nat: NatHandle | null,
    private readonly log: Logger,
    private readonly listenPort: number,
    policyFrom: { addresses: string[]; pools: string[]; allow: string[]; netstack: boolean },
  ) {
    this.policyFrom = policyFrom;
  }

  /** TUN + device worker, the interface's addresses, NAT; on failure removes what it made and throws. */
  static async start(id: ExitIdentity, o: ExitDataPlaneOptions, log: Logger): Promise<ExitDataPlane> {
    const pools = [o.pool4, ...(o.pool6 ? [o.pool6] : [])];
    const addresses = hostAddresses();
    const netstackOn = o.netstack === true;
    const policy = new DestinationPolicy(policySpec(addresses, pools, id.allow, netstackOn));
    // The exit's own listeners are refused by port from the start (a configured port of 0 once known: setOwnPorts).
    const ownPorts = { tcp: (o.ownTcpPorts ?? []).filter((p) => p > 0), udp: [o.listenPort] };
    const limits = o.udpIdle ? { dnsIdleMs: o.udpIdle.dnsS * 1000, udpIdleMs: o.udpIdle.otherS * 1000 } : {};
    const netstack = netstackOn ? { addresses: o.interfaceAddresses.map((a) => a.split('/')[0]!), ownPorts, limits } : null;
    // The device (TUN or netstack, UDP, crypto, timers) runs on a worker thread of its own: device-channel.ts says why.
    const device = await DeviceWorker.start({ tun: o.tun, netstack, mtu: DEFAULT_MTU, listenPort: o.listenPort, privateKey: id.privateKey, policy: policy.spec }, (e) => {
      if (e.event === 'apply-failed') log.error({ publicKey: e.publicKey, err: e.error }, 'the device could not apply a peer change');
      if (e.event === 'failed') log.error({ err: e.error }, 'the device thread failed');
    });
    id.privateKey.fill(0); // only the device needs it, and it has its copy
    let nat: NatHandle | null = null;
    try {
      if (netstack) {
        log.info(
          { echo: device.echo },
          device.echo === 'ping-socket'
            ? 'netstack exit: echo requests are relayed through an unprivileged ping socket'
            : "netstack exit: net.ipv4.ping_group_range does not include this process's group: only the gateway addresses answer echo requests",
        );
      } else {
        const [gw4, p4] = o.interfaceAddresses[0]!.split('/');
        const [gw6, p6] = o.interfaceAddresses[1]?.split('/') ?? [null, '64'];
        configureInterface(device.tun, gw4!, Number(p4), gw6 ?? null, Number(p6), DEFAULT_MTU);
        if (o.nat) nat = setupNat({ tun: device.tun, pool4: o.pool4, pool6: o.pool6, refuse: REFUSED_BY_DEFAULT.map((r) => r.cidr), allow: id.allow });
      }
    } catch (e) {
      await device.close();
      throw e;
    }
    return new ExitDataPlane(device, new WorkerDataPlane(device, id.publicKey), policy, nat, log, o.listenPort, { addresses, pools, allow: id.allow, netstack: netstackOn });
  }

  /** Whether the device refuses to forward to this address (a DNS resolver of the configs, say). */
  refusesAddress(address: string): boolean {
    return this.policy.refusesAddress(address);
  }

  /** The device stopped on its own (not by close()). */
  onGone(cb: (reason: string) => void): void {
    this.device.onGone((reason) => {
      if (!this.stopped) cb(reason);
    });
  }

  /**
   * The host's addresses change (DHCP, an operator's `ip addr add`): the
   * device's policy follows at the next sync, so a new address is refused
   * within one sync interval also without the firewall (--no-nat).
   */
  refreshPolicy(): void {
    const now = hostAddresses();
    const { addresses, pools, allow, netstack } = this.policyFrom;
    if (now.join() === addresses.join()) return;
    this.device.post({ op: 'policy', spec: policySpec(now, pools, allow, netstack) });
    this.policyFrom = { addresses: now, pools, allow, netstack };
    this.log.info({ addresses: now.length }, 'host addresses changed: destination policy updated');
  }

  /**
   * The netstack exit's own listeners (API, metrics) once they listen — a
   * port of 0 is the kernel's choice until then: its clients are refused
   * them on the host's addresses even where --allow-private opens loopback.
   */
  setOwnPorts(tcp: number[]): void {
    if (this.policyFrom.netstack) this.device.post({ op: 'own-ports', ports: { tcp, udp: [this.listenPort] } });
  }

  /** Device figures on /metrics: peers, handshakes, bytes, datagrams accepted by kind, drops by reason — one request to the device per scrape. */
  registerMetrics(registry: Registry): void {
    const device = this.device;
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
    new Gauge({
      name: 'tunnelbyte_device_accepted',
      help: 'Datagrams accepted since start, by kind: initiation (a handshake answered), response (a handshake this device began, completed), cookie-reply, data, keepalive',
      labelNames: ['kind'],
      registers: [registry],
      collect() {
        const f = figures();
        for (const k of ACCEPT_KINDS) this.set({ kind: k }, f.accepted[k]);
      },
    });
    if (!this.policyFrom.netstack) return;
    new Gauge({ name: 'tunnelbyte_netstack_relays', help: 'The netstack exit\'s live relays: TCP connections (pending included), TCP connects pending, UDP flows', labelNames: ['kind'], registers: [registry], collect() {
      const n = figures().netstack;
      if (!n) return;
      this.set({ kind: 'tcp' }, n.tcp);
      this.set({ kind: 'tcp-pending' }, n.pending);
      this.set({ kind: 'udp' }, n.udp);
    } });
    new Gauge({ name: 'tunnelbyte_netstack_opened', help: 'Host connections, UDP flows and echo requests the netstack exit opened since start', labelNames: ['kind'], registers: [registry], collect() {
      const n = figures().netstack;
      if (!n) return;
      for (const k of ['tcp', 'udp', 'echo'] as const) this.set({ kind: k }, n.opened[k]);
    } });
    new Gauge({ name: 'tunnelbyte_netstack_drops', help: 'What the netstack exit refused or dropped, by reason', labelNames: ['reason'], registers: [registry], collect() {
      const n = figures().netstack;
      if (!n) return;
      for (const r of FORWARD_DROP_REASONS) this.set({ reason: r }, n.drops[r]);
    } });
  }

  /** Closes the device (TUN and UDP go with it) and removes NAT and forwarding. */
  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.device.close();
    this.nat?.remove();
  }
}

/**
 * The destination policy's spec: the TUN exit refuses the host's addresses
 * always; the netstack exit lets --allow-private open them (destination-policy.ts
 * says why) and refuses its own listeners by port instead.
 */
function policySpec(addresses: string[], pools: string[], allow: string[], netstack: boolean): DestinationPolicySpec {
  return netstack ? { own: pools, host: addresses, allow } : { own: [...addresses, ...pools], allow };
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
