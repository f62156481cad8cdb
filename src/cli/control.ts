/**
 * `tunnelbyte control`: the control plane alone — the /v1 API and the SQLite
 * store with no data plane (issue 16). Its options are serve's control-plane
 * options (server-options.ts); exit nodes join it with `tunnelbyte admin node
 * token` and POST /v1/nodes/enroll.
 */
import type { Command } from 'commander';
import { addControlPlaneOptions, BILLING_HELP, controlSettingsOf, runServer, type ParsedOptions } from './server-options.js';

export function registerControlCommand(program: Command): void {
  const cmd = program.command('control').description('run the control plane alone: the /v1 API and the SQLite store, no WireGuard (exit nodes join it)');
  addControlPlaneOptions(cmd)
    .addHelpText(
      'after',
      BILLING_HELP + 'Every flag also reads the environment variable shown; TB_TRUST_PROXY=1 equals --trust-proxy.',
    )
    .action(async (o: ParsedOptions) => {
      // Koa, SQLite and pino are imported when the command runs, not when the CLI starts.
      const [{ createLogger }, { ControlServer }] = await Promise.all([import('../control/http/logger.js'), import('../server/control-server.js')]);
      const log = createLogger({ level: String(o.logLevel) });
      process.exitCode = 0;
      const settings = controlSettingsOf(o, process.env); // malformed flags fail here, before the data directory is touched
      const started = await runServer('control', o, log, (dataDir) => ControlServer.start({ ...settings, dataDir }, log));
      if (!started) return;
      log.info({ api: started.server.info.apiUrl, metrics: started.server.info.metricsUrl, data: started.dataDir }, 'tunnelbyte control plane running');
    });
}
