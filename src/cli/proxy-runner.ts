/**
 * Runs the rootless proxy: a Tunnel (src/userspace/) from wg-quick text, a
 * SOCKS5 server and/or an HTTP proxy on local addresses sending through it,
 * until SIGINT or SIGTERM. Shared by `tunnelbyte proxy --config FILE` and
 * `tunnelbyte connect --userspace`; the CLI loads this file only when one of
 * them runs (it brings the device, the netstack and undici).
 */
import type { Server } from 'node:net';
import { isIP } from 'node:net';
import { createHttpProxy } from '../userspace/http-proxy.js';
import type { ProxyCredentials } from '../userspace/proxy-credentials.js';
import { createSocksServer } from '../userspace/socks5-server.js';
import { Tunnel } from '../userspace/tunnel.js';
import { WgQuickError } from '../userspace/wg-quick.js';
import { CliError } from './customer/errors.js';
import type { ListenAddress } from './proxy-command.js';

export interface RunProxyOptions {
  /** wg-quick text of the tunnel. */
  config: string;
  socks: ListenAddress | null;
  http: ListenAddress | null;
  credentials?: ProxyCredentials;
  out: (text: string) => void;
  err: (text: string) => void;
  /** Extra lines printed after the listening addresses (connect --userspace: the session). */
  banner?: string[];
  /** Resolves when the proxy should stop (default: SIGINT or SIGTERM). */
  until?: Promise<void>;
}

function listen(server: Server, a: ListenAddress, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new CliError(`cannot listen for ${what} on ${a.host}:${a.port}: ${e.code ?? e.message}`, `choose another address with --${what === 'SOCKS5' ? 'socks' : 'http'} HOST:PORT`)));
    server.listen(a.port, a.host, () => {
      const addr = server.address() as { address: string; port: number };
      resolve(isIP(addr.address) === 6 ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}`);
    });
  });
}

const signalled = (): Promise<void> =>
  new Promise((resolve) => {
    const done = (): void => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
  });

export async function runProxy(o: RunProxyOptions): Promise<void> {
  if (!o.socks && !o.http) throw new CliError('nothing to listen on: --no-socks without --http', 'give --http HOST:PORT, or drop --no-socks');
  const until = o.until ?? signalled();
  let tunnel: Tunnel;
  try {
    tunnel = await Tunnel.start({ config: o.config });
  } catch (e) {
    if (e instanceof WgQuickError) throw new CliError(`the wg-quick config: ${e.message}`);
    throw new CliError(`cannot start the tunnel: ${(e as Error).message}`);
  }
  const servers: Server[] = [];
  const log = (line: string): void => o.err(`${line}\n`);
  try {
    const lines: string[] = [];
    if (o.socks) {
      const s = createSocksServer({ dialer: tunnel, credentials: o.credentials, log });
      servers.push(s);
      const at = await listen(s, o.socks, 'SOCKS5');
      lines.push(`socks5 proxy on ${at}   (curl --socks5-hostname ${at} URL)`);
    }
    if (o.http) {
      const s = createHttpProxy({ dialer: tunnel, credentials: o.credentials, log });
      servers.push(s);
      const at = await listen(s, o.http, 'HTTP');
      lines.push(`http proxy on ${at}     (curl -x http://${at} URL; HTTPS through CONNECT)`);
    }
    const peers = tunnel.config.peers.map((p) => p.endpoint ?? 'no endpoint').join(', ');
    o.out([...lines, `through WireGuard to ${peers}, as ${tunnel.config.addresses.join(', ')}; Ctrl-C stops`, ...(o.banner ?? []), ''].join('\n'));
    await until;
  } finally {
    for (const s of servers) s.close();
    tunnel.close();
  }
}
