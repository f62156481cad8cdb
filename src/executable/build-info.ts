/**
 * What this build is: the package version, the git commit it was built from
 * and the oldest glibc its binaries run on. `npm run build` writes them to
 * dist/build-info.json (scripts/build-info.js); the single executable carries
 * the same file as an asset. The Node version is the running binary's own
 * (the executable is a node binary).
 */
import { readFileSync } from 'node:fs';
import { embeddedAsset, inSingleExecutable } from './sea.js';

export interface BuildInfo {
  readonly version: string;
  /** Short commit hash, "-dirty" when built from uncommitted changes; "unknown" outside git. */
  readonly commit: string;
  /** The highest GLIBC_x.y symbol version the node binary and the addons need, e.g. "2.34". */
  readonly glibc: string;
}

function read(): BuildInfo {
  if (inSingleExecutable()) return JSON.parse(Buffer.from(embeddedAsset('build-info.json')).toString('utf8')) as BuildInfo;
  // dist/src/executable/build-info.js → dist/build-info.json
  return JSON.parse(readFileSync(new URL('../../build-info.json', import.meta.url), 'utf8')) as BuildInfo;
}

/** This build, read once. */
export const BUILD: BuildInfo = read();

/** The package version (package.json's). */
export const VERSION: string = BUILD.version;

/** The lines `--version` prints: version, commit, Node, glibc. */
export function versionText(program: string): string {
  return `${program} v${BUILD.version}\ncommit ${BUILD.commit}\nnode ${process.version}\nneeds glibc >= ${BUILD.glibc} (x86_64 Linux)`;
}
