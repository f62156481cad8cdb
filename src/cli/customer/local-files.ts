/**
 * What the customer CLI keeps on this machine, all in one directory that only
 * the user can read (0700, files 0600):
 *
 *   token            the API token written by signup / login / upgrade (TB_KEY overrides it)
 *   connection.json  what `connect` changed, so that `disconnect` can undo it
 *   machine-id       a random id, only when the system has no machine id
 *
 * The directory is env-paths' config dir without suffix ($XDG_CONFIG_HOME/tunnelbyte,
 * ~/.config/tunnelbyte) except on macOS, where the API document names
 * ~/Library/Application Support/tunnelbyte (env-paths would say Preferences).
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import envPaths from 'env-paths';
import { CliError } from './errors.js';

export function configDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  if (platform === 'darwin') return join(env.HOME || homedir(), 'Library', 'Application Support', 'tunnelbyte');
  return envPaths('tunnelbyte', { suffix: '' }).config;
}

export const tokenPath = (dir = configDir()): string => join(dir, 'token');
export const connectionPath = (dir = configDir()): string => join(dir, 'connection.json');

function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

/** Writes a private file atomically (temp file, then rename), mode 0600. */
export function writePrivateFile(path: string, text: string, dir: string): void {
  ensureDir(dir);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export type TokenSource = 'TB_KEY' | 'file';

/** The token to use: TB_KEY when set, else the cache file; null when there is neither. */
export function readToken(env: NodeJS.ProcessEnv = process.env, dir = configDir()): { token: string; source: TokenSource } | null {
  const fromEnv = env.TB_KEY?.trim();
  if (fromEnv) return { token: fromEnv, source: 'TB_KEY' };
  try {
    const t = readFileSync(tokenPath(dir), 'utf8').trim();
    return t ? { token: t, source: 'file' } : null;
  } catch {
    return null;
  }
}

export function saveToken(token: string, dir = configDir()): string {
  const p = tokenPath(dir);
  writePrivateFile(p, token + '\n', dir);
  return p;
}

const MACHINE_ID_FILES = ['/etc/machine-id', '/var/lib/dbus/machine-id'];

/**
 * The machine fingerprint sent as X-TB-Fingerprint: the SHA-256 (hex) of the
 * machine-id file as it is on disk, i.e. `sha256sum /etc/machine-id` (the
 * form the control README's curl examples use). The raw id never leaves the
 * machine. Without a machine id, a random one is kept in the config dir.
 * TB_FINGERPRINT replaces it (tests, containers that share a machine id).
 */
export function machineFingerprint(env: NodeJS.ProcessEnv = process.env, dir = configDir(), files = MACHINE_ID_FILES): string {
  const override = env.TB_FINGERPRINT?.trim();
  if (override) return override;
  for (const f of files) {
    try {
      const raw = readFileSync(f);
      if (raw.toString('utf8').trim().length > 0) return sha256Hex(raw);
    } catch {
      /* next */
    }
  }
  const own = join(dir, 'machine-id');
  if (!existsSync(own)) writePrivateFile(own, randomBytes(16).toString('hex') + '\n', dir);
  return sha256Hex(readFileSync(own));
}

const sha256Hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export function readJsonFile<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new CliError(`cannot read ${path}: ${(e as Error).message}`, 'it belongs to another user? (sudo keeps its own config dir)');
  }
}

export const removeFile = (path: string): void => rmSync(path, { force: true });
