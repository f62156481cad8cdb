/**
 * A WireGuard tunnel without a kernel interface: the kernel-free test
 * environment. One object composes
 *
 *   the netstack (src/netstack/)  ⇄  NetstackTun  ⇄  the WireGuard Device  ⇄  a plain UDP socket
 *
 * so a program with no privileges can open TCP connections and UDP sockets
 * *inside* a WireGuard network described by wg-quick text: the addresses of
 * [Interface] are the netstack's own, [Peer]s are configured on the device
 * through the same UAPI code `wg set` uses.
 *
 * Scheduling: the stack's flushes and timers are netstack/stack-scheduler.ts's
 * (a microtask to flush work the application queued, a timer at the stack's
 * next deadline); the stack's packets reach the device from setImmediate
 * (never re-entering it).
 */
import { EventEmitter } from 'node:events';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { Agent, fetch as undiciFetch, type RequestInit, type Response } from 'undici';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { keyToHex } from '../crypto/wireguard-keys.js';
import { DeviceRuntime } from '../device/runtime.js';
import { uapiSet } from '../device/uapi.js';
import { formatIPv4, formatIPv6, formatPrefix, parseIPv4, parseIPv6 } from '../io/ip-address.js';
import { openLinuxUdpBind } from '../io/linux/udp.js';
import type { UdpBind } from '../io/types.js';
import { Stack, type TcpListener, type UdpSocket } from '../netstack/stack.js';
import type { TcpConnection } from '../netstack/tcp/connection.js';
import type { TcpOptions } from '../netstack/tcp/options.js';
import { NetstackTun } from '../netstack/tun-adapter.js';
import { StackScheduler } from '../netstack/stack-scheduler.js';
import { resolveName } from './dns.js';
import { TunnelSocket, type TunnelSocketEnds } from './tcp-socket.js';
import { DEFAULT_TUNNEL_MTU, parseWgQuick, type WgQuickConfig } from './wg-quick.js';

export interface TunnelStartOptions {
  /** wg-quick text (or an already parsed config). */
  config: string | WgQuickConfig;
  /** The UDP socket WireGuard uses (default: a new dual-stack socket on the config's ListenPort or any port). */
  bind?: UdpBind;
  /** TCP buffer sizes and timers of the netstack. */
  tcp?: Partial<TcpOptions>;
  /** TLS options for HTTPS through fetch() (e.g. `ca` for a private CA); servername and the socket are set per request. */
  tls?: ConnectionOptions;
}

export interface ConnectOptions {
  port: number;
  host: string;
  allowHalfOpen?: boolean;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  timeout?: number;
}

export interface TunnelServer {
  readonly port: number;
  close(): void;
}

export interface RemoteInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
  size: number;
}

/** A UDP socket inside the tunnel, shaped like dgram.Socket's common part: 'message' (msg, rinfo), send, close. */
export class TunnelUdpSocket extends EventEmitter {
  private sock: UdpSocket | null;

  /** @internal */
  constructor(bindTo: (onMessage: (data: Buffer, address: string, port: number) => void) => UdpSocket) {
    super();
    this.sock = bindTo((data, address, port) =>
      this.emit('message', data, { address, family: address.includes(':') ? 'IPv6' : 'IPv4', port, size: data.length } satisfies RemoteInfo),
    );
  }

