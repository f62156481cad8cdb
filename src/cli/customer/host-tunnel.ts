/**
 * The client side of `connect` / `disconnect` on Linux: a tunnelbyte-wg
 * interface configured over its UAPI socket, and a full tunnel routed the
 * way wg-quick(8) routes AllowedIPs = 0.0.0.0/0, ::/0:
 *
 *   ip -4 route add 0.0.0.0/0 dev IF table T           (T = the fwmark, 51820 or the next free table)
 *   ip -4 rule add not fwmark T table T                (everything not sent by the WireGuard socket)
 *   ip -4 rule add table main suppress_prefixlength 0  (main's specific routes first: the LAN stays reachable)
 *   sysctl net.ipv4.conf.all.src_valid_mark=1
 *   … the same with -6 while the host has IPv6 (so IPv6 cannot leak around the tunnel).
 *
 * The WireGuard socket carries fwmark T, so the encrypted packets to the
 * endpoint take the main table. One addition to wg-quick: a rule
 * `to API-ADDRESS table main` per address of the API host (not loopback),
 * so the API stays reachable outside the tunnel — `usage` and `disconnect`
 * work even when the quota has cut the tunnel off.
 *
 * Every change is recorded as an UndoStep the moment it is made (the caller
 * writes them to connection.json), and undo() reverses them in the opposite
 * order, each step tolerant of having been undone already (reboot, crash).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { selfCommand } from '../self-command.js';
import { CliError } from './errors.js';
import { keyHex, uapiPeers, uapiRequest, uapiSocketPath } from './uapi-client.js';

export type Family = 4 | 6;

export type UndoStep =
  | { kind: 'daemon'; ifname: string; socket: string }
  | { kind: 'route'; family: Family; spec: string[] }
  | { kind: 'rule'; family: Family; priority: number; spec: string[] }
  | { kind: 'sysctl'; path: string; previous: string };

/** The tunnelbyte-wg launcher: this program's `wg` command (TB_WG may name another wireguard-go compatible one). */
export function wgCommand(env: NodeJS.ProcessEnv = process.env): { cmd: string; args: string[]; argv0?: string } {
  if (env.TB_WG) return { cmd: env.TB_WG, args: [] };
  const self = selfCommand();
  return { cmd: self.cmd, args: [...self.args, 'wg'], argv0: self.argv0 };
}

/** Runs ip(8); a failure is a CliError with ip's own message. */
export function ip(args: string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.error) throw new CliError(`cannot run ip: ${r.error.message}`, 'connect needs iproute2 (the ip command)');
  if (r.status !== 0) throw new CliError(`ip ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

export const linkExists = (ifname: string): boolean => spawnSync('ip', ['link', 'show', 'dev', ifname], { stdio: 'ignore' }).status === 0;

/** Does this host (network namespace) have IPv6 at all? Without it there is nothing to leak. */
export function hostHasIpv6(): boolean {
  try {
    return readFileSync('/proc/sys/net/ipv6/conf/all/disable_ipv6', 'utf8').trim() === '0';
  } catch {
    return false;
  }
}

/** wg-quick's choice: the first table from 51820 with no routes in either family. */
export function freeTable(start = 51820): number {
  for (let t = start; t < start + 1000; t++) {
    // a table that does not exist yet is an error of `ip route show`: free
    const routes = (f: string) => spawnSync('ip', [f, 'route', 'show', 'table', String(t)], { encoding: 'utf8' }).stdout?.trim() ?? '';
    const used = routes('-4') !== '' || (hostHasIpv6() && routes('-6') !== '');
    if (!used) return t;
  }
  throw new CliError('no free routing table between 51820 and 52819');
}

/** The lowest rule priority above 0 (32766, main, on a plain host): new rules go just before it, as the kernel would put them. */
export function ruleBase(family: Family): number {
  const rules = JSON.parse(ip([`-${family}`, '-j', 'rule', 'show']) || '[]') as { priority?: number }[];
  const ps = rules.map((r) => r.priority ?? 0).filter((p) => p > 0);
  return ps.length ? Math.min(...ps) : 32766;
}

/** "host:port" / "[v6]:port" of the API's exit.endpoint, resolved to the UAPI's literal form. */
export async function resolveEndpoint(endpoint: string): Promise<{ uapi: string; address: string; port: number }> {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(endpoint) ?? /^([^:]+):(\d+)$/.exec(endpoint);
  if (!m) throw new CliError(`the server gave an endpoint we cannot parse: ${endpoint}`);
  const host = m[1]!;
  const port = Number(m[2]);
  const address = isIP(host) ? host : (await lookup(host).catch(() => {
    throw new CliError(`cannot resolve the exit endpoint ${host}`);
  })).address;
  return { uapi: address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`, address, port };
}

