/**
 * The tunnelbyte-wg daemon: one WireGuard interface on a TUN device, its UDP
 * socket, and the UAPI socket at /var/run/wireguard/IFNAME.sock — the
 * contract of wireguard-go (docs/contract.md §3).
 *
 * It stops (removing the socket, closing the TUN so the kernel deletes the
 * interface) on stop(), when the interface is deleted, and when the socket
 * file is removed or replaced.
 */
import { mkdirSync, statSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { DeviceRuntime } from '../device/runtime.js';
import { UapiError, UapiSession, UAPI_EADDRINUSE, type UapiTarget } from '../device/uapi.js';
import type { TunDevice, UdpBind } from '../io/types.js';
import type { WgLogger } from './wg-log.js';

export const SOCKET_DIR = '/var/run/wireguard';

/** A bind that can set SO_MARK on its socket (fwmark, for policy routing as wg-quick sets up). */
export type MarkableBind = UdpBind & { setMark?(mark: number): void };

export interface WgPlatform {
  /** Creates the TUN interface (named exactly `name`). */
  openTun(name: string): TunDevice;
  /** Binds UDP on `port` (0: any) for IPv4 and IPv6; throws with code EADDRINUSE when taken. */
  openBind(port: number): MarkableBind;
}

export interface WgDaemonOptions {
  ifname: string;
  platform: WgPlatform;
  log: WgLogger;
  socketDir?: string;
}

/** Is something accepting connections on this UNIX socket path? */
function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export class WgDaemon {
  readonly socketPath: string;
  private runtime: DeviceRuntime | null = null;
  private server: Server | null = null;
  private readonly conns = new Set<Socket>();
  private watch: NodeJS.Timeout | null = null;
  private socketIno = 0;
  private fwmarkValue = 0;
  private stopped = false;
  private readonly stopCbs: ((reason: string) => void)[] = [];

  private constructor(private readonly opts: WgDaemonOptions) {
    this.socketPath = `${opts.socketDir ?? SOCKET_DIR}/${opts.ifname}.sock`;
  }

  /** Creates the interface and the UAPI socket; resolves once both exist and the socket accepts connections. */
  static async start(opts: WgDaemonOptions): Promise<WgDaemon> {
    const d = new WgDaemon(opts);
    await d.init();
    return d;
  }

  private async init(): Promise<void> {
    const { ifname, platform, log } = this.opts;
    if (!/^[A-Za-z0-9_=+.-]{1,15}$/.test(ifname)) throw new Error(`invalid interface name: ${ifname}`);
    const dir = this.socketPath.slice(0, this.socketPath.lastIndexOf('/'));
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    if (await socketInUse(this.socketPath)) throw new Error(`UAPI socket ${this.socketPath} is in use by another process`);
    try {
      unlinkSync(this.socketPath); // a stale socket is replaced
    } catch {
      /* none */
    }

    const tun = platform.openTun(ifname);
    log.verbose(`Interface ${tun.name} created`);
    const runtime = new DeviceRuntime({ tun, bind: platform.openBind(0) });
    this.runtime = runtime;
    tun.onClose((reason) => {
      log.verbose(`Interface closed (${reason})`);
      this.stop('interface deleted');
    });

    const target: UapiTarget = {
      device: runtime.device,
      listenPort: () => runtime.currentBind()?.port() ?? 0,
      setListenPort: (port) => {
        if (runtime.currentBind()?.port() === port) return;
        let bind: MarkableBind;
        try {
          bind = platform.openBind(port);
          if (this.fwmarkValue !== 0) bind.setMark?.(this.fwmarkValue);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          throw new UapiError(code === 'EADDRINUSE' ? UAPI_EADDRINUSE : -5, `failed to set listen_port: ${(e as Error).message}`);
        }
        runtime.setBind(bind);
        log.verbose(`UDP bind updated: port ${bind.port()}`);
      },
      fwmark: () => this.fwmarkValue,
      setFwmark: (m) => {
        (runtime.currentBind() as MarkableBind | null)?.setMark?.(m);
        this.fwmarkValue = m;
      },
      isUp: () => runtime.up,
    };

    const oldUmask = process.umask(0o077);
    try {
      this.server = createServer((sock) => this.serve(sock, target));
      await new Promise<void>((resolve, reject) => {
        this.server!.once('error', reject);
        this.server!.listen(this.socketPath, () => resolve());
      });
    } finally {
      process.umask(oldUmask);
    }
    this.server.on('error', (e) => log.error(`UAPI server error: ${e.message}`));
    this.socketIno = statSync(this.socketPath).ino;
    log.verbose('UAPI listener started');
    // wireguard-go exits when its socket file goes away; so do we.
    this.watch = setInterval(() => {
      let ino = 0;
      try {
        ino = statSync(this.socketPath).ino;
      } catch {
        /* removed */
      }
      if (ino !== this.socketIno) this.stop('UAPI socket removed');
    }, 250);
  }

  private serve(sock: Socket, target: UapiTarget): void {
    this.conns.add(sock);
    sock.setEncoding('latin1');
    const session = new UapiSession(target, (e) => this.opts.log.error(`IPC error ${e.errno}: ${e.message}`));
    sock.on('data', (chunk: string) => {
      const reply = session.feed(chunk);
      if (reply) sock.write(reply);
      // Closed after a protocol error or an oversized set: write the reply, then stop reading a client that keeps sending.
      if (session.closed) sock.destroySoon();
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => this.conns.delete(sock));
  }

  get device() {
    return this.runtime!.device;
  }

  onStop(cb: (reason: string) => void): void {
    this.stopCbs.push(cb);
  }

  stop(reason = 'stopped'): void {
    if (this.stopped) return;
    this.stopped = true;
    this.opts.log.verbose(`Shutting down: ${reason}`);
    if (this.watch) clearInterval(this.watch);
    for (const c of this.conns) c.destroy();
    this.server?.close();
    try {
      if (statSync(this.socketPath).ino === this.socketIno) unlinkSync(this.socketPath);
    } catch {
      /* already gone */
    }
    this.runtime?.close();
    for (const cb of this.stopCbs) cb(reason);
  }
}
