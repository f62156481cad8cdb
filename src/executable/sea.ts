/**
 * Is this process the single executable (`npm run dist`: Node's Single Executable Application, the
 * node binary with this program and its assets injected), and the assets embedded in it. In a
 * plain `node bin/tunnelbyte.js` run there are no assets and `isSea()` is false.
 *
 * Assets (named in scripts/build-dist.js): the two native addons, build-info.json, and the bundle
 * itself (tunnelbyte.cjs), which worker threads run.
 */
import * as sea from 'node:sea';

let single: boolean | undefined;

/** True inside the single executable. */
export function inSingleExecutable(): boolean {
  single ??= sea.isSea();
  return single;
}

/**
 * The bytes of an embedded asset, without a copy (a read-only view of the executable's own
 * memory, node:sea `getRawAsset`). Throws outside the single executable or for an unknown name.
 */
export function embeddedAsset(name: string): Uint8Array {
  if (!inSingleExecutable()) throw new Error(`no embedded asset ${name}: not running as the single executable`);
  const raw = sea.getRawAsset(name);
  return typeof raw === 'string' ? Buffer.from(raw, 'utf8') : new Uint8Array(raw);
}
