/**
 * One relayed TCP connection of the netstack exit: the client's connection
 * in the netstack (a TcpConnection) joined to the host's net.Socket to the
 * real destination, bytes both ways with backpressure, half-close and reset
 * carried across.
 *
 *   host → client  socket 'data' → conn.write(); what the send buffer does
 *                  not take waits (one chunk at most) and the socket is
 *                  paused until onWritable
 *   client → host  onReadable → conn.read() → socket.write(); when the socket
 *                  buffers (write() false) reading stops until 'drain', so
 *                  the bytes stay in the netstack's receive buffer and the
 *                  advertised window closes (RFC 9293 §3.8.6: flow control
 *                  reaches the client)
 *   FIN            the client's (onEnd) becomes socket.end() once every byte
 *                  before it is written; the host's ('end') becomes
 *                  conn.shutdown() once every byte before it is queued
 *   RST            the client's reset (onClose with an error) resets the
 *                  host socket (resetAndDestroy: a RST, not a FIN); a host
 *                  socket error aborts the client's connection with a RST
 *
 * So each direction holds at most the netstack's bounded buffers plus one
 * socket chunk, whatever the speeds of the two ends.
 */
import type { Socket } from 'node:net';
import type { TcpConnection, TcpError, TcpEvents } from '../../netstack/tcp/connection.js';

/** Bytes taken from the netstack per read (one socket write each). */
const READ_CHUNK = 65536;

export class TcpRelay implements TcpEvents {
  /** Host bytes the client's send buffer did not take yet. */
  private toClient: Buffer | null = null;
  private hostEnded = false;
  private clientEnded = false;
  private waitingDrain = false;
  private done = false;
  /** Bytes relayed, for the exit's figures. */
  bytesToHost = 0;
  bytesToClient = 0;

  constructor(
    private readonly conn: TcpConnection,
    private readonly sock: Socket,
    /** Called once when both sides are gone. */
    private readonly onDone: () => void,
  ) {
    // The relay itself is the connection's event sink: its methods, not five closures and an object per connection.
    conn.events = this;
    sock.on('data', (chunk: Buffer) => {
      this.bytesToClient += chunk.length;
      this.toClient = chunk;
      this.pumpToClient();
    });
    sock.on('end', () => {
      this.hostEnded = true;
      this.pumpToClient();
    });
    sock.on('drain', () => {
      this.waitingDrain = false;
      this.pumpToHost();
    });
    sock.on('error', () => {
      // ECONNRESET and the like: the client hears a RST too.
      conn.abort();
      this.finish();
    });
    sock.on('close', () => {
      if (!this.hostEnded || !this.clientEnded) conn.abort();
      this.finish();
    });
    this.pumpToHost();
  }

  onConnect(): void {}

  onReadable(): void {
    this.pumpToHost();
  }

  onEnd(): void {
    this.clientEnded = true;
    this.pumpToHost();
  }

  onWritable(): void {
    this.pumpToClient();
  }

  onClose(error: TcpError | null): void {
    this.clientClosed(error);
  }

  private pumpToClient(): void {
    const c = this.toClient;
    if (c !== null) {
      const n = this.conn.write(c);
      if (n < c.length) {
        this.toClient = c.subarray(n);
        this.sock.pause();
        return;
      }
      this.toClient = null;
      this.sock.resume();
    }
    if (this.hostEnded) this.conn.shutdown();
  }

  private pumpToHost(): void {
    if (this.waitingDrain || this.sock.destroyed) return;
    for (;;) {
      const b = this.conn.read(READ_CHUNK);
      if (b === null) break;
      this.bytesToHost += b.length;
      if (!this.sock.write(b)) {
        this.waitingDrain = true;
        return;
      }
    }
    if (this.clientEnded && this.conn.readableBytes === 0 && !this.sock.writableEnded) this.sock.end();
  }

  private clientClosed(error: TcpError | null): void {
    if (error !== null) {
      // The client reset (or the connection timed out): the host gets a RST, not a FIN.
      if (!this.sock.destroyed) this.sock.resetAndDestroy();
    } else if (!this.sock.destroyed) {
      // An orderly end on the client's side: the host's write side is ended already; nothing more can reach the client.
      if (!this.sock.writableEnded) this.sock.end();
      if (!this.hostEnded) this.sock.destroy();
    }
    this.finish();
  }

  private finish(): void {
    if (this.done) return;
    if (!this.sock.destroyed && this.conn.state.kind !== 'closed' && this.conn.state.kind !== 'time-wait') return;
    this.done = true;
    this.onDone();
  }
}
