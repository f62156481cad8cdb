/**
 * A ProxyDialer over the host's own sockets, for testing the SOCKS5 and HTTP
 * proxies without a tunnel: connects with net.connect, UDP with dgram, and
 * resolves only the names it is given (a fixed table, so no test asks the
 * host's resolver and "unknown name" is deterministic).
 */
import { createSocket } from 'node:dgram';
import { connect, isIP } from 'node:net';
import type { ProxyDialer, ProxyUdpSocket } from '../../src/userspace/proxy-dialer.js';

export interface LoopbackDialer extends ProxyDialer {
  /** Every destination connect() was asked for, as host:port. */
  readonly dialed: string[];
}

export function loopbackDialer(names: Record<string, string[]> = {}): LoopbackDialer {
  const dialed: string[] = [];
  return {
    dialed,
    connect(port, host) {
      dialed.push(`${host}:${port}`);
      return connect({ port, host, allowHalfOpen: true });
    },
    udp(): ProxyUdpSocket {
      // IPv4 only: the tests' UDP destinations are on 127.0.0.1. Any other destination fails as
      // TunnelUdpSocket fails one it cannot send to: the error to the callback, or an 'error' event without one.
      const s = createSocket({ type: 'udp4' });
      s.bind(0, '127.0.0.1');
      return {
        on: (event, listener) => s.on(event, listener),
        send(msg, port, address, cb) {
          if (isIP(address) === 4) return void s.send(msg, port, address, cb);
          const e = Object.assign(new Error(`cannot send to ${address}:${port}`), { code: 'EINVAL' });
          queueMicrotask(() => (cb ? cb(e) : s.emit('error', e)));
        },
        close: () => s.close(),
      };
    },
    async resolve(name) {
      const a = names[name.toLowerCase()];
      if (!a) throw Object.assign(new Error(`${name} is not in the test's table`), { code: 'ENOTFOUND' });
      return a;
    },
  };
}
