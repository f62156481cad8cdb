/** Helpers for tests that drive real WireGuard peers with wg(8). */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './repo.js';
import type { Netns } from './netns.js';
import { waitFor } from './netns.js';

export const TB_WG = join(REPO_ROOT, 'bin/tunnelbyte-wg.js');

export interface WgKeys {
  priv: string;
  pub: string;
}

export function genKeys(): WgKeys {
  const priv = execFileSync('wg', ['genkey'], { encoding: 'utf8' }).trim();
  const pub = execFileSync('wg', ['pubkey'], { input: priv, encoding: 'utf8' }).trim();
  return { priv, pub };
}

export function genPsk(): string {
  return execFileSync('wg', ['genpsk'], { encoding: 'utf8' }).trim();
}

/** A private temp dir for key files; removed by the returned cleanup. */
export function keyDir(): { dir: string; write(name: string, content: string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'tb-keys-'));
  return {
    dir,
    write(name, content) {
      const p = join(dir, name);
      writeFileSync(p, content + '\n', { mode: 0o600 });
      return p;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export type Impl = 'wireguard-go' | 'tunnelbyte-wg';

let ifCounter = 0;
/**
 * A WireGuard interface name unique to this process: UAPI sockets live in the
 * host-wide /var/run/wireguard, so two runs in different namespaces must not
 * share a name.
 */
export function ifname(base: string): string {
  return `${base}${process.pid % 10000}x${ifCounter++}`.slice(0, 15);
}

/** Starts a userspace WireGuard interface in `ns` (the launcher returns once it is ready). */
export function startInterface(ns: Netns, impl: Impl, ifname: string, env: NodeJS.ProcessEnv = {}): void {
  const e = { ...process.env, LOG_LEVEL: 'error', ...env };
  ns.onDestroy(() => rmSync(`/var/run/wireguard/${ifname}.sock`, { force: true }));
  if (impl === 'wireguard-go') {
    // wireguard-go's daemon keeps the launcher's stdout/stderr: point them away from our pipes.
    ns.run('sh', ['-c', `exec wireguard-go ${ifname} >/dev/null 2>&1`], { env: e });
  } else {
    ns.run(TB_WG, [ifname], { env: e });
  }
}

/** Configures an interface: key, port, addresses, up; then peers with `wg set`. */
export function configure(ns: Netns, ifname: string, o: { privFile: string; port?: number; addrs: string[]; mtu?: number }): void {
  ns.run('wg', ['set', ifname, 'private-key', o.privFile, ...(o.port ? ['listen-port', String(o.port)] : [])]);
  for (const a of o.addrs) ns.run('ip', ['addr', 'add', a, 'dev', ifname, ...(a.includes(':') ? ['nodad'] : [])]);
  if (o.mtu) ns.run('ip', ['link', 'set', ifname, 'mtu', String(o.mtu)]);
  ns.run('ip', ['link', 'set', ifname, 'up']);
}

export function ping(ns: Netns, addr: string, opts: { count?: number; size?: number; timeoutS?: number } = {}): boolean {
  const args = [addr.includes(':') ? '-6' : '-4', '-c', String(opts.count ?? 3), '-i', '0.2', '-W', String(opts.timeoutS ?? 2)];
  if (opts.size) args.push('-s', String(opts.size));
  return ns.try('ping', [...args, addr]).status === 0;
}

/** Waits until a ping gets through (the first one may wait for a handshake). */
export function waitPing(ns: Netns, addr: string, timeoutMs = 15_000): Promise<boolean> {
  return waitFor(`ping ${addr} from ${ns.name}`, () => ping(ns, addr, { count: 1, timeoutS: 1 }), timeoutMs, 50);
}

/** `wg show IF DUMP`-style values: latest handshakes, transfer, endpoints per peer public key. */
export function wgShow(ns: Netns, ifname: string, what: 'latest-handshakes' | 'transfer' | 'endpoints' | 'allowed-ips' | 'persistent-keepalive'): Map<string, string> {
  const out = ns.run('wg', ['show', ifname, what]);
  const m = new Map<string, string>();
  for (const line of out.split('\n').filter(Boolean)) {
    const [k, ...v] = line.split('\t');
    m.set(k!, v.join('\t'));
  }
  return m;
}
