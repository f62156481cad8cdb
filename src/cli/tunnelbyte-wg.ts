/**
 * tunnelbyte-wg [-f|--foreground] INTERFACE-NAME — a drop-in for
 * wireguard-go's command line (docs/contract.md §3).
 *
 * Without -f (or WG_PROCESS_FOREGROUND=1) the launcher starts a detached copy
 * of itself in the foreground mode and waits on a pipe until that copy
 * reports the interface created and the UAPI socket accepting connections;
 * only then does it exit 0 (non-zero if the daemon failed first), so a
 * script can run `wg set IFNAME ...` on the next line. The daemon keeps the
 * launcher's stdout/stderr only when they are terminals, so that a caller
 * capturing output through pipes is not held open by the daemon.
 */
import { spawn } from 'node:child_process';
import { closeSync, writeSync } from 'node:fs';
import { resolveDataDir } from '../control/paths.js';
import { VERSION, versionText } from '../executable/build-info.js';
import { setAddonDataDir } from '../executable/native-addons.js';
import { selfCommand } from './self-command.js';

const READY_FD_ENV = 'TB_WG_READY_FD';
const USAGE = 'Usage: tunnelbyte-wg [-f/--foreground] INTERFACE-NAME\n';

/**
 * Runs tunnelbyte-wg with `args` (what follows the program name); also
 * `tunnelbyte wg ARGS`. Exits the process when the launcher is done, runs the
 * daemon until it stops in the foreground mode.
 */
export async function runTunnelbyteWg(args: readonly string[]): Promise<void> {
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
    process.stdout.write(`${versionText('tunnelbyte-wg')}\n\nUserspace WireGuard daemon for Linux (wireguard-go compatible).\n`);
    process.exit(0);
  }
  if (args.length === 1 && (args[0] === '--help' || args[0] === '-h')) {
    process.stdout.write(
      USAGE +
        '\nCreates the TUN interface INTERFACE-NAME and its UAPI socket /var/run/wireguard/INTERFACE-NAME.sock,\n' +
        'to be configured with wg(8) or wg-quick(8).\n\n' +
        'Environment: LOG_LEVEL=verbose|debug|error|silent (default error), WG_PROCESS_FOREGROUND=1 (do not daemonize).\n',
    );
    process.exit(0);
  }
  let foreground = process.env.WG_PROCESS_FOREGROUND === '1';
  const rest: string[] = [];
  for (const a of args) {
    if (a === '-f' || a === '--foreground') foreground = true;
    else rest.push(a);
  }
  if (rest.length !== 1 || rest[0]!.startsWith('-')) {
    process.stderr.write(USAGE);
    process.exit(1);
  }
  const ifname = rest[0]!;
  if (!foreground) await launchDaemon(ifname);
  else await runForeground(ifname);
}

async function launchDaemon(ifname: string): Promise<void> {
  const self = selfCommand();
  const out = process.stdout.isTTY ? 'inherit' : 'ignore';
  const err = process.stderr.isTTY ? 'inherit' : 'ignore';
  const child = spawn(self.cmd, [...self.args, 'wg', '--foreground', ifname], {
    argv0: self.argv0,
    detached: true,
    stdio: ['ignore', out, err, 'pipe'],
    env: { ...process.env, [READY_FD_ENV]: '3', WG_PROCESS_FOREGROUND: '1' },
  });
  const pipe = child.stdio[3] as NodeJS.ReadableStream;
  const code = await new Promise<number>((resolve) => {
    pipe.on('data', (d: Buffer) => {
      if (d.includes(0x52 /* 'R' */)) resolve(0);
    });
    child.once('exit', (c) => resolve(c === 0 ? 1 : (c ?? 1)));
    child.once('error', () => resolve(1));
  });
  if (code !== 0) process.stderr.write(`tunnelbyte-wg: failed to start ${ifname}\n`);
  child.unref();
  (pipe as unknown as { destroy(): void }).destroy();
  process.exit(code);
}

async function runForeground(ifname: string): Promise<void> {
  // The device and its I/O load only here, for the daemon (start-up time of the launcher).
  setAddonDataDir(resolveDataDir()); // the fallback for the executable's addon cache (src/executable/addon-cache.ts)
  const [{ createWgLogger, parseLogLevel }, { WgDaemon }, { linuxWgPlatform }] = await Promise.all([
    import('../server/wg-log.js'),
    import('../server/wg-daemon.js'),
    import('../server/wg-platform.js'),
  ]);
  const log = createWgLogger(parseLogLevel(process.env.LOG_LEVEL), ifname);
  log.verbose(`Starting tunnelbyte-wg version ${VERSION}`);
  let daemon: Awaited<ReturnType<typeof WgDaemon.start>>;
  try {
    daemon = await WgDaemon.start({ ifname, platform: linuxWgPlatform(), log });
  } catch (e) {
    log.error(`Failed to start: ${(e as Error).message}`);
    process.exit(1);
  }
  daemon.onStop(() => {
    log.verbose('Shutting down');
    setImmediate(() => process.exit(0));
  });
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => daemon.stop(`received ${sig}`));
  const readyFd = process.env[READY_FD_ENV];
  if (readyFd) {
    const fd = Number(readyFd);
    writeSync(fd, 'R');
    closeSync(fd);
    delete process.env[READY_FD_ENV];
  }
  log.verbose('Device started');
}
