/**
 * The one SQLite handle: better-sqlite3 (12.x) in WAL mode, so the exit
 * server and `tunnelbyte admin` can use the same file at once (readers never
 * block the writer; writers wait up to `busy_timeout` for each other).
 * Migrations are applied at open, under an IMMEDIATE transaction so two
 * processes opening a fresh file at the same moment do not both apply them.
 */
import Database from 'better-sqlite3';
import { sqliteNativeBinding } from '../../executable/native-addons.js';
import { MIGRATIONS, type Migration } from './migrations.js';

export type Db = Database.Database;

export interface OpenOptions {
  /** Milliseconds a writer waits for another process's write lock (default 5000). */
  busyTimeoutMs?: number;
  /** Migrations to apply (tests may pass their own list). */
  migrations?: readonly Migration[];
  /** Current time for `schema_migrations.applied_at`. */
  now?: () => number;
}

/** Opens (creating if needed) the database file, sets WAL and foreign keys, and migrates it. */
export function openDatabase(path: string, opts: OpenOptions = {}): Db {
  // In the single executable better-sqlite3's addon is embedded and handed over here; from a checkout it
  // finds its own. (@types/better-sqlite3 types nativeBinding as a path only; better-sqlite3 12 also takes
  // the loaded addon, lib/database.js.)
  const nativeBinding = sqliteNativeBinding();
  const db = new Database(path, nativeBinding === undefined ? {} : ({ nativeBinding } as unknown as Database.Options));
  try {
    db.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? 5000}`);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    migrate(db, opts.migrations ?? MIGRATIONS, opts.now ?? Date.now);
    return db;
  } catch (e) {
    db.close();
    throw e;
  }
}

/** The highest migration version recorded in the file (0 for a fresh one). */
export function schemaVersion(db: Db): number {
  const row = db
    .prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`)
    .get() as { name: string } | undefined;
  if (!row) return 0;
  return (db.prepare('SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations').get() as { v: number }).v;
}

/**
 * Applies every migration above the file's version, in order, each in its own
 * IMMEDIATE transaction (re-checking the version inside it). Returns the
 * versions applied. A file written by a newer tunnelbyte (a version above the
 * last known migration) is refused rather than used with a schema this code
 * does not know.
 */
export function migrate(db: Db, migrations: readonly Migration[] = MIGRATIONS, now: () => number = Date.now): number[] {
  for (let i = 0; i < migrations.length; i++) {
    if (migrations[i]!.version !== i + 1) throw new Error(`migrations must be numbered 1..n in order (found ${migrations[i]!.version} at ${i + 1})`);
  }
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at INTEGER NOT NULL
  )`);
  const known = migrations.length;
  const current = schemaVersion(db);
  if (current > known) {
    throw new Error(`database schema version ${current} is newer than this tunnelbyte knows (${known}); upgrade tunnelbyte`);
  }
  const applied: number[] = [];
  for (const m of migrations) {
    const step = db.transaction(() => {
      if (schemaVersion(db) >= m.version) return false;
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, now());
      return true;
    });
    if (step.immediate()) applied.push(m.version);
  }
  return applied;
}
