/**
 * How this program starts a copy of itself (the tunnelbyte-wg daemon, `connect`
 * bringing up its interface): the single executable runs itself, named
 * `tunnelbyte` through argv0 so that a copy installed under another name still
 * reads its arguments as the `tunnelbyte` CLI; from a checkout, node runs
 * bin/tunnelbyte.js.
 */
import { fileURLToPath } from 'node:url';
import { inSingleExecutable } from '../executable/sea.js';

export interface SelfCommand {
  readonly cmd: string;
  readonly args: readonly string[];
  /** argv[0] for the child (spawn's `argv0`). */
  readonly argv0: string;
}

export function selfCommand(): SelfCommand {
  if (inSingleExecutable()) return { cmd: process.execPath, args: [], argv0: 'tunnelbyte' };
  // dist/src/cli/self-command.js → bin/tunnelbyte.js
  return { cmd: process.execPath, args: [fileURLToPath(new URL('../../../bin/tunnelbyte.js', import.meta.url))], argv0: process.execPath };
}
