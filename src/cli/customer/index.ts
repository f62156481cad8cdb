/**
 * The customer side of `tunnelbyte` (docs/contract.md §6): account commands
 * (signup, login, upgrade, token, usage, regions, sessions, ip) and the
 * tunnel on this machine (connect, disconnect, status). See CUSTOMER.md.
 */
import type { Command } from 'commander';
import { registerAccountCommands } from './account-commands.js';
import { processIo, type Io } from './command-kit.js';
import { registerTunnelCommands } from './tunnel-commands.js';

export function registerCustomerCommands(program: Command, io: Io = processIo): void {
  registerAccountCommands(program, io);
  registerTunnelCommands(program, io);
}
