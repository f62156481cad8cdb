/**
 * `tunnelbyte control`: the control plane alone — the /v1 API, /metrics and
 * the SQLite store, with no WireGuard device, TUN or NAT (issue 16, roles).
 * Exit nodes elsewhere join it with an enrollment token. Its own periodic
 * work is what belongs to no node: expiring idle sessions (a node's agent
 * does that too in the all-in-one exit; expiring twice is harmless, the
 * UPDATE only matches active sessions) and publishing each joined node's
 * peer set (services/peer-channel.ts), which also ends the peer streams of
 * revoked nodes.
 */
import type { Logger } from 'pino';
import type { ControlPlane } from '../control/control-plane.js';
import type { ApiListener } from './api-listener.js';
import { listenApi, openControlPlane, type ApiListeners, type ControlSettings } from './control-settings.js';

export interface ControlServeOptions extends ControlSettings {
  /** Seconds between expiry passes (1-5, as serve's --sync-interval). */
  syncIntervalS: number;
}

export class ControlServer {
  private timer: NodeJS.Timeout | null = null;
  private stopping: Promise<void> | null = null;

  private constructor(
    readonly control: ControlPlane,
    private readonly listeners: ApiListeners,
    private readonly log: Logger,
  ) {}

  get http(): ApiListener {
    return this.listeners.http;
  }

  get info(): { apiUrl: string; metricsUrl: string } {
    return { apiUrl: this.listeners.http.url, metricsUrl: this.listeners.metricsListener.url };
  }

  static async start(o: ControlServeOptions, log: Logger): Promise<ControlServer> {
    const control = openControlPlane(o);
    let listeners: ApiListeners;
    try {
      listeners = await listenApi(control, o, log);
    } catch (e) {
      control.close();
      throw e;
    }
    const s = new ControlServer(control, listeners, log);
    s.timer = setInterval(() => s.tick(), o.syncIntervalS * 1000);
    return s;
  }

  /** SIGHUP: re-reads the API's certificate and key; open connections keep theirs. */
  reloadTls(): void {
    this.listeners.http.reloadTls();
  }

  /** One tick: expiry, then every joined node's peer set published (quotas of a new period, other processes' writes). */
  private tick(): void {
    try {
      const expired = this.control.sessions.expireDue();
      if (expired.length) this.log.info({ expired: expired.length }, 'sessions expired');
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'expiry failed');
    }
    try {
      this.control.peerChannel.publishAll();
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'peer publishing failed');
    }
  }

  /** Closes the listeners, then the database. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.timer) clearInterval(this.timer);
      await this.listeners.close();
      this.control.close();
      this.log.info('stopped');
    })();
    return this.stopping;
  }
}
