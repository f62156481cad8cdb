#!/usr/bin/env node
// `npm run build`: the native addon (node-gyp) and the TypeScript (tsc), each
// only as far as something changed, so that `npm test` right after `npm ci`
// (whose `prepare` already built everything) does not build a second time,
// while `npm test` after an edit still tests the current code:
// - native: `node-gyp configure` only when there is no Makefile yet or
//   binding.gyp is newer than it; then `node-gyp build`, i.e. make, which
//   recompiles only sources newer than their objects;
// - TypeScript: tsc with `incremental` (tsconfig.json), which re-emits only
//   what changed since dist/.tsbuildinfo;
// - dist/build-info.json is written every time (a git call).
// `--force` reconfigures and rebuilds the addon from scratch (e.g. after
// switching Node versions).
import { existsSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const native = join(root, 'native');
const force = process.argv.includes('--force');

function run(cmd, args, cwd = root) {
  const r = spawnSync(cmd, args, { cwd, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal})`);
    process.exit(r.status ?? 1);
  }
}

const bin = (name) => join(root, 'node_modules', '.bin', name);
const makefile = join(native, 'build', 'Makefile');
const gyp = join(native, 'binding.gyp');
if (force || !existsSync(makefile) || statSync(gyp).mtimeMs > statSync(makefile).mtimeMs) {
  if (force) run(bin('node-gyp'), ['clean'], native);
  run(bin('node-gyp'), ['configure'], native);
}
run(bin('node-gyp'), ['build'], native);
run(bin('tsc'), ['-p', 'tsconfig.json']);
// dist/build-info.json: version, commit, glibc needed (scripts/build-info.js; cheap, always rewritten).
run(process.execPath, [join(root, 'scripts', 'build-info.js')]);