/** The API host's addresses that need the `to ADDR table main` rule (not loopback). */
export async function apiAddresses(apiBase: string): Promise<string[]> {
  const host = new URL(apiBase).hostname.replace(/^\[|\]$/g, '');
  const all = isIP(host) ? [host] : (await lookup(host, { all: true }).catch(() => [])).map((a) => a.address);
  return [...new Set(all)].filter((a) => !/^127\./.test(a) && a !== '::1');
}

/** wg-quick's MTU: the MTU of the route towards the endpoint minus 80 (1420 when unknown). */
export function tunnelMtu(endpointAddress: string): number {
  try {
    const dev = /\bdev (\S+)/.exec(ip(['route', 'get', endpointAddress]))?.[1];
    const mtu = dev ? Number(readFileSync(`/sys/class/net/${dev}/mtu`, 'utf8')) : NaN;
    return Number.isFinite(mtu) && mtu > 1280 + 80 ? mtu - 80 : 1420;
  } catch {
    return 1420;
  }
}

export interface BringUpParams {
  ifname: string;
  privateKey: string;
  peerPublicKey: string;
  endpoint: string;
  keepalive: number;
  addresses: string[];
  apiBase: string;
  /** Called with each change as soon as it is made. */
  record: (step: UndoStep) => void;
}