  address(): { port: number } {
    if (!this.sock) throw Object.assign(new Error('Not running'), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
    return { port: this.sock.port };
  }

  /** Sends one datagram to address:port (IP literals); the callback gets an error when it cannot go. */
  send(msg: Uint8Array | string, port: number, address: string, cb?: (err: Error | null) => void): void {
    const data = typeof msg === 'string' ? Buffer.from(msg) : msg;
    let err: Error | null = null;
    if (!this.sock) err = Object.assign(new Error('Not running'), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
    else if (!this.sock.send(data, address, port)) err = Object.assign(new Error(`cannot send to ${address}:${port} (not an IP of a configured family, or larger than the MTU)`), { code: 'EINVAL' });
    if (cb) queueMicrotask(() => cb(err));
    else if (err) queueMicrotask(() => this.emit('error', err));
  }

  close(cb?: () => void): void {
    this.sock?.close();
    this.sock = null;
    queueMicrotask(() => {
      this.emit('close');
      cb?.();
    });
  }
}

export class Tunnel {
  readonly config: WgQuickConfig;
  readonly stack: Stack;
  readonly runtime: DeviceRuntime;
  readonly tun: NetstackTun;
  private readonly scheduler = new StackScheduler();
  private closed = false;
  private readonly sockets = new Set<TunnelSocket>();
  private dispatcher: Agent | null = null;

  private constructor(config: WgQuickConfig, bind: UdpBind, tcp: Partial<TcpOptions> | undefined, private readonly tlsOptions: ConnectionOptions) {
    this.config = config;
    const mtu = config.mtu ?? DEFAULT_TUNNEL_MTU;
    this.tun = new NetstackTun({ mtu, defer: (fn) => setImmediate(fn) });
    this.stack = new Stack({
      addresses: config.addresses,
      mtu,
      clock: { now: () => performance.now() },
      sink: this.tun,
      tcp,
      wake: this.scheduler.wake,
      onDeadline: this.scheduler.onDeadline,
    });
    this.scheduler.attach(this.stack);
    this.tun.attach(this.stack);
    this.runtime = new DeviceRuntime({ tun: this.tun, bind, privateKey: config.privateKey, mtu });
  }

  /** Starts a tunnel from wg-quick text: resolves peer endpoints, binds UDP, configures the device. */
  static async start(opts: TunnelStartOptions): Promise<Tunnel> {
    if (typeof opts !== 'object' || opts === null) throw new TypeError('Tunnel.start needs { config }');
    const config = typeof opts.config === 'string' ? parseWgQuick(opts.config) : opts.config;
    const endpoints = await Promise.all(config.peers.map((p) => (p.endpoint ? resolveEndpoint(p.endpoint) : Promise.resolve(null))));
    const bind = opts.bind ?? openLinuxUdpBind({ port: config.listenPort ?? 0 });
    let t: Tunnel;
    try {
      t = new Tunnel(config, bind, opts.tcp, opts.tls ?? {});
    } catch (e) {
      bind.close();
      throw e;
    }
    const lines: string[] = [];
    config.peers.forEach((p, i) => {
      lines.push(`public_key=${keyToHex(p.publicKey)}`);
      if (p.presharedKey) lines.push(`preshared_key=${keyToHex(p.presharedKey)}`);
      if (endpoints[i]) lines.push(`endpoint=${endpoints[i]}`);
      if (p.persistentKeepalive > 0) lines.push(`persistent_keepalive_interval=${p.persistentKeepalive}`);
      for (const a of p.allowedIps) lines.push(`allowed_ip=${formatPrefix(a.family, a.address, a.cidr)}`);
    });
    uapiSet(
      {
        device: t.runtime.device,
        listenPort: () => bind.port(),
        setListenPort: () => {},
        fwmark: () => 0,
        setFwmark: () => {},
        isUp: () => true,
      },
      lines,
    );
    return t;
  }

  /** The UDP port WireGuard listens on. */
  get listenPort(): number {
    return this.runtime.currentBind()?.port() ?? 0;
  }

  /**
   * A TCP connection through the tunnel, like net.connect: `host` is an IP literal, or a name resolved
   * with tunnel.resolve (the config's DNS, over the tunnel; never the host's resolver) before the SYN —
   * the first address of a family the tunnel has an address of is used, 'lookup' is emitted as
   * net.Socket does, and a name that does not resolve fails with net.connect's error (ENOTFOUND, syscall getaddrinfo).
   */
  connect(port: number, host: string): TunnelSocket;
  connect(options: ConnectOptions): TunnelSocket;
  connect(a: number | ConnectOptions, b?: string): TunnelSocket {
    const o: ConnectOptions = typeof a === 'object' ? a : { port: a, host: b ?? '' };
    this.assertOpen();
    if (typeof o.host !== 'string' || o.host === '') throw new TypeError(`connect needs a host (an IP address or a name), got ${JSON.stringify(o.host)}`);
    if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new RangeError(`port must be 1..65535, got ${o.port}`);
    let s: TunnelSocket;
    if (isIP(o.host) !== 0) s = this.wrap(this.stack.connect(o.host, o.port), false, o.allowHalfOpen);
    else {
      s = this.wrap(null, false, o.allowHalfOpen);
      this.connectByName(s, o.host, o.port);
    }
    if (o.noDelay) s.setNoDelay(true);
    if (o.keepAlive) s.setKeepAlive(true, o.keepAliveInitialDelay ?? 0);
    if (o.timeout) s.setTimeout(o.timeout);
    this.scheduler.onDeadline();
    return s;
  }

  /** Resolves `host` through the tunnel, then opens the connection of the pending socket `s`. */
  private connectByName(s: TunnelSocket, host: string, port: number): void {
    const fail = (code: string, syscall: string, message: string): void => {
      if (!s.destroyed) s.destroy(Object.assign(new Error(message), { code, syscall, hostname: host }));
    };
    this.resolve(host).then(
      (addrs) => {
        if (s.destroyed || this.closed) return;
        const ip = addrs.find((a) => this.stack.localFor((parseIPv4(a) ?? parseIPv6(a))!) !== null);
        if (ip === undefined) {
          fail('ENETUNREACH', 'connect', `connect ENETUNREACH ${host} (${addrs.join(', ')}): the tunnel has no address of that family`);
          return;
        }
        let conn: TcpConnection;
        try {
          conn = this.stack.connect(ip, port);
        } catch (e) {
          fail('EADDRNOTAVAIL', 'connect', `connect ${host} (${ip}): ${(e as Error).message}`);
          return;
        }
        s.attach(conn, this.ends(conn), host);
        this.scheduler.onDeadline();
      },
      (e: Error & { code?: string }) => fail(e.code ?? 'ENOTFOUND', 'getaddrinfo', e.message),
    );
  }

  /** Accepts TCP connections to `port` on the tunnel's addresses (inbound through the peer). */
  listen(port: number, onConnection: (socket: TunnelSocket) => void, opts: { allowHalfOpen?: boolean } = {}): TunnelServer {
    this.assertOpen();
    const l: TcpListener = this.stack.listen(port, (conn) => onConnection(this.wrap(conn, true, opts.allowHalfOpen)));
    return { port, close: () => l.close() };
  }

  /** A UDP socket inside the tunnel on `port` (0 or omitted: an ephemeral port). */
  udp(opts: { port?: number } = {}): TunnelUdpSocket {
    this.assertOpen();
    return new TunnelUdpSocket((onMessage) => this.stack.udpBind(opts.port ?? 0, onMessage));
  }

  /** IPv4 then IPv6 addresses of `name`, asked of the config's DNS servers through the tunnel (an IP literal is returned as is). */
  resolve(name: string): Promise<string[]> {
    this.assertOpen();
    return resolveName({ exchange: (server, query, timeoutMs) => this.exchange(server, query, timeoutMs) }, this.config.dns, name);
  }

  /**
   * fetch() through the tunnel (undici's fetch with an Agent whose connector opens TunnelSockets with
   * tunnel.connect, so names are resolved through the tunnel; HTTPS runs TLS over the tunnel socket).
   */
  fetch(url: string | URL, init: RequestInit = {}): Promise<Response> {
    this.assertOpen();
    return undiciFetch(url, { ...init, dispatcher: this.agent() });
  }

  /** The undici Agent behind fetch(), for other undici calls (request, stream, a custom fetch). */
  agent(): Agent {
    this.assertOpen();
    this.dispatcher ??= new Agent({
      connect: (o, cb) => {
        const port = Number(o.port) || (o.protocol === 'https:' ? 443 : 80);
        const host = o.hostname.startsWith('[') ? o.hostname.slice(1, -1) : o.hostname;
        let sock: TunnelSocket;
        try {
          sock = this.connect(port, host);
        } catch (e) {
          cb(e as Error, null);
          return;
        }
        const fail = (e: Error) => cb(e, null);
        if (o.protocol !== 'https:') {
          sock.once('error', fail);
          sock.once('connect', () => {
            sock.removeListener('error', fail);
            cb(null, sock as never);
          });
          return;
        }
        const tls = tlsConnect({ ...this.tlsOptions, socket: sock as never, servername: isIP(host) ? undefined : (o.servername ?? host), ALPNProtocols: ['http/1.1'] });
        tls.once('error', fail);
        tls.once('secureConnect', () => {
          tls.removeListener('error', fail);
          cb(null, tls);
        });
      },
    });
    return this.dispatcher;
  }

  /** One DNS exchange over a fresh tunnel UDP socket (a new random source port per query). */
  private exchange(server: string, query: Uint8Array, timeoutMs: number): Promise<Buffer | null> {
    return new Promise((resolve) => {
      const u = this.udp();
      const timer = setTimeout(() => done(null), timeoutMs);
      const done = (r: Buffer | null) => {
        clearTimeout(timer);
        u.close();
        resolve(r);
      };
      u.on('message', (m: Buffer, r: RemoteInfo) => {
        if (r.address === server && r.port === 53) done(m);
      });
      u.send(query, 53, server, (err) => {
        if (err) done(null);
      });
    });
  }

  /** Ends everything: open connections are reset, the UDP socket closed, the device's keys erased. */
  close(): void {
    if (this.closed) return;
    void this.dispatcher?.destroy().catch(() => {});
    for (const s of this.sockets) s.destroy();
    this.stack.flush();
    this.closed = true;
    this.tun.close();
    this.scheduler.close();
    this.runtime.close();
  }

  private ends(conn: TcpConnection): TunnelSocketEnds {
    const fmt = (b: Uint8Array) => (b.length === 4 ? formatIPv4(b) : formatIPv6(b));
    return { remoteAddress: fmt(conn.remote), remotePort: conn.remotePort, localAddress: fmt(conn.local), localPort: conn.localPort };
  }

  private wrap(conn: TcpConnection | null, accepted: boolean, allowHalfOpen: boolean | undefined): TunnelSocket {
    const s = new TunnelSocket({
      conn,
      now: () => performance.now(),
      ends: conn ? this.ends(conn) : null,
      accepted,
      allowHalfOpen,
    });
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
    return s;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the tunnel is closed');
  }
}

async function resolveEndpoint(ep: string): Promise<string> {
  const close = ep.lastIndexOf(':');
  let host = ep.slice(0, close);
  const port = ep.slice(close + 1);
  if (host.startsWith('[')) host = host.slice(1, -1);
  if (isIP(host)) return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  const { address, family } = await lookup(host);
  return family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}
