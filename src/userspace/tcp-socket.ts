/**
 * A TCP connection of the netstack as a Duplex stream with the parts of
 * net.Socket that HTTP and TLS clients use: 'connect'/'ready', remote and
 * local address fields, setNoDelay, setKeepAlive, setTimeout/'timeout',
 * end() for a half-close (FIN), destroy() to abort, bytesRead/bytesWritten,
 * ref/unref. Errors carry net.Socket's codes (ECONNREFUSED, ECONNRESET,
 * ETIMEDOUT) with syscall, address and port.
 *
 * A socket to a host *name* starts without a connection (tunnel.ts resolves
 * the name through the tunnel first, like net.connect's lookup step): writes,
 * end() and the socket options wait in it until attach() hands it the
 * connection; 'lookup' is emitted then, as net.Socket does.
 *
 * Backpressure both ways: _read() pulls from the connection's receive ring
 * (what the application has not read stays in the ring and closes the TCP
 * window), _write() hands bytes to the send buffer and completes when all of
 * them fit.
 */
import { Duplex } from 'node:stream';
import type { TcpConnection, TcpError } from '../netstack/tcp/connection.js';

/** Where a connection runs: its addresses as text (the four of net.Socket). */
export interface TunnelSocketEnds {
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
}

export interface TunnelSocketInit {
  /** The connection, or null while a host name is being resolved (attach() gives it later). */
  conn: TcpConnection | null;
  /** The stack's clock (for keepalive deadlines). */
  now: () => number;
  /** The addresses of `conn` (ignored while it is null). */
  ends: TunnelSocketEnds | null;
  /** Accepted (already connected) rather than connecting. */
  accepted: boolean;
  allowHalfOpen?: boolean;
}

const MESSAGES: Record<TcpError, string> = {
  ECONNREFUSED: 'connect ECONNREFUSED',
  ECONNRESET: 'read ECONNRESET',
  ETIMEDOUT: 'connect ETIMEDOUT',
  ECONNABORTED: 'ECONNABORTED',
};

export class TunnelSocket extends Duplex {
  /** Undefined until the connection exists (a host name not resolved yet), like net.Socket's. */
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  remoteFamily: 'IPv4' | 'IPv6' | undefined;
  localAddress: string | undefined;
  localPort: number | undefined;
  connecting: boolean;
  bytesRead = 0;
  private conn: TcpConnection | null = null;
  private readonly now: () => number;
  private wantData = false;
  private peerEnded = false;
  private endPushed = false;
  private blocked: { chunk: Buffer; off: number; cb: (e?: Error | null) => void } | null = null;
  private idleMs = 0;
  private idleTimer: NodeJS.Timeout | null = null;
  private written = 0;
  /** What the application asked for before the connection existed (a name being resolved). */
  private early: { shutdown: boolean; noDelay: boolean | null; keepAlive: [boolean, number] | null } = { shutdown: false, noDelay: null, keepAlive: null };

  constructor(init: TunnelSocketInit) {
    super({ allowHalfOpen: init.allowHalfOpen ?? false, decodeStrings: true });
    this.now = init.now;
    this.connecting = !init.accepted;
    if (init.conn && init.ends) this.bind(init.conn, init.ends);
  }

  /**
   * @internal Gives a socket opened to a host name its connection, once the name resolved to `ends.remoteAddress`;
   * what was written or ended meanwhile goes out now.
   */
  attach(conn: TcpConnection, ends: TunnelSocketEnds, host: string): void {
    if (this.conn) throw new Error('the socket already has a connection');
    this.bind(conn, ends);
    this.emit('lookup', null, ends.remoteAddress, this.remoteFamily === 'IPv6' ? 6 : 4, host);
    if (this.early.noDelay !== null) conn.noDelay = this.early.noDelay;
    if (this.early.keepAlive) conn.setKeepAlive(this.early.keepAlive[0], this.early.keepAlive[1], this.now());
    this.continueWrite();
    if (this.early.shutdown && !this.blocked) conn.shutdown();
    if (this.wantData) this.pull();
  }

  private bind(conn: TcpConnection, ends: TunnelSocketEnds): void {
    this.conn = conn;
    this.remoteAddress = ends.remoteAddress;
    this.remotePort = ends.remotePort;
    this.remoteFamily = ends.remoteAddress.includes(':') ? 'IPv6' : 'IPv4';
    this.localAddress = ends.localAddress;
    this.localPort = ends.localPort;
    conn.events = {
      onConnect: () => {
        if (!this.connecting) return;
        this.connecting = false;
        this.touch();
        this.emit('connect');
        this.emit('ready');
      },
      onReadable: () => this.pull(),
      onEnd: () => {
        this.peerEnded = true;
        this.pull();
      },
      onWritable: () => this.continueWrite(),
      onClose: (error) => {
        this.clearIdle();
        if (error !== null && error !== 'ECONNABORTED') {
          this.destroy(this.makeError(error));
          return;
        }
        // An orderly close: whatever the application has not read is still delivered first.
        if (this.blocked) {
          const p = this.blocked;
          this.blocked = null;
          p.cb(this.makeError('ECONNRESET'));
        }
        this.pull();
      },
    };
  }

