/**
 * Native addons embedded in the single executable. The dynamic loader maps a
 * shared object from a file, never from memory, so each embedded addon is
 * written once to a directory named by its content hash and loaded from there
 * with `process.dlopen`:
 *
 *   <dir>/<first 32 hex digits of its SHA-256>/<name>
 *
 * `<dir>` is the first of the candidates (`addonCacheDirs`) where that works:
 * the cache directory, else a directory under the data directory. A file that
 * is already there is reused only if its bytes are the asset's; each directory
 * on the way must be ours (owner = effective uid) and not writable by group or
 * others, since whoever can replace the file runs code in this process. A
 * cache on a `noexec` mount makes dlopen fail ("failed to map segment"), and
 * the next candidate is tried; when none works, one `AddonCacheError` names
 * every directory, why it failed, and the fix.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants as fsConstants, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { constants as osConstants, homedir } from 'node:os';
import { join } from 'node:path';

/** Overrides the cache directory for the embedded addons. */
export const CACHE_DIR_ENV = 'TB_CACHE_DIR';
/**
 * The cache directory systemd gives a unit with CacheDirectory= (systemd.exec(5),
 * "Environment variables in spawned processes": absolute paths, colon-separated
 * when the unit names several).
 */
export const SYSTEMD_CACHE_DIR_ENV = 'CACHE_DIRECTORY';
/** The cache directory as root (contrib/systemd/tunnelbyte.service's CacheDirectory=tunnelbyte is the same path). */
export const ROOT_CACHE_DIR = '/var/cache/tunnelbyte';
/** The fallback under the data directory. */
export const DATA_DIR_ADDONS = 'addons';

/** The addon could not be written or loaded in any candidate directory. */
export class AddonCacheError extends Error {
  override readonly name = 'AddonCacheError';
}

/**
 * The directories to try, in order: TB_CACHE_DIR, else the first of
 * systemd's $CACHE_DIRECTORY (so the unit's CacheDirectory= is used whatever
 * a drop-in renames it to), else /var/cache/tunnelbyte as root, else
 * $XDG_CACHE_HOME/tunnelbyte (~/.cache/tunnelbyte); then `<dataDir>/addons`
 * when a data directory is known.
 */
export function addonCacheDirs(dataDir: string | null, env: NodeJS.ProcessEnv = process.env, uid: number | undefined = process.geteuid?.()): string[] {
  let cache: string;
  const systemd = env[SYSTEMD_CACHE_DIR_ENV]?.split(':')[0];
  if (env[CACHE_DIR_ENV]) cache = env[CACHE_DIR_ENV];
  else if (systemd?.startsWith('/')) cache = systemd;
  else if (uid === 0) cache = ROOT_CACHE_DIR;
  else cache = join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'tunnelbyte');
  const dirs = [cache];
  if (dataDir !== null) dirs.push(join(dataDir, DATA_DIR_ADDONS));
  return dirs;
}

/** Creates `dir` (0700) if needed and checks that it is a directory of ours that nobody else can write. */
function privateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  const uid = process.geteuid?.();
  if (uid !== undefined && st.uid !== uid) throw new Error(`${dir} belongs to uid ${st.uid}, not to this user (${uid})`);
  if ((st.mode & 0o022) !== 0) throw new Error(`${dir} is writable by group or others (mode ${(st.mode & 0o777).toString(8)})`);
}

function sameBytes(path: string, bytes: Uint8Array): boolean {
  try {
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).equals(readFileSync(path));
  } catch {
    return false;
  }
}

/** Writes `bytes` to `path` through a temporary file and a rename, so a reader never sees half a file. */
function writeAtomically(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_NOFOLLOW, 0o600);
  try {
    for (let off = 0; off < bytes.byteLength; ) off += writeSync(fd, bytes, off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    unlinkSync(tmp);
    throw e;
  }
}

/** The file for `bytes` in `dir` (written or verified), loaded with process.dlopen. */
function loadIn(dir: string, name: string, hash: string, bytes: Uint8Array): unknown {
  privateDir(dir);
  const sub = join(dir, hash);
  privateDir(sub);
  const file = join(sub, name);
  if (!sameBytes(file, bytes)) writeAtomically(file, bytes);
  const mod: { exports: unknown } = { exports: {} };
  process.dlopen(mod, file, osConstants.dlopen.RTLD_NOW);
  return mod.exports;
}

/** Loads an embedded addon (`name`, its bytes) from the first of `dirs` where it can be written and mapped. */
export function loadEmbeddedAddon(name: string, bytes: Uint8Array, dirs: readonly string[]): unknown {
  if (!/^[A-Za-z0-9_.-]+\.node$/.test(name)) throw new TypeError(`not an addon file name: ${name}`);
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 32);
  const failures: string[] = [];
  for (const dir of dirs) {
    try {
      return loadIn(dir, name, hash, bytes);
    } catch (e) {
      const msg = (e as Error).message.split('\n')[0]!;
      failures.push(`${dir}: ${/failed to map segment/.test(msg) ? `mounted noexec? (${msg})` : msg}`);
    }
  }
  throw new AddonCacheError(
    `cannot load the embedded native addon ${name}: ${failures.join('; ')}. ` +
      `Fix: set ${CACHE_DIR_ENV} to a directory of this user's on a filesystem mounted without noexec (or remount the one above with exec).`,
  );
}
