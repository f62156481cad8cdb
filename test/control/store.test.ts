/** The SQLite store: migrations on a fresh file, re-opening, concurrent handles, refusing newer schemas. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { migrate, openDatabase, schemaVersion } from '../../src/control/store/database.js';
import { MIGRATIONS } from '../../src/control/store/migrations.js';
import { openStore } from '../../src/control/store/store.js';

describe('store and migrations', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tb-store-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('migrates an empty file to the latest version in WAL mode, and re-opening applies nothing', () => {
    const path = join(dir, 'fresh.db');
    const db = openDatabase(path, { now: () => 42 });
    assert.equal(schemaVersion(db), MIGRATIONS.length);
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(db.pragma('foreign_keys', { simple: true }), 1);
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as { name: string }[]).map((r) => r.name);
    for (const t of ['accounts', 'tokens', 'regions', 'nodes', 'node_exit_addresses', 'sessions', 'usage', 'stripe_events', 'schema_migrations']) {
      assert.ok(tables.includes(t), t);
    }
    assert.deepEqual(migrate(db), [], 'idempotent on the same handle');
    db.close();
    const again = openDatabase(path);
    assert.deepEqual(
      again.prepare('SELECT version, name, applied_at FROM schema_migrations').all(),
      MIGRATIONS.map((m) => ({ version: m.version, name: m.name, applied_at: 42 })),
    );
    again.close();
  });

  it('data survives re-opening; two handles share the file', () => {
    const path = join(dir, 'shared.db');
    const a = openStore(path);
    const b = openStore(path);
    a.regions.upsert({ id: 'eu', name: 'Europe', paidOnly: false, now: 1 });
    assert.equal(b.regions.get('eu')?.name, 'Europe', 'visible to the other handle');
    b.transaction(() => b.regions.upsert({ id: 'us', name: 'US', paidOnly: true, now: 2 }));
    assert.equal(a.regions.get('us')?.paidOnly, true);
    a.close();
    b.close();
    const c = openStore(path);
    assert.deepEqual(c.regions.listWithActiveNodes(0).map((r) => r.id), ['eu', 'us']);
    c.close();
  });

  it('applies only the missing migrations, in order, to an older file', () => {
    const path = join(dir, 'older.db');
    const extra = [...MIGRATIONS, { version: MIGRATIONS.length + 1, name: 'test column', sql: 'ALTER TABLE regions ADD COLUMN note TEXT' }];
    openDatabase(path).close();
    const db = openDatabase(path, { migrations: extra });
    assert.equal(schemaVersion(db), extra.length);
    db.prepare(`INSERT INTO regions (id, name, created_at, note) VALUES ('x', 'x', 0, 'hi')`).run();
    db.close();
    assert.throws(() => openDatabase(path), /newer than this tunnelbyte knows/);
  });

  it('a failing migration leaves the file at the previous version', () => {
    const path = join(dir, 'broken.db');
    const bad = [...MIGRATIONS, { version: MIGRATIONS.length + 1, name: 'broken', sql: 'CREATE TABLE ok_table (x); THIS IS NOT SQL' }];
    assert.throws(() => openDatabase(path, { migrations: bad }));
    const raw = new Database(path);
    assert.equal(schemaVersion(raw), MIGRATIONS.length);
    assert.equal((raw.prepare(`SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'ok_table'`).get() as { n: number }).n, 0);
    raw.close();
  });

  it('the unique index refuses two active sessions on one address, whatever the caller does', () => {
    const s = openStore(join(dir, 'unique.db'));
    s.regions.ensure('r', 0);
    s.accounts.insert({ id: 'acc_1', tier: 'paid', signupFingerprintHash: null, now: 0 });
    s.nodes.insert({ id: 'nod_1', regionId: 'r', publicKey: 'k', endpoint: 'h:1', pool4: '10.0.0.0/24', pool6: null, now: 0 });
    const base = { accountId: 'acc_1', nodeId: 'nod_1', regionId: 'r', addressOffset: 2, ipv4: '10.0.0.2', ipv6: null, now: 0, expiresAt: 1 };
    s.sessions.insert({ ...base, id: 'ses_1', clientPublicKey: 'a' });
    assert.throws(() => s.sessions.insert({ ...base, id: 'ses_2', clientPublicKey: 'b' }), /UNIQUE/);
    s.sessions.end('ses_1', 'closed', 'client', 1);
    s.sessions.insert({ ...base, id: 'ses_3', clientPublicKey: 'a' });
    s.close();
  });
});
