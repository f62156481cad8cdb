import { Command } from 'commander';
import { registerAdminCommands, reportAdminError } from './admin.js';
import { registerCustomerCommands } from './customer/index.js';
import { registerServeCommand } from './serve.js';
import { VERSION } from '../control/version.js';

// The `tunnelbyte` program: each command group adds itself with one register call.
const program = new Command('tunnelbyte')
  .description('A self-hosted VPN exit: userspace WireGuard, a /v1 control plane and its CLI')
  .version(VERSION);

registerCustomerCommands(program);
registerServeCommand(program);
registerAdminCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  reportAdminError(e);
}
