/**
 * `tunnelbyte proxy --config FILE`: the rootless proxy (SOCKS5 and HTTP on
 * local addresses, sending through a userspace WireGuard tunnel), for an
 * ordinary user with no TUN device, capabilities or root. The options shared
 * with `connect --userspace` are added here; the runner (proxy-runner.ts)
 * loads only when the command runs.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Command, Option } from 'commander';
import type { Io } from './customer/command-kit.js';
import { CliError, describeError } from './customer/errors.js';
import type { ProxyCredentials } from '../userspace/proxy-credentials.js';

export const DEFAULT_SOCKS = '127.0.0.1:1080';

export interface ListenAddress {
  host: string;
  port: number;
}

/** HOST:PORT to listen on ([v6]:PORT for IPv6; port 0 picks a free port); a CliError naming the flag otherwise. */
export function parseListenAddress(flag: string, s: string): ListenAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(s);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || !host || port > 65535 || (isIP(host) === 0 && host !== 'localhost') || (m[1] !== undefined && isIP(host) !== 6)) {
    throw new CliError(`${flag}: not HOST:PORT with an IP address: ${s}`, `e.g. ${flag} 127.0.0.1:1080 or ${flag} [::1]:1080`);
  }
  return { host, port };
}

export interface ProxyFlags {
  socks: string | false;
  http?: string;
  user?: string;
}

/** --socks, --no-socks, --http, --user: the listening side of the proxy. */
export function withProxyOptions(cmd: Command): Command {
  return cmd
    .option('--socks <host:port>', 'where the SOCKS5 proxy listens', DEFAULT_SOCKS)
    .option('--no-socks', 'no SOCKS5 proxy (with --http)')
    .option('--http <host:port>', 'also an HTTP proxy (CONNECT and http:// URLs) on this address')
    .addOption(new Option('--user <name>', 'require this username and the password in TB_PROXY_PASSWORD (SOCKS5 RFC 1929, HTTP Proxy-Authorization Basic)'));
}

/** The credentials of --user, the password from the environment (never from the command line, where `ps` shows it). */
export function proxyCredentials(flags: ProxyFlags, env: NodeJS.ProcessEnv = process.env): ProxyCredentials | undefined {
  if (flags.user === undefined) return undefined;
  const password = env.TB_PROXY_PASSWORD;
  if (!password) throw new CliError('--user needs a password in TB_PROXY_PASSWORD', 'e.g. TB_PROXY_PASSWORD=... tunnelbyte proxy --user NAME ...');
  return { user: flags.user, password };
}

export function registerProxyCommand(program: Command, io: Io): void {
  withProxyOptions(program.command('proxy'))
    .description('a SOCKS5 (and HTTP) proxy on this machine that sends through WireGuard in userspace: no root, no TUN')
    .requiredOption('--config <file>', 'wg-quick config of the tunnel (tunnelbyte connect --config-only FILE writes one)')
    .action(async function (this: Command) {
      const flags = this.opts<ProxyFlags & { config: string }>();
      try {
        let config: string;
        try {
          config = readFileSync(flags.config, 'utf8');
        } catch (e) {
          throw new CliError(`cannot read ${flags.config}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
        const { runProxy } = await import('./proxy-runner.js');
        await runProxy({
          config,
          socks: flags.socks === false ? null : parseListenAddress('--socks', flags.socks),
          http: flags.http === undefined ? null : parseListenAddress('--http', flags.http),
          credentials: proxyCredentials(flags),
          out: io.out,
          err: io.err,
        });
      } catch (e) {
        if (!(e instanceof CliError)) throw e;
        for (const line of describeError(e)) io.err(line + '\n');
        process.exitCode = 1;
      }
    });
}
