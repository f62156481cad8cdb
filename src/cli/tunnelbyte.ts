import { Command } from 'commander';
import { VERSION } from './version.js';

const program = new Command('tunnelbyte')
  .description('A self-hosted VPN exit: userspace WireGuard, a /v1 control plane and its CLI')
  .version(VERSION);

await program.parseAsync(process.argv);
