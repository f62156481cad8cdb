/**
 * The schema, as numbered migrations. A migration is never edited once
 * released: a change is a new entry with the next number. `migrate()` in
 * database.ts applies the missing ones in order, each in its own
 * transaction, and records them in `schema_migrations`.
 *
 * Conventions: times are integer milliseconds since the epoch (UTC); ids are
 * prefixed random strings (acc_, tok_, ses_, nod_); byte counters are
 * integers; booleans are 0/1.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
CREATE TABLE accounts (
  id                      TEXT PRIMARY KEY,
  tier                    TEXT NOT NULL CHECK (tier IN ('anonymous', 'paid')),
  email                   TEXT UNIQUE,            -- lower-cased; set by upgrade
  password_hash           TEXT,                   -- scrypt$N$r$p$salt$hash
  signup_fingerprint_hash TEXT,                   -- SHA-256 of the machine fingerprint given at signup
  stripe_customer_id      TEXT,
  stripe_subscription_id  TEXT,
  created_at              INTEGER NOT NULL,
  updated_at              INTEGER NOT NULL
);
CREATE INDEX accounts_by_fingerprint ON accounts (signup_fingerprint_hash);
CREATE INDEX accounts_by_stripe_customer ON accounts (stripe_customer_id);

CREATE TABLE tokens (
  id               TEXT PRIMARY KEY,
  account_id       TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  token_hash       TEXT NOT NULL UNIQUE,          -- hex SHA-256 of the bearer token
  kind             TEXT NOT NULL CHECK (kind IN ('signup', 'login', 'upgrade')),
  fingerprint_hash TEXT,                          -- SHA-256 of the machine that obtained it
  created_at       INTEGER NOT NULL,
  last_used_at     INTEGER,
  revoked_at       INTEGER
);
CREATE INDEX tokens_by_account ON tokens (account_id);

CREATE TABLE regions (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  paid_only  INTEGER NOT NULL DEFAULT 0 CHECK (paid_only IN (0, 1)),
  created_at INTEGER NOT NULL
);

CREATE TABLE nodes (
  id                TEXT PRIMARY KEY,
  region_id         TEXT NOT NULL REFERENCES regions (id),
  public_key        TEXT NOT NULL UNIQUE,
  endpoint          TEXT NOT NULL,                -- HOST:PORT written into client configs
  pool4             TEXT NOT NULL,                -- CIDR client IPv4 addresses come from
  pool6             TEXT,                         -- CIDR client IPv6 addresses come from
  created_at        INTEGER NOT NULL,
  last_heartbeat_at INTEGER NOT NULL
);
CREATE INDEX nodes_by_region ON nodes (region_id, last_heartbeat_at);

-- One row per continuous interval during which a node used an exit address.
CREATE TABLE node_exit_addresses (
  id            INTEGER PRIMARY KEY,
  node_id       TEXT NOT NULL REFERENCES nodes (id),
  address       TEXT NOT NULL,                    -- canonical text (ip-address.ts)
  first_seen_at INTEGER NOT NULL,
  last_seen_at  INTEGER NOT NULL
);
CREATE INDEX node_exit_addresses_by_address ON node_exit_addresses (address, last_seen_at);
CREATE INDEX node_exit_addresses_by_node ON node_exit_addresses (node_id, address, last_seen_at);

CREATE TABLE sessions (
  id                TEXT PRIMARY KEY,
  account_id        TEXT NOT NULL REFERENCES accounts (id),
  node_id           TEXT NOT NULL REFERENCES nodes (id),
  region_id         TEXT NOT NULL REFERENCES regions (id),
  client_public_key TEXT NOT NULL,
  address_offset    INTEGER NOT NULL,             -- offset of both client addresses in the node's pools
  ipv4              TEXT NOT NULL,
  ipv6              TEXT,
  state             TEXT NOT NULL CHECK (state IN ('active', 'closed', 'expired')),
  close_reason      TEXT,                         -- client, admin, expired, tier
  created_at        INTEGER NOT NULL,
  expires_at        INTEGER NOT NULL,
  closed_at         INTEGER,
  last_handshake_at INTEGER,
  rx_bytes          INTEGER NOT NULL DEFAULT 0,   -- received by the client (sent by the exit)
  tx_bytes          INTEGER NOT NULL DEFAULT 0    -- sent by the client (received by the exit)
);
-- No two active sessions of a node share an address or a client key.
CREATE UNIQUE INDEX sessions_active_address ON sessions (node_id, address_offset) WHERE state = 'active';
CREATE UNIQUE INDEX sessions_active_key ON sessions (node_id, client_public_key) WHERE state = 'active';
CREATE INDEX sessions_by_account ON sessions (account_id, state);
CREATE INDEX sessions_by_state ON sessions (state, expires_at);

CREATE TABLE usage (
  account_id TEXT NOT NULL REFERENCES accounts (id),
  period     TEXT NOT NULL,                       -- 'YYYY-MM' (UTC calendar month)
  rx_bytes   INTEGER NOT NULL DEFAULT 0,
  tx_bytes   INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (account_id, period)
);

CREATE TABLE stripe_events (
  id          TEXT PRIMARY KEY,                   -- Stripe's event id: each event is applied once
  type        TEXT NOT NULL,
  received_at INTEGER NOT NULL
);
`,
  },
  {
    version: 2,
    name: 'account lifecycle, audit log, active-key index',
    sql: `
ALTER TABLE accounts ADD COLUMN disabled_at INTEGER;  -- admin account disable: no token works, no session runs
ALTER TABLE accounts ADD COLUMN deleted_at  INTEGER;  -- admin account delete: personal data scrubbed, a tombstone stays for history

-- A client key may be the peer of one active session across all nodes (sessions.ts).
CREATE INDEX sessions_active_by_key ON sessions (client_public_key) WHERE state = 'active';

-- Append-only record of account, tier, billing, token, session and admin events.
CREATE TABLE audit (
  id         INTEGER PRIMARY KEY,
  at         INTEGER NOT NULL,
  actor      TEXT NOT NULL,                     -- account:acc_…, admin:<os user>, stripe, system
  source     TEXT,                              -- client address (IPv6: its /64) for API calls; host for admin
  action     TEXT NOT NULL,                     -- account.signup, token.revoke, session.close, …
  account_id TEXT,                              -- no foreign key: the record outlives the account
  subject    TEXT,                              -- what was acted on: tok_…, ses_…, evt_…
  detail     TEXT                               -- JSON
);
CREATE INDEX audit_by_account ON audit (account_id, at);
CREATE INDEX audit_by_time ON audit (at);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
`,
  },
  {
    version: 3,
    name: 'node enrollment and credentials',
    sql: `
-- One-time tokens an operator hands to a machine so that it joins as an exit node of a region
-- (tunnelbyte admin node token). Only the SHA-256 is stored; using one sets used_at and node_id.
CREATE TABLE node_enrollment_tokens (
  id          TEXT PRIMARY KEY,                   -- enr_
  region_id   TEXT NOT NULL,                      -- the region the joining node serves (created at enrollment)
  token_hash  TEXT NOT NULL UNIQUE,               -- hex SHA-256 of the tbe_ token
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  used_at     INTEGER,
  node_id     TEXT REFERENCES nodes (id)
);

-- A node's lifecycle: active (takes new sessions), draining (keeps its sessions, takes no new
-- ones), revoked (its credential is refused; no new sessions), removed (its sessions closed).
ALTER TABLE nodes ADD COLUMN state TEXT NOT NULL DEFAULT 'active'
  CHECK (state IN ('active', 'draining', 'revoked', 'removed'));
-- hex SHA-256 of the node's tbn_ credential; NULL for a node running inside the control plane's process.
ALTER TABLE nodes ADD COLUMN credential_hash TEXT;
CREATE UNIQUE INDEX nodes_by_credential ON nodes (credential_hash) WHERE credential_hash IS NOT NULL;
`,
  },
  {
    version: 4,
    name: 'node usage reports',
    sql: `
-- A joined node reports usage as cumulative per-session counters with a sequence number
-- (services/node-reports.ts): a report at or below report_seq was applied already.
ALTER TABLE nodes ADD COLUMN report_seq INTEGER NOT NULL DEFAULT 0;

-- The cumulative counters last applied per session, from the client's side (rx: to the client),
-- so each report adds only what grew since.
CREATE TABLE node_session_counters (
  session_id TEXT PRIMARY KEY REFERENCES sessions (id),
  node_id    TEXT NOT NULL REFERENCES nodes (id),
  rx_bytes   INTEGER NOT NULL,
  tx_bytes   INTEGER NOT NULL
);
`,
  },
  {
    version: 5,
    name: 'published peer sets of joined nodes',
    sql: `
-- The control -> node channel (services/peer-channel.ts). For each joined node the control plane
-- keeps the peer set it has published (node_peers) and the numbered changes that led to it
-- (node_peer_changes); nodes.peer_revision is the revision of the published set: the number of the
-- last change, 0 before the first. A node that resumes from revision r is sent the changes above r,
-- or a snapshot when r is older than the oldest change kept (the log is bounded per node).
ALTER TABLE nodes ADD COLUMN peer_revision INTEGER NOT NULL DEFAULT 0;

CREATE TABLE node_peers (
  node_id       TEXT NOT NULL REFERENCES nodes (id),
  public_key    TEXT NOT NULL,                    -- the client's WireGuard key (base64)
  session_id    TEXT NOT NULL REFERENCES sessions (id),
  allowed_ips   TEXT NOT NULL,                    -- JSON array of host routes
  preshared_key TEXT,                             -- base64; NULL: none
  PRIMARY KEY (node_id, public_key)
) WITHOUT ROWID;

CREATE TABLE node_peer_changes (
  node_id    TEXT NOT NULL REFERENCES nodes (id),
  revision   INTEGER NOT NULL,                    -- 1, 2, 3, ... per node
  op         TEXT NOT NULL CHECK (op IN ('add', 'remove')),
  public_key TEXT NOT NULL,
  peer       TEXT,                                -- JSON of the added peer; NULL for a removal
  PRIMARY KEY (node_id, revision)
) WITHOUT ROWID;
`,
  },
  {
    version: 6,
    name: 'a random id on every published peer change',
    sql: `
-- A revision number alone does not say which database made it: a control plane restored from an
-- older backup, or started on another database, numbers its own changes 1, 2, 3, ... again, and a
-- node holding revision r of the first would be sent the second's changes above r on top of a set
-- it never had. So every change gets a random id (64 bits, made here in SQLite) and a node resumes
-- with the revision and the id of the change that made it: the changes above r are sent only when
-- this database's change r has that id — a row is only ever written once, so a database holding
-- it descends from the one the node followed — and otherwise the node gets a snapshot. A backup
-- copy carries any id stored once for the whole database; the id of the change at r it carries only
-- if it was taken after change r was written, and then its changes up to r are the node's too.
-- Changes logged before this migration have none (NULL): a node resuming from one gets a snapshot.
ALTER TABLE node_peer_changes ADD COLUMN change_id TEXT;
`,
  },
];
