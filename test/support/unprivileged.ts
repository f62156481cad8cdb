/**
 * The unprivileged tier (test/unprivileged/): programs that must work for an
 * ordinary user with no capabilities, run as one. Started by an ordinary user,
 * they just run as that user. Started as root (CI), they drop to uid/gid 65534
 * (nobody):
 *
 * - by a plain setuid/setgid of the child (spawn's uid/gid) when uid 65534 can
 *   run the checkout: no namespace of any kind is made;
 * - else (a checkout under /root or another directory nobody cannot traverse)
 *   as test/privileged/proxy.test.ts and test/integration/cli-customer.test.ts
 *   do: `unshare --user --map-user=65534 --map-group=65534`, a user namespace
 *   where the program is uid 65534 with no capabilities while its files are
 *   opened with the checkout owner's credentials. No network namespace either way.
 *
 * The directories the programs write are made here and handed to that uid.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './repo.js';

export const NOBODY = 65534;

export type Drop = 'none' | 'setuid' | 'userns';

/** How this process starts an unprivileged program: as itself, by setuid, or in a user namespace. */
export function dropMode(): Drop {
  if (process.getuid?.() !== 0) return 'none';
  const probe = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tunnelbyte.js'), '--version'], { uid: NOBODY, gid: NOBODY, encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH, HOME: '/' } });
  if (probe.status === 0) return 'setuid';
  if (spawnSync('sh', ['-c', 'command -v unshare']).status !== 0) {
    throw new Error(`uid ${NOBODY} cannot run the checkout at ${REPO_ROOT} (${(probe.stderr || String(probe.error)).split('\n')[0]}) and unshare (util-linux) is missing`);
  }
  return 'userns';
}

/** `cmd args` as the unprivileged user (see the file's comment); stdout and stderr piped. */
export function spawnUnprivileged(drop: Drop, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const o: SpawnOptions = { stdio: ['ignore', 'pipe', 'pipe'], ...opts };
  if (drop === 'setuid') return spawn(cmd, args, { ...o, uid: NOBODY, gid: NOBODY });
  if (drop === 'userns') return spawn('unshare', ['--user', `--map-user=${NOBODY}`, `--map-group=${NOBODY}`, cmd, ...args], o);
  return spawn(cmd, args, o);
}

/**
 * `cmd args` as a command line that drops to the unprivileged user itself,
 * for a process started through another program that must keep root until
 * then (`ip netns exec NS …` enters the namespace, then this runs):
 * setpriv(1) for the setuid drop, unshare(1) for the user namespace.
 */
export function unprivilegedArgv(drop: Drop, cmd: string, args: string[]): [string, string[]] {
  if (drop === 'setuid') return ['setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--inh-caps=-all', cmd, ...args]];
  if (drop === 'userns') return ['unshare', ['--user', `--map-user=${NOBODY}`, `--map-group=${NOBODY}`, cmd, ...args]];
  return [cmd, args];
}

/** A fresh 0700 directory the unprivileged user owns (under the system's temp directory). */
export function privateDir(drop: Drop, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (drop === 'setuid') chownSync(dir, NOBODY, NOBODY);
  return dir;
}

export function removeDir(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/**
 * What /proc says of a running process: its effective capabilities, its uid
 * as seen in its own user namespace, and whether it shares this process's
 * network namespace.
 */
export function processFacts(pid: number): { capEff: string; uid: number; sameNetns: boolean } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const capEff = /^CapEff:\s+([0-9a-f]+)$/m.exec(status)![1]!;
  const uid = Number(/^Uid:\s+(\d+)/m.exec(status)![1]);
  // In a user namespace /proc shows the host's uid; uid_map's first line names the uid inside it.
  const mapped = readFileSync(`/proc/${pid}/uid_map`, 'utf8').trim().split(/\s+/);
  const inside = mapped[0] === '0' && mapped[1] === '0' ? uid : Number(mapped[0]);
  return { capEff, uid: inside, sameNetns: readlinkSync(`/proc/${pid}/ns/net`) === readlinkSync('/proc/self/ns/net') };
}