  /** The underlying netstack connection (stats, negotiated options). */
  get connection(): TcpConnection {
    if (!this.conn) throw new Error('the socket has no connection yet (its host name is being resolved)');
    return this.conn;
  }

  get bytesWritten(): number {
    return this.written;
  }

  /** net.Socket#readyState. */
  get readyState(): 'opening' | 'open' | 'readOnly' | 'writeOnly' | 'closed' {
    if (this.connecting) return 'opening';
    if (this.destroyed) return 'closed';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }

  /** net.Socket#pending: not connected yet. */
  get pending(): boolean {
    return this.connecting;
  }

  override _read(): void {
    this.wantData = true;
    this.pull();
  }

  private pull(): void {
    if (!this.conn) return;
    while (this.wantData) {
      const b = this.conn.read(65536);
      if (b === null) break;
      this.bytesRead += b.length;
      this.touch();
      if (!this.push(b)) this.wantData = false;
    }
    const closed = this.conn.state.kind === 'closed' || this.conn.state.kind === 'time-wait';
    if ((this.peerEnded || closed) && this.conn.readableBytes === 0 && !this.endPushed) {
      this.endPushed = true;
      this.push(null);
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (!this.conn) {
      this.blocked = { chunk, off: 0, cb };
      return;
    }
    const n = this.conn.write(chunk, 0, chunk.length);
    this.written += n;
    this.touch();
    if (n === chunk.length) {
      cb();
      return;
    }
    const k = this.conn.state.kind;
    if (k === 'closed') {
      cb(this.makeError((this.conn.state as { error: TcpError | null }).error ?? 'ECONNRESET'));
      return;
    }
    this.blocked = { chunk, off: n, cb };
  }

  private continueWrite(): void {
    const p = this.blocked;
    if (!p || !this.conn) return;
    const n = this.conn.write(p.chunk, p.off, p.chunk.length - p.off);
    this.written += n;
    p.off += n;
    if (p.off === p.chunk.length) {
      this.blocked = null;
      p.cb();
    }
  }

  override _final(cb: (e?: Error | null) => void): void {
    if (this.conn) this.conn.shutdown();
    else this.early.shutdown = true;
    cb();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.clearIdle();
    const k = this.conn?.state.kind ?? 'closed';
    if (this.conn && k !== 'closed' && k !== 'time-wait') {
      // Like the kernel: close() when everything was read and written (FIN), abort (RST) otherwise.
      if (err || this.blocked || this.conn.readableBytes > 0 || this.conn.state.kind === 'syn-sent') this.conn.abort();
      else this.conn.close();
    }
    this.blocked = null;
    cb(err);
  }

  setNoDelay(noDelay = true): this {
    if (this.conn) this.conn.noDelay = noDelay;
    else this.early.noDelay = noDelay;
    return this;
  }

  setKeepAlive(enable = false, initialDelayMs = 0): this {
    if (this.conn) this.conn.setKeepAlive(enable, initialDelayMs, this.now());
    else this.early.keepAlive = [enable, initialDelayMs];
    return this;
  }

  /** net.Socket#setTimeout: 'timeout' after `ms` without reads or writes (0 turns it off). The socket stays open. */
  setTimeout(ms: number, cb?: () => void): this {
    this.idleMs = ms;
    if (cb) {
      if (ms === 0) this.removeListener('timeout', cb);
      else this.once('timeout', cb);
    }
    this.touch();
    return this;
  }

  /** net.Socket#address(): the local end ({} while a host name is being resolved, as net.Socket before it connects). */
  address(): { address: string; family: string; port: number } | Record<string, never> {
    if (!this.conn) return {};
    return { address: this.localAddress!, family: this.remoteFamily!, port: this.localPort! };
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  private touch(): void {
    if (this.idleMs <= 0) {
      this.clearIdle();
      return;
    }
    if (this.idleTimer) this.idleTimer.refresh();
    else {
      this.idleTimer = setTimeout(() => {
        this.idleTimer = null;
        this.emit('timeout');
      }, this.idleMs);
      this.idleTimer.unref();
    }
  }

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  private makeError(code: TcpError): NodeJS.ErrnoException {
    const e: NodeJS.ErrnoException & { address?: string; port?: number } = new Error(`${MESSAGES[code]} ${this.remoteAddress}:${this.remotePort}`);
    e.code = code;
    e.syscall = code === 'ECONNREFUSED' || (code === 'ETIMEDOUT' && this.connecting) ? 'connect' : 'read';
    e.address = this.remoteAddress;
    e.port = this.remotePort;
    return e;
  }
}
