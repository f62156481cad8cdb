/**
 * The `tunnelbyte` program: each command group adds itself with one register
 * call. The groups import what their commands need when a command runs (the
 * server, SQLite, Koa, Stripe, the device), so that `--version`, `--help` and
 * the customer commands start without loading them.
 */
import { Command } from 'commander';
import { resolveDataDir } from '../control/paths.js';
import { AddonCacheError } from '../executable/addon-cache.js';
import { versionText } from '../executable/build-info.js';
import { setAddonDataDir } from '../executable/native-addons.js';
import { registerAdminCommands, reportAdminError } from './admin.js';
import { registerControlCommand } from './control.js';
import { processIo } from './customer/command-kit.js';
import { registerCustomerCommands } from './customer/index.js';
import { registerProxyCommand } from './proxy-command.js';
import { registerServeCommand } from './serve.js';

function registerWgCommand(program: Command): void {
  program
    .command('wg')
    .description('the tunnelbyte-wg daemon, a drop-in for wireguard-go: tunnelbyte wg [-f|--foreground] IFNAME')
    .usage('[-f|--foreground] IFNAME')
    .helpOption(false)
    .passThroughOptions() // -f, --version, --help are tunnelbyte-wg's
    .allowUnknownOption()
    .argument('[args...]')
    .action(async (args: string[]) => {
      const { runTunnelbyteWg } = await import('./tunnelbyte-wg.js');
      await runTunnelbyteWg(args);
    });
}

/** Runs the CLI on `argv` (process.argv's shape: program, script, arguments). */
export async function runTunnelbyte(argv: readonly string[]): Promise<void> {
  const program = new Command('tunnelbyte')
    .description('A self-hosted VPN exit: userspace WireGuard, a /v1 control plane and its CLI')
    .version(versionText('tunnelbyte'), '-V, --version', 'print the version, commit, Node version and the glibc needed');

  registerCustomerCommands(program);
  registerProxyCommand(program, processIo);
  registerServeCommand(program);
  registerControlCommand(program);
  registerAdminCommands(program);
  // Program options (-V, -h) only before a command, so that `wg` gets its own; set after the other
  // commands are made, which keep taking their options anywhere (commander copies the setting at creation).
  program.enablePositionalOptions();
  registerWgCommand(program);

  // The single executable's fallback for its addon cache is under the data directory (src/executable/addon-cache.ts).
  program.hook('preAction', (_cmd, action) => {
    setAddonDataDir(resolveDataDir({ flag: action.optsWithGlobals<{ data?: string }>().data }));
  });

  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof AddonCacheError) {
      process.stderr.write(`tunnelbyte: ${e.message}\n`);
      process.exitCode = 1;
      return;
    }
    reportAdminError(e);
  }
}
