/**
 * The store: every repository over one database handle, and the one way to
 * run several writes atomically. It is the only code that writes SQL.
 */
import { accountRepository } from './accounts.js';
import { auditRepository } from './audit.js';
import { openDatabase, type Db, type OpenOptions } from './database.js';
import { enrollmentTokenRepository } from './node-enrollment.js';
import { nodePeerRepository } from './node-peers.js';
import { nodeReportRepository } from './node-reports.js';
import { nodeRepository } from './nodes.js';
import { regionRepository } from './regions.js';
import { sessionRepository } from './sessions.js';
import { stripeEventRepository } from './stripe-events.js';
import { tokenRepository } from './tokens.js';
import { usageRepository } from './usage.js';

export function createStore(db: Db) {
  return {
    db,
    accounts: accountRepository(db),
    tokens: tokenRepository(db),
    regions: regionRepository(db),
    nodes: nodeRepository(db),
    enrollmentTokens: enrollmentTokenRepository(db),
    nodeReports: nodeReportRepository(db),
    nodePeers: nodePeerRepository(db),
    sessions: sessionRepository(db),
    usage: usageRepository(db),
    stripeEvents: stripeEventRepository(db),
    audit: auditRepository(db),
    /**
     * Runs `fn` in an IMMEDIATE transaction (the write lock is taken at the
     * start, so a read-then-write such as address allocation cannot interleave
     * with another process's). Nested calls join the outer transaction.
     */
    transaction<T>(fn: () => T): T {
      return db.transaction(fn).immediate();
    },
    close(): void {
      db.close();
    },
  };
}

export type Store = ReturnType<typeof createStore>;

/** Opens the file (migrating it) and builds the store over it. */
export function openStore(path: string, opts?: OpenOptions): Store {
  return createStore(openDatabase(path, opts));
}
