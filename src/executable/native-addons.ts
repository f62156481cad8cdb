/**
 * The one place the native addons are loaded from, for both ways this program
 * runs:
 *
 * - from a checkout (`node bin/tunnelbyte.js`): tunnelbyte's addon is the file
 *   `npm run build` made (native/build/Release/tunnelbyte_io.node), and
 *   better-sqlite3 finds its own addon in node_modules;
 * - as the single executable: both are assets embedded in it, written to the
 *   cache and loaded by `loadEmbeddedAddon` (addon-cache.ts).
 *
 * The addon's users (src/io/linux/binding.ts for TUN/UDP, src/crypto/aead-native.ts
 * for the AEAD) check the exports they need; here the module is loaded once.
 * The addon calls OpenSSL through the symbols the node binary exports, and the
 * single executable is that node binary, so the native AEAD works in both.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { AddonCacheError, addonCacheDirs, loadEmbeddedAddon } from './addon-cache.js';
import { embeddedAsset, inSingleExecutable } from './sea.js';

/** tunnelbyte's addon: its asset name in the executable and its file name in the checkout. */
export const TUNNELBYTE_ADDON = 'tunnelbyte_io.node';
/** better-sqlite3's addon, as an asset. */
export const SQLITE_ADDON = 'better_sqlite3.node';

/** Where `npm run build` puts tunnelbyte's addon (this file is dist/src/executable/native-addons.js). */
export function checkoutAddonPath(): string {
  return fileURLToPath(new URL(`../../../native/build/Release/${TUNNELBYTE_ADDON}`, import.meta.url));
}

let dataDir: string | null = null;

/**
 * The data directory, whose `addons/` subdirectory is the fallback when the
 * cache cannot hold executable files (the CLI sets it from --data/TB_DATA
 * before running a command).
 */
export function setAddonDataDir(dir: string | null): void {
  dataDir = dir;
}

const loaded = new Map<string, unknown>();

function embedded(name: string): unknown {
  let m = loaded.get(name);
  if (m === undefined) {
    m = loadEmbeddedAddon(name, embeddedAsset(name), addonCacheDirs(dataDir));
    loaded.set(name, m);
  }
  return m;
}

/**
 * Loads an addon file (a checkout build, or another build a test names; a
 * CommonJS stand-in works too). `require` keeps one instance per path.
 */
export function loadAddonFile(path: string): unknown {
  return createRequire(import.meta.url)(path);
}

/**
 * tunnelbyte's addon: the build at `path` (tests give another one), else the
 * program's own — embedded in the executable, or this checkout's build.
 * Throws, saying why and what to do, when it cannot be loaded; the users check
 * the exports they need.
 */
export function loadTunnelbyteAddon(path?: string): unknown {
  if (path === undefined && inSingleExecutable()) return embedded(TUNNELBYTE_ADDON); // AddonCacheError names its fix
  const file = path ?? checkoutAddonPath();
  try {
    return loadAddonFile(file);
  } catch (e) {
    if (e instanceof AddonCacheError) throw e;
    throw new Error(`cannot load the native addon at ${file} (run \`npm run build\`): ${(e as Error).message}`, { cause: e });
  }
}

/**
 * better-sqlite3's `nativeBinding` option: the embedded addon in the
 * executable; undefined from a checkout (better-sqlite3 then finds its own).
 */
export function sqliteNativeBinding(): object | undefined {
  return inSingleExecutable() ? (embedded(SQLITE_ADDON) as object) : undefined;
}
