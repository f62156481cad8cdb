/**
 * Opening the proxies' outbound connection: a domain name is resolved by the
 * dialer (inside the tunnel, so names the tunnel's DNS knows work and no query
 * leaks to the host's resolver), then its addresses are tried in order until
 * one connects; a refusal is final (the host answered). Resolves with the
 * connected stream or rejects with an error carrying net.Socket's code.
 */
import type { Duplex } from 'node:stream';
import type { ProxyDialer } from './proxy-dialer.js';

export type DialTarget = { type: 'ip'; host: string } | { type: 'domain'; host: string };

function codeError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

/** One connect attempt; `timeoutMs` bounds how long a connection may stay half-open. */
function dialOnce(dialer: ProxyDialer, host: string, port: number, timeoutMs: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    let s: Duplex;
    try {
      s = dialer.connect(port, host);
    } catch (e) {
      reject(codeError((e as NodeJS.ErrnoException).code ?? 'ENETUNREACH', (e as Error).message));
      return;
    }
    const timer = setTimeout(() => {
      s.destroy();
      reject(codeError('ETIMEDOUT', `connect ETIMEDOUT ${host}:${port}`));
    }, timeoutMs);
    const onError = (e: Error): void => {
      clearTimeout(timer);
      s.destroy();
      reject(e);
    };
    s.once('error', onError);
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeListener('error', onError);
      // Until the caller attaches its own handlers (splice), an error only destroys the stream, never the process.
      s.on('error', () => {});
      resolve(s);
    });
  });
}

export async function dialHost(dialer: ProxyDialer, target: DialTarget, port: number, timeoutMs: number): Promise<Duplex> {
  if (port === 0) throw codeError('EADDRNOTAVAIL', 'port 0 is not a destination');
  let hosts: string[];
  if (target.type === 'ip') hosts = [target.host];
  else {
    try {
      hosts = await dialer.resolve(target.host);
    } catch (e) {
      throw codeError('ENOTFOUND', `cannot resolve ${target.host}: ${(e as Error).message}`);
    }
    if (hosts.length === 0) throw codeError('ENOTFOUND', `${target.host} has no address`);
  }
  let last: unknown;
  for (const h of hosts.slice(0, 4)) {
    try {
      return await dialOnce(dialer, h, port, timeoutMs);
    } catch (e) {
      last = e;
      if ((e as NodeJS.ErrnoException).code === 'ECONNREFUSED') break;
    }
  }
  throw last;
}
