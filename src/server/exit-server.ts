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
 * flushes the counters once more. With --netstack there is no TUN and no
 * NAT: exit-data-plane.ts runs the device over the netstack instead.
 */
import type { Logger } from 'pino';
import type { ControlPlane } from '../control/control-plane.js';
import type { AddressInfo } from 'node:net';
import type { ApiListener } from './api-listener.js';
import { listenApi, openControlPlane, type ControlSettings } from './control-settings.js';
import type { NodeAgent } from '../control/services/node-agent.js';
import { ExitDataPlane, exitIdentity, type ExitOptions } from './exit-data-plane.js';

/** The control plane's settings (shared with `tunnelbyte control`) and the data plane's (shared with a joined node). */
export interface ServeOptions extends ControlSettings, ExitOptions {
  region: string;
}

export class ExitServer {
  private timer: NodeJS.Timeout | null = null;
  private stopping: Promise<void> | null = null;

  private constructor(
    readonly control: ControlPlane,
    readonly exit: ExitDataPlane,
    readonly agent: NodeAgent,
    readonly http: ApiListener,
    readonly metricsListener: ApiListener,
    private readonly log: Logger,
    readonly info: { publicKey: string; endpoint: string; apiUrl: string; metricsUrl: string; exitAddresses: string[]; interfaceAddresses: string[]; nodeId: string },
  ) {}

  static async start(o: ServeOptions, log: Logger): Promise<ExitServer> {
    const id = exitIdentity(o);
    const { publicKey, endpoint, exitAddresses } = id;
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
      const exit = await ExitDataPlane.start(id, { tun: o.tun, listenPort: o.listenPort, nat: o.nat, pool4: node.pool4, pool6: node.pool6, interfaceAddresses, netstack: o.netstack, ownTcpPorts: [o.apiPort, o.metricsPort], udpIdle: o.udpIdle }, log);
      cleanups.push(() => void exit.close());
      for (const d of control.config.dns) {
        if (exit.refusesAddress(d)) log.warn({ dns: d }, 'a DNS resolver of the client configs is in a refused range: clients cannot reach it (open it with --allow-private)');
      }
      const agent = control.attachDataPlane(node.id, exit.dataPlane, exitAddresses);
      const first = agent.sync();
      log.info({ peers: first.added.length, suspended: first.suspended.length }, 'active sessions restored');

      const { http, metricsListener, close } = await listenApi(control, o, log, (registry) => exit.registerMetrics(registry));
      cleanups.push(() => void close());
      exit.setOwnPorts([portOf(http), portOf(metricsListener)]);
      const s = new ExitServer(control, exit, agent, http, metricsListener, log, {
        publicKey,
        endpoint,
        apiUrl: http.url,
        metricsUrl: metricsListener.url,
        exitAddresses,
        interfaceAddresses,
        nodeId: node.id,
      });
      s.timer = setInterval(() => s.sync(), o.syncIntervalS * 1000);
      exit.onGone((reason) => {
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
    this.exit.refreshPolicy();
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

  /** Flushes counters, closes the API, removes NAT and the interface, closes the database. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.timer) clearInterval(this.timer);
      this.sync();
      await Promise.all([this.http.close(), this.metricsListener.close()]);
      await this.exit.close();
      this.control.close();
      this.log.info('stopped');
    })();
    return this.stopping;
  }
}

/** The port a listener got (the kernel's choice for a port of 0). */
function portOf(l: ApiListener): number {
  return (l.server.address() as AddressInfo).port;
}
