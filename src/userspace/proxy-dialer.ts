/**
 * What the SOCKS5 and HTTP proxies send through: a small dialer. A `Tunnel`
 * (src/userspace/tunnel.ts) is one, by way of tunnel-dialer.ts; tests give the
 * proxies a dialer over the host's own loopback sockets, so the proxies'
 * protocol handling is tested without a tunnel.
 */
import type { Duplex } from 'node:stream';

/** A datagram's sender, as dgram.Socket's 'message' gives it. */
export interface DatagramSource {
  address: string;
  port: number;
}

/** A UDP socket in the network the proxy sends into (dgram.Socket's common part). */
export interface ProxyUdpSocket {
  on(event: 'message', listener: (msg: Buffer, rinfo: DatagramSource) => void): unknown;
  send(msg: Uint8Array, port: number, address: string, cb?: (err: Error | null) => void): void;
  close(): void;
}

export interface ProxyDialer {
  /**
   * A TCP connection to `host` (an IP literal) port `port`, shaped like net.Socket:
   * 'connect' once established, or 'error' with net.Socket's codes (ECONNREFUSED,
   * ETIMEDOUT, ECONNRESET, EHOSTUNREACH, ...). May throw for an address it cannot
   * reach at all (a family the network has no address of).
   */
  connect(port: number, host: string): Duplex;
  /** A UDP socket on an ephemeral port. */
  udp(): ProxyUdpSocket;
  /** The addresses of a name (IPv4 first), resolved in the network the proxy sends into. */
  resolve(name: string): Promise<string[]>;
}