/** Creates, configures and routes the interface. Returns the table/fwmark used. */
export async function bringUp(p: BringUpParams): Promise<{ table: number; endpoint: string; mtu: number }> {
  const socket = uapiSocketPath(p.ifname);
  const ep = await resolveEndpoint(p.endpoint);
  const apiAddrs = await apiAddresses(p.apiBase);
  const table = freeTable();
  const v6 = hostHasIpv6();

  // 1. the daemon: interface + UAPI socket (the launcher returns once both are ready)
  const { cmd, args, argv0 } = wgCommand();
  p.record({ kind: 'daemon', ifname: p.ifname, socket });
  await new Promise<void>((resolve, reject) => {
    // spawn, not execFile: only spawn passes argv0 (the single executable reads its name from it, src/cli/self-command.ts)
    const child = spawn(cmd, [...args, p.ifname], { argv0, env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'error' }, stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const fail = (why: string) => reject(new CliError(`could not start ${args.includes('wg') ? 'tunnelbyte-wg' : cmd} ${p.ifname}: ${stderr.trim() || why}`));
    child.once('error', (err) => fail(err.message));
    child.once('close', (code, signal) => (code === 0 ? resolve() : fail(`exit ${code ?? signal}`)));
  });

  // 2. WireGuard configuration over UAPI
  await uapiRequest(
    socket,
    [
      'set=1',
      `private_key=${keyHex(p.privateKey)}`,
      `fwmark=${table}`,
      'replace_peers=true',
      `public_key=${keyHex(p.peerPublicKey)}`,
      `endpoint=${ep.uapi}`,
      'replace_allowed_ips=true',
      'allowed_ip=0.0.0.0/0',
      'allowed_ip=::/0',
      '',
      '',
    ].join('\n'),
  );

  // 3. addresses, MTU, up
  for (const a of p.addresses) {
    if (a.includes(':') && !v6) continue;
    ip(['address', 'add', a, 'dev', p.ifname, ...(a.includes(':') ? ['nodad'] : [])]);
  }
  const mtu = tunnelMtu(ep.address);
  ip(['link', 'set', 'dev', p.ifname, 'mtu', String(mtu), 'up']);

  // 4. routes and rules, per family
  for (const family of v6 ? ([4, 6] as const) : ([4] as const)) {
    const f = `-${family}`;
    const routeSpec = [family === 4 ? '0.0.0.0/0' : '::/0', 'dev', p.ifname, 'table', String(table)];
    ip([f, 'route', 'add', ...routeSpec]);
    p.record({ kind: 'route', family, spec: routeSpec });
    const base = ruleBase(family);
    const rules: string[][] = [
      ['not', 'fwmark', String(table), 'table', String(table)],
      ['table', 'main', 'suppress_prefixlength', '0'],
      ...apiAddrs.filter((a) => (family === 6) === a.includes(':')).map((a) => ['to', a, 'table', 'main']),
    ];
    rules.forEach((spec, i) => {
      const priority = base - 1 - i;
      ip([f, 'rule', 'add', 'priority', String(priority), ...spec]);
      p.record({ kind: 'rule', family, priority, spec });
    });
    if (family === 4) {
      const path = '/proc/sys/net/ipv4/conf/all/src_valid_mark';
      const previous = readFileSync(path, 'utf8').trim();
      if (previous !== '1') {
        writeFileSync(path, '1');
        p.record({ kind: 'sysctl', path, previous });
      }
    }
  }

  // 5. the keepalive last: with the interface up it starts the handshake at once
  await uapiRequest(socket, ['set=1', `public_key=${keyHex(p.peerPublicKey)}`, `persistent_keepalive_interval=${p.keepalive}`, '', ''].join('\n'));
  return { table, endpoint: ep.uapi, mtu };
}

/** Seconds since the epoch of the last handshake with `peerPublicKey` (0: none yet), with the counters. */
export async function peerState(ifname: string, peerPublicKey: string) {
  const hex = keyHex(peerPublicKey);
  return (await uapiPeers(uapiSocketPath(ifname))).find((x) => x.publicKeyHex === hex) ?? null;
}

/** Asks for a keepalive again (a handshake is retried on its own; this only shortens the wait after link-up races). */
export async function nudge(ifname: string, peerPublicKey: string, keepalive: number): Promise<void> {
  await uapiRequest(uapiSocketPath(ifname), ['set=1', `public_key=${keyHex(peerPublicKey)}`, `persistent_keepalive_interval=${keepalive}`, '', ''].join('\n'));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitGone(ifname: string, ms: number): Promise<boolean> {
  for (const until = Date.now() + ms; Date.now() < until; await sleep(50)) if (!linkExists(ifname)) return true;
  return !linkExists(ifname);
}

/** Reverses the steps, newest first. Returns what could not be undone (empty: all clean). */
export async function undo(steps: UndoStep[]): Promise<string[]> {
  const problems: string[] = [];
  for (const s of [...steps].reverse()) {
    try {
      switch (s.kind) {
        case 'rule': {
          const r = spawnSync('ip', [`-${s.family}`, 'rule', 'del', 'priority', String(s.priority), ...s.spec], { encoding: 'utf8' });
          if (r.status !== 0 && !/No such file|No such process/i.test(r.stderr)) problems.push(`rule ${s.spec.join(' ')}: ${r.stderr.trim()}`);
          break;
        }
        case 'route': {
          // goes with the interface; removed explicitly in case the interface stays
          if (linkExists(s.spec[2]!)) spawnSync('ip', [`-${s.family}`, 'route', 'del', ...s.spec], { stdio: 'ignore' });
          break;
        }
        case 'sysctl':
          writeFileSync(s.path, s.previous);
          break;
        case 'daemon': {
          // wireguard-go and tunnelbyte-wg exit when their socket file is removed, taking the interface with them
          rmSync(s.socket, { force: true });
          if (!(await waitGone(s.ifname, 3000))) {
            spawnSync('ip', ['link', 'del', 'dev', s.ifname], { stdio: 'ignore' });
            if (!(await waitGone(s.ifname, 2000))) problems.push(`interface ${s.ifname} is still there`);
          }
          break;
        }
      }
    } catch (e) {
      problems.push(`${s.kind}: ${(e as Error).message}`);
    }
  }
  return problems;
}

/** Is the interface of a recorded connection still there? */
export const interfaceUp = (ifname: string): boolean => linkExists(ifname) || existsSync(uapiSocketPath(ifname));

export const isRoot = (): boolean => process.getuid?.() === 0;

export const hasIpCommand = (): boolean => {
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
