/**
 * A data directory as one running tunnelbyte holds it (`serve`, `serve
 * --join` or `control`): created on first start (mode 0700, parents as
 * needed), locked against a second server on the same directory, and left
 * as it was found when a start fails.
 *
 * The lock is `tunnelbyte.lock` (`serve.lock` before `tunnelbyte control`
 * shared it; a live holder of that old name — an older tunnelbyte still
 * running during an upgrade — is respected, a stale one removed), holding the owner's pid and its start time
 * (field 22 of /proc/PID/stat), written whole to a file of its own and then
 * hard-linked into place (link(2) refuses an existing name, so taking the
 * lock is atomic and it never appears half-written). A lock whose process is
 * gone, or whose pid now belongs to another process (same pid, other start
 * time), is stale — what a `kill -9` or a power cut leaves — and is taken
 * over. `tunnelbyte admin` does not take the lock: SQLite (WAL) lets it work
 * on the database beside the running server.
 */
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATABASE_FILE } from '../control/paths.js';
import { NODE_CREDENTIAL_FILE } from './node-credential.js';
import { NODE_DATABASE_FILE } from './node-store.js';
import { SERVER_KEY_FILE } from './server-key.js';
import { fsStartError, StartError } from './start-error.js';

export const LOCK_FILE = 'tunnelbyte.lock';

/** The lock's name up to 0.x releases where only `serve` took it. */
export const LEGACY_LOCK_FILE = 'serve.lock';

/** The files a start may create; a failed start removes those of them it found missing. */
const STATE_FILES = [SERVER_KEY_FILE, DATABASE_FILE, `${DATABASE_FILE}-wal`, `${DATABASE_FILE}-shm`, NODE_DATABASE_FILE, `${NODE_DATABASE_FILE}-wal`, `${NODE_DATABASE_FILE}-shm`];

export interface DataDir {
  readonly dir: string;
  readonly lockPath: string;
  /** Removes the state files this start created (a failed start leaves nothing half-made), then the lock. */
  discardNew(): void;
  /** Removes the lock (idempotent). */
  release(): void;
}

/** Creates `dir` if needed and takes its lock; a StartError names the file and the fix. */
export function openDataDir(dir: string): DataDir {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw fsStartError(e, dir, 'create the data directory');
  }
  if (!statSync(dir).isDirectory()) throw new StartError(`the data directory ${dir} is not a directory: give --data (or TB_DATA) a directory`);
  const lockPath = join(dir, LOCK_FILE);
  takeLock(lockPath);
  try {
    refuseLegacyHolder(join(dir, LEGACY_LOCK_FILE));
  } catch (e) {
    rmSync(lockPath, { force: true });
    throw e;
  }
  const existed = new Set(STATE_FILES.filter((f) => existsSync(join(dir, f))));
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    rmSync(lockPath, { force: true });
  };
  return {
    dir,
    lockPath,
    release,
    discardNew() {
      // A node that enrolled in this start keeps its key: the control plane knows the node by it, and
      // the enrollment token is spent, so the credential (node.json, never discarded) needs that key.
      const enrolled = existsSync(join(dir, NODE_CREDENTIAL_FILE));
      for (const f of STATE_FILES) if (!existed.has(f) && !(enrolled && f === SERVER_KEY_FILE)) rmSync(join(dir, f), { force: true });
      release();
    },
  };
}

function takeLock(lockPath: string): void {
  // Written whole beside the lock, then linked into place: link(2) fails if the lock exists, so the
  // lock appears complete or not at all, and two starts cannot both get it.
  const mine = `${lockPath}.${process.pid}`;
  try {
    writeFileSync(mine, `${process.pid} ${startTimeOf(process.pid) ?? ''}\n`, { mode: 0o600 });
  } catch (e) {
    removeQuietly(mine); // a half-written one (a full disk); where the directory refuses us, there is none
    throw fsStartError(e, lockPath, 'write the lock file');
  }
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(mine, lockPath);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fsStartError(e, lockPath, 'create the lock file');
      }
      const owner = lockOwner(lockPath);
      if (owner !== null || attempt > 0) {
        throw inUse(owner, lockPath);
      }
      rmSync(lockPath, { force: true }); // stale: its process is gone
    }
  } finally {
    removeQuietly(mine);
  }
}

function inUse(owner: number | null, lockPath: string): StartError {
  return new StartError(`another tunnelbyte (pid ${owner ?? 'unknown'}) is using this data directory (lock ${lockPath}): stop it first, or give this one another --data`);
}

/** An older tunnelbyte's `serve.lock`: refused while its process lives, removed when stale. */
function refuseLegacyHolder(legacyPath: string): void {
  if (!existsSync(legacyPath)) return;
  const owner = lockOwner(legacyPath);
  if (owner !== null) throw inUse(owner, legacyPath);
  removeQuietly(legacyPath);
}

function removeQuietly(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch {
    /* nothing of ours there */
  }
}

/** The pid of the live process holding the lock, or null when the lock is stale. */
function lockOwner(lockPath: string): number | null {
  let text: string;
  try {
    text = readFileSync(lockPath, 'utf8');
  } catch {
    return null;
  }
  const m = /^(\d+) (\d*)\n?$/.exec(text);
  if (!m) return null; // not a lock this program wrote
  const pid = Number(m[1]);
  const started = startTimeOf(pid);
  if (started === null) return null;
  return m[2] === '' || m[2] === started ? pid : null;
}

/** Field 22 of /proc/PID/stat (start time in clock ticks since boot), or null when there is no such process. */
function startTimeOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) is in parentheses and may hold spaces: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}
