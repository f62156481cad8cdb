/**
 * The entry point of the single executable (`npm run dist`, scripts/build-dist.js
 * bundles from here). One file is both programs: started as `tunnelbyte-wg`
 * (a symlink or a copy of that name) it is the wireguard-go drop-in, else the
 * `tunnelbyte` CLI, which also answers `tunnelbyte wg ...`.
 *
 * In a single executable node puts the path it was started as at argv[1]
 * (argv[0] is the resolved executable), so argv[1]'s basename is the name the
 * caller used. The executable does not read NODE_OPTIONS at all (the build
 * renames the variable node's C++ reads, scripts/build-dist.js); it is removed
 * here too, so that programs started from this one do not inherit it.
 * The exit's device worker thread runs this same bundle (there is no other
 * file to give a worker); it is told apart by its workerData.
 */
import { basename } from 'node:path';
import { isDeviceWorker } from '../server/device-channel.js';

delete process.env.NODE_OPTIONS;

const name = basename(process.argv[1] ?? '');
const run = isDeviceWorker()
  ? import('../server/device-worker.js') // this bundle, run again as the exit's device thread
  : name === 'tunnelbyte-wg'
    ? import('./tunnelbyte-wg.js').then((m) => m.runTunnelbyteWg(process.argv.slice(2)))
    : import('./tunnelbyte.js').then((m) => m.runTunnelbyte(process.argv));
run.catch((e: unknown) => {
  process.stderr.write(`${name}: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
