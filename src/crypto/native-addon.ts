/**
 * Loading the crypto exports of the tunnelbyte addon (native/src/aead.cc,
 * blake2s.cc, xaead.cc). The native wrappers (aead-native.ts,
 * blake2s-native.ts, xaead-native.ts) each take the functions they need from
 * the module this returns and check that they are there. The module itself
 * comes from the one loader of the addon, src/executable/native-addons.ts
 * (this checkout's build, or the copy embedded in the single executable).
 */
import { loadTunnelbyteAddon } from '../executable/native-addons.js';

/**
 * The addon at `path` (another build, for tests; default: the program's own)
 * with the functions `names` (what: the primitive, for the message); throws,
 * saying why, when it cannot be loaded or lacks one.
 */
export function loadAddonFunctions<T>(path: string | undefined, names: readonly string[], what: string): T {
  const m = loadTunnelbyteAddon(path) as Record<string, unknown> | null;
  const missing = names.filter((n) => typeof m !== 'object' || m === null || typeof m[n] !== 'function');
  if (missing.length > 0) throw new TypeError(`${path ?? 'the native addon'}: the addon has no ${missing.map((n) => `${n}()`).join('/')} (built without OpenSSL's ${what}?)`);
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
