/**
 * The WireGuard daemons the end-to-end benchmarks compare, started inside a
 * network namespace, and their CPU time.
 *
 * - `tunnelbyte-wg`: this repository's daemon.
 * - `wg-go-anchor`: upstream wireguard-go 0.0.20250522 built with the 2023
 *   Linux offloads (TUN TSO/GRO, UDP GSO/GRO), the reference a user would
 *   pick today. It is not in the repository: CI puts `shared/` beside the
 *   clone, so it is looked up at `../shared/anchors/` from the repository root
 *   (`TB_WG_ANCHOR` names another path).
 * - `wg-go-debian`: Debian's packaged wireguard-go 0.0.20220316 (no offloads).
 *
 * CPU time is utime + stime of the daemon's process (every thread) from
 * /proc/PID/stat (proc(5) fields 14 and 15, in clock ticks): both ends of a
 * benchmark share the machine's cores, so "CPU seconds per GB moved" says
 * what a daemon costs where Mbit/s alone says how the two split the machine.
 * Kernel work done in softirq context on the daemon's behalf is not in it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Netns } from '../test/support/netns.js';
import { startInterface } from '../test/support/wg.js';

export type Daemon = 'tunnelbyte-wg' | 'wg-go-anchor' | 'wg-go-debian';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Where the anchor wireguard-go is expected. */
export const ANCHOR_PATH = process.env.TB_WG_ANCHOR ?? resolve(REPO_ROOT, '../shared/anchors/wireguard-go-0.0.20250522');

/** Why the anchor cannot be used, or null when it can. */
export function anchorMissing(): string | null {
  if (!existsSync(ANCHOR_PATH)) return `the reference wireguard-go is missing: ${ANCHOR_PATH} does not exist (CI puts shared/ beside the clone; TB_WG_ANCHOR=PATH names another)`;
  try {
    const v = execFileSync(ANCHOR_PATH, ['--version'], { encoding: 'utf8', timeout: 5000 });
    if (!v.includes('0.0.20250522')) return `${ANCHOR_PATH} is not wireguard-go 0.0.20250522 (it says: ${v.split('\n')[0]})`;
  } catch (e) {
    return `${ANCHOR_PATH} does not run: ${(e as Error).message.split('\n')[0]}`;
  }
  return null;
}

/** Starts `daemon` on a new interface `ifname` in `ns` and returns the daemon's PID. */
export function startDaemon(ns: Netns, daemon: Daemon, ifname: string): number {
  if (daemon === 'wg-go-anchor') {
    // Launched as wireguard-go is (it daemonizes itself, keeping the launcher's stdout/stderr: point them away).
    ns.onDestroy(() => rmSync(`/var/run/wireguard/${ifname}.sock`, { force: true }));
    ns.run('sh', ['-c', `exec "$0" "$1" >/dev/null 2>&1`, ANCHOR_PATH, ifname], { env: { ...process.env, LOG_LEVEL: 'error' } });
  } else {
    startInterface(ns, daemon === 'tunnelbyte-wg' ? 'tunnelbyte-wg' : 'wireguard-go', ifname);
  }
  return daemonPid(ns, ifname);
}

/** The PID of the process in `ns` whose command line ends with the interface name (both daemons re-exec as `… IFNAME`). */
export function daemonPid(ns: Netns, ifname: string): number {
  for (const pid of ns.pids()) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (argv[argv.length - 1] === ifname) return pid;
    } catch {
      /* exited meanwhile */
    }
  }
  throw new Error(`no daemon for ${ifname} in ${ns.name}`);
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** utime + stime of `pid` in seconds (proc(5): fields 14 and 15 of /proc/PID/stat, after the parenthesised comm). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}
