/**
 * Where tunnelbyte keeps its state (docs/contract.md §4): `--data DIR`, else `TB_DATA`,
 * else `/var/lib/tunnelbyte` when running as root, else the user's data
 * directory (env-paths: `$XDG_DATA_HOME/tunnelbyte` on Linux,
 * `~/Library/Application Support/tunnelbyte` on macOS). `tunnelbyte serve`
 * and `tunnelbyte admin` both resolve it here so they open the same file.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import envPaths from 'env-paths';

export const ROOT_DATA_DIR = '/var/lib/tunnelbyte';
export const DATABASE_FILE = 'tunnelbyte.db';

export interface DataDirSources {
  /** The `--data` flag, when given. */
  flag?: string | undefined;
  /** The environment (TB_DATA is read from it). */
  env?: NodeJS.ProcessEnv;
  /** The effective user id (process.geteuid()); 0 means root. */
  uid?: number | undefined;
}

/** The data directory: flag, then TB_DATA, then the root or per-user default. Always absolute. */
export function resolveDataDir(src: DataDirSources = {}): string {
  const env = src.env ?? process.env;
  if (src.flag) return resolve(src.flag);
  if (env.TB_DATA) return resolve(env.TB_DATA);
  const uid = src.uid ?? process.geteuid?.();
  if (uid === 0) return ROOT_DATA_DIR;
  return envPaths('tunnelbyte', { suffix: '' }).data;
}

/** Creates the data directory (mode 0700) if needed and returns the SQLite file's path inside it. */
export function databasePath(dataDir: string): string {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return join(dataDir, DATABASE_FILE);
}
