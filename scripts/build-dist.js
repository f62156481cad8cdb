#!/usr/bin/env node
// `npm run dist` (after `npm run build`): the single executable dist/tunnelbyte-linux-x64, one file that
// runs without Node.js, node_modules or a compiler. It is Node's Single Executable Application
// (nodejs.org/api/single-executable-applications.html) on this node binary:
//
//   1. esbuild bundles dist/src/cli/single-executable.js and everything it imports into one CommonJS
//      file (a SEA's main script is CommonJS; dynamic imports of bundled modules stay lazy);
//   2. `node --experimental-sea-config` turns it into a blob with V8's code cache (useCodeCache) and
//      the assets: tunnelbyte's addon, better-sqlite3's addon (both loaded at run time by
//      src/executable/native-addons.ts) and build-info.json;
//   3. a copy of this node binary gets the variable name NODE_OPTIONS renamed where node's C++ reads
//      it (see ignoreNodeOptions), and postject injects the blob into the copy.
//
// The result references the glibc symbol versions of node and the addons (dist/build-info.json).
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const work = join(root, 'dist/sea');
export const OUTPUT = join(root, 'dist/tunnelbyte-linux-x64');
/** The sentinel node's SEA support looks for (node's src/node_sea.cc, the same in every release with SEA). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/**
 * Node reads NODE_OPTIONS in C++ (node.cc, credentials::SafeGetenv("NODE_OPTIONS")) before any of this
 * program's code runs, and in a SEA it still honours it: NODE_OPTIONS=--require=FILE would run FILE inside
 * the service. Node 20 has no switch for this (execArgvExtension came later), so the copy gets the name
 * in that C string replaced by one of the same length that a shell cannot export ('-' is not allowed in
 * a variable name): the binary then never sees NODE_OPTIONS. The literal is the one in .rodata between
 * ": not found" and "NODE_REPL_EXTERNAL_MODULE" (the C++ getenv names, merged by the linker); the other
 * "NODE_OPTIONS" bytes in the binary are JavaScript source and V8 snapshot data, left alone. If this node
 * build lays it out differently the build stops rather than ship an executable that honours it.
 */
const NODE_OPTIONS_LITERAL = Buffer.from('\0NODE_OPTIONS\0NODE_REPL_EXTERNAL_MODULE\0', 'latin1');
export const NODE_OPTIONS_RENAMED = '-tb-disabled';
function ignoreNodeOptions(binary) {
  const at = binary.indexOf(NODE_OPTIONS_LITERAL);
  if (at === -1 || binary.indexOf(NODE_OPTIONS_LITERAL, at + 1) !== -1) {
    throw new Error(`${process.execPath}: cannot find node's NODE_OPTIONS getenv literal exactly once; not building an executable that would honour NODE_OPTIONS`);
  }
  binary.write(NODE_OPTIONS_RENAMED, at + 1, 'latin1');
}

async function main() {
  const t0 = Date.now();
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });

  // 1. one CommonJS file
  const esbuild = require('esbuild');
  const bundle = join(work, 'tunnelbyte.cjs');
  await esbuild.build({
    entryPoints: [join(root, 'dist/src/cli/single-executable.js')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    minify: true,
    legalComments: 'none',
    logLevel: 'warning',
    // import.meta.url has no CommonJS equivalent; the executable's own file URL keeps `new URL(x, import.meta.url)`
    // valid. Code that needs a checkout path asks inSingleExecutable() first (src/executable/).
    define: { 'import.meta.url': '__tbImportMetaUrl' },
    banner: { js: 'var __tbImportMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
  });

  // 2. the blob: code cache and assets
  const addons = {
    'tunnelbyte_io.node': join(root, 'native/build/Release/tunnelbyte_io.node'),
    'better_sqlite3.node': join(dirname(require.resolve('better-sqlite3/package.json')), 'build/Release/better_sqlite3.node'),
  };
  const blob = join(work, 'tunnelbyte.blob');
  const config = {
    main: bundle,
    output: blob,
    disableExperimentalSEAWarning: true,
    useCodeCache: true,
    useSnapshot: false,
    // the bundle once more as an asset: the exit's device worker thread runs it (src/server/device-channel.ts)
    assets: { ...addons, 'build-info.json': join(root, 'dist/build-info.json'), 'tunnelbyte.cjs': bundle },
  };
  writeFileSync(join(work, 'sea-config.json'), JSON.stringify(config, null, 2));
  execFileSync(process.execPath, ['--experimental-sea-config', join(work, 'sea-config.json')], { stdio: ['ignore', 'ignore', 'inherit'] });

  // 3. the node binary, NODE_OPTIONS renamed, blob injected; renamed into place only when complete
  const tmp = join(work, 'tunnelbyte-linux-x64.tmp');
  copyFileSync(process.execPath, tmp);
  const binary = readFileSync(tmp);
  // A node that links libnode.so (some distributions' packages) would make an executable that needs that
  // library beside it, and one built without SEA support has no fuse to flip: refuse both, saying so.
  if (!binary.includes(SEA_FUSE)) throw new Error(`${process.execPath} was built without Single Executable Application support; build with an official Node.js 20 binary`);
  if (binary.includes('libnode.so')) throw new Error(`${process.execPath} links libnode.so dynamically: the executable would not be one file; build with an official (static) Node.js 20 binary`);
  ignoreNodeOptions(binary);
  writeFileSync(tmp, binary);
  const { inject } = require('postject');
  await inject(tmp, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SEA_FUSE });
  chmodSync(tmp, 0o755);
  renameSync(tmp, OUTPUT);
  process.stdout.write(`${OUTPUT} (${(binary.length / 2 ** 20).toFixed(0)} MiB node + ${(readFileSync(blob).length / 2 ** 20).toFixed(1)} MiB blob) in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}

await main();
