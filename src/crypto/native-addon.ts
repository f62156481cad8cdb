/**
 * Loading the crypto exports of the tunnelbyte addon (native/src/aead.cc,
 * blake2s.cc, xaead.cc). The native wrappers (aead-native.ts,
 * blake2s-native.ts, xaead-native.ts) each take the functions they need from
 * the module this returns and check that they are there.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * Where `npm run build` puts the addon, from dist/src/crypto/. The same file
 * src/io/linux/binding.ts loads (require caches it once); the path is
 * repeated here because crypto is the lowest layer and imports nothing above.
 */
export const DEFAULT_ADDON_PATH = fileURLToPath(new URL('../../../native/build/Release/tunnelbyte_io.node', import.meta.url));

const require = createRequire(import.meta.url);

/**
 * The addon at `path` with the functions `names` (what: the primitive, for
 * the message); throws, saying why, when it cannot be loaded or lacks one.
 */
export function loadAddonFunctions<T>(path: string, names: readonly string[], what: string): T {
  let mod: unknown;
  try {
    mod = require(path);
  } catch (e) {
    throw new Error(`cannot load the native addon at ${path} (run \`npm run build\`): ${(e as Error).message}`, { cause: e });
  }
  const m = mod as Record<string, unknown> | null;
  const missing = names.filter((n) => typeof m !== 'object' || m === null || typeof m[n] !== 'function');
  if (missing.length > 0) throw new TypeError(`${path}: the addon has no ${missing.map((n) => `${n}()`).join('/')} (built without OpenSSL's ${what}?)`);
  return m as unknown as T;
}

/** Runs `load`; its value, or null and the message of what it threw (a backend reported unavailable). */
export function loadOrReason<T>(load: () => T): { value: T | null; error: string | null } {
  try {
    return { value: load(), error: null };
  } catch (e) {
    return { value: null, error: (e as Error).message };
  }
}
