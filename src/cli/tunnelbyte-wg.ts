/**
 * tunnelbyte-wg [-f|--foreground] INTERFACE-NAME — a drop-in for
 * wireguard-go's command line (SPEC §3).
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
import { fileURLToPath } from 'node:url';
import { createWgLogger, parseLogLevel } from '../server/wg-log.js';
import { WgDaemon } from '../server/wg-daemon.js';
import { linuxWgPlatform } from '../server/wg-platform.js';
import { VERSION } from '../control/version.js';

const READY_FD_ENV = 'TB_WG_READY_FD';

function usage(): never {
  process.stderr.write('Usage: tunnelbyte-wg [-f/--foreground] INTERFACE-NAME\n');
  process.exit(1);
}

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
  process.stdout.write(`tunnelbyte-wg v${VERSION}\n\nUserspace WireGuard daemon for Linux (wireguard-go compatible).\n`);
  process.exit(0);
}
if (args.length === 1 && (args[0] === '--help' || args[0] === '-h')) {
  process.stdout.write(
    'Usage: tunnelbyte-wg [-f/--foreground] INTERFACE-NAME\n\n' +
      'Creates the TUN interface INTERFACE-NAME and its UAPI socket /var/run/wireguard/INTERFACE-NAME.sock,\n' +
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
if (rest.length !== 1 || rest[0]!.startsWith('-')) usage();
const ifname = rest[0]!;

if (!foreground) {
  await launchDaemon();
} else {
  await runForeground();
}

async function launchDaemon(): Promise<void> {
  const script = fileURLToPath(new URL('../../../bin/tunnelbyte-wg.js', import.meta.url));
  const out = process.stdout.isTTY ? 'inherit' : 'ignore';
  const err = process.stderr.isTTY ? 'inherit' : 'ignore';
  const child = spawn(process.execPath, [script, '--foreground', ifname], {
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

async function runForeground(): Promise<void> {
  const log = createWgLogger(parseLogLevel(process.env.LOG_LEVEL), ifname);
  log.verbose(`Starting tunnelbyte-wg version ${VERSION}`);
  let daemon: WgDaemon;
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
