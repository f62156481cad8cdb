/**
 * Exit nodes joining over the network (issue 16, enrollment): the one-time
 * token from `tunnelbyte admin node token`, its exchange for a node
 * credential over real HTTP, what that credential may read, and the
 * operator's drain / revoke / remove from a separate admin process on the
 * same SQLite file.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { Actor } from '../../src/control/services/audit.js';
import { sha256Hex } from '../../src/control/services/secrets.js';
import { generateKeyPair } from '../../src/crypto/wireguard-keys.js';
import { runAdmin, startHarness, type Harness } from './harness.js';

const admin = runAdmin;

const OPERATOR: Actor = { actor: 'admin:test', source: null };

let poolSeq = 0;
const registration = (token: string) => {
  poolSeq++;
  return {
    token,
    public_key: generateKeyPair().publicKey,
    endpoint: `exit-${poolSeq}.example.test:51820`,
    exit_addresses: [`203.0.113.${poolSeq}`],
    pool4: `10.${100 + poolSeq}.0.0/16`,
  };
};

describe('node enrollment and credentials', () => {
  let h: Harness;
  const issue = (region: string, ttlMs = 3600_000) => h.control.nodeEnrollment.issueToken(region, ttlMs, OPERATOR);
  before(async () => {
    h = await startHarness({ node: false });
  });
  after(() => h.close());

  it('a token enrolls exactly one node; the credential and the token are stored only as hashes', async () => {
    const t = issue('eu-west', 3600_000);
    assert.match(t.token, /^tbe_[A-Za-z0-9_-]{43}$/);
    const reg = registration(t.token);
    const r = await h.request('POST', '/v1/nodes/enroll', { body: reg });
    assert.equal(r.status, 201, r.text);
    assert.match(r.json.credential, /^tbn_[A-Za-z0-9_-]{43}$/);
    assert.equal(r.json.node.region, 'eu-west');
    assert.equal(r.json.node.state, 'active');
    assert.equal(r.json.node.public_key, reg.public_key);
    assert.deepEqual(r.json.node.interface_addresses.slice(0, 1), [`10.${100 + poolSeq}.0.1/16`]);
    // the region exists and is active now (registration is a heartbeat)
    assert.ok((await h.request('GET', '/v1/regions')).json.regions.some((x: { id: string }) => x.id === 'eu-west'));

    const again = await h.request('POST', '/v1/nodes/enroll', { body: registration(t.token) });
    assert.equal(again.status, 401, 'a used token');
    assert.match(again.json.error, /invalid, used or expired/);

    const db = new Database(h.dbPath, { readonly: true });
    try {
      const tok = db.prepare('SELECT token_hash, used_at, node_id FROM node_enrollment_tokens WHERE id = ?').get(t.id) as { token_hash: string; used_at: number; node_id: string };
      assert.equal(tok.token_hash, sha256Hex(t.token));
      assert.equal(tok.node_id, r.json.node.id);
      const node = db.prepare('SELECT credential_hash FROM nodes WHERE id = ?').get(r.json.node.id) as { credential_hash: string };
      assert.equal(node.credential_hash, sha256Hex(r.json.credential));
    } finally {
      db.close();
    }
    h.control.store.db.pragma('wal_checkpoint(TRUNCATE)');
    const file = readFileSync(h.dbPath);
    assert.ok(!file.includes(t.token) && !file.includes(r.json.credential), 'no secret in the database file');
  });

  it('expired, unknown and malformed tokens are 401; bad registrations are 400 and spend nothing', async () => {
    const t = issue('eu-west', 60_000);
    h.clock.advance(60_000);
    assert.equal((await h.request('POST', '/v1/nodes/enroll', { body: registration(t.token) })).status, 401, 'expired');
    const unknown = 'tbe_' + 'A'.repeat(43);
    assert.equal((await h.request('POST', '/v1/nodes/enroll', { body: registration(unknown) })).status, 401);
    assert.equal((await h.request('POST', '/v1/nodes/enroll', { body: registration('tb_nope') })).status, 401);
    const fresh = issue('eu-west', 60_000);
    const bad = await h.request('POST', '/v1/nodes/enroll', { body: { ...registration(fresh.token), endpoint: 'no-port' } });
    assert.equal(bad.status, 400);
    assert.equal((await h.request('POST', '/v1/nodes/enroll', { body: { ...registration(fresh.token), extra: 1 } })).status, 400);
    assert.equal((await h.request('POST', '/v1/nodes/enroll', { rawBody: '{', headers: { 'content-type': 'application/json' } })).status, 400);
    assert.equal((await h.request('POST', '/v1/nodes/enroll', { body: registration(fresh.token) })).status, 201, 'the token was not spent by the bad requests');
    assert.throws(() => issue('Bad_Region', 60_000), /region id/);
    assert.throws(() => issue('eu-west', 1000), /between 1 minute and 30 days/);
  });

  it("a credential reads only its own node; a revoked one is refused at once and its key cannot re-enroll", async () => {
    const a = await h.request('POST', '/v1/nodes/enroll', { body: registration(issue('eu-west').token) });
    const bReg = registration(issue('eu-west').token);
    const b = await h.request('POST', '/v1/nodes/enroll', { body: bReg });
    const aId = a.json.node.id as string;
    const bId = b.json.node.id as string;
    const own = await h.request('GET', `/v1/nodes/${aId}`, { token: a.json.credential });
    assert.equal(own.status, 200);
    assert.equal(own.json.id, aId);
    assert.ok(!('credential_hash' in own.json) && !own.text.includes(sha256Hex(a.json.credential)));
    const other = await h.request('GET', `/v1/nodes/${bId}`, { token: a.json.credential });
    assert.equal(other.status, 403, "exit-a's credential cannot read exit-b");
    assert.equal((await h.request('GET', `/v1/nodes/${aId}`)).status, 401, 'no credential');
    assert.equal((await h.request('GET', `/v1/nodes/${aId}`, { token: 'tbn_' + 'B'.repeat(43) })).status, 401, 'unknown credential');
    const signup = await h.signup();
    assert.equal((await h.request('GET', `/v1/nodes/${aId}`, { token: signup.token, fingerprint: signup.fingerprint })).status, 401, 'an account token is not a node credential');

    h.control.nodes.revoke(bId, OPERATOR);
    assert.equal((await h.request('GET', `/v1/nodes/${bId}`, { token: b.json.credential })).status, 401, 'revoked: refused at once');
    const reenroll = await h.request('POST', '/v1/nodes/enroll', { body: { ...registration(issue('eu-west').token), public_key: bReg.public_key } });
    assert.equal(reenroll.status, 403);
    assert.equal((await h.request('GET', `/v1/nodes/${aId}`, { token: a.json.credential })).status, 200, 'the other node is untouched');
  });

  it('drain: no new sessions on the node, existing ones stay; every node drained → 503', async () => {
    const region = 'drain-test';
    const x = await h.request('POST', '/v1/nodes/enroll', { body: registration(issue(region).token) });
    const y = await h.request('POST', '/v1/nodes/enroll', { body: registration(issue(region).token) });
    const acct = await h.signup();
    h.control.accounts.setTier(acct.accountId, 'paid');
    const create = () => h.request('POST', '/v1/sessions', { token: acct.token, body: { region } });
    const first = await create();
    assert.equal(first.status, 201, first.text);
    const second = await create();
    assert.deepEqual(new Set([first.json.node, second.json.node]), new Set([x.json.node.id, y.json.node.id]), 'least loaded: one on each');
    const onX = first.json.node === x.json.node.id ? first.json : second.json;
    h.control.nodes.drain(x.json.node.id, OPERATOR);
    for (let i = 0; i < 2; i++) {
      const s = await create();
      assert.equal(s.status, 201);
      assert.equal(s.json.node, y.json.node.id, 'a draining node takes no new session');
    }
    assert.equal((await h.request('GET', `/v1/sessions/${onX.id}`, { token: acct.token })).json.state, 'active', 'existing sessions stay');
    assert.equal((await h.request('GET', `/v1/nodes/${x.json.node.id}`, { token: x.json.credential })).json.state, 'draining', 'a draining node still authenticates');
    h.control.nodes.drain(y.json.node.id, OPERATOR);
    const none = await create();
    assert.equal(none.status, 503);
    assert.ok(!(await h.request('GET', '/v1/regions')).json.regions.some((r: { id: string }) => r.id === region));
  });
});

describe('tunnelbyte admin node token | list | drain | revoke | remove', () => {
  let h: Harness;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tb-admin-node-'));
    h = await startHarness({ dir, now: Date.now(), node: false }); // admin runs on the system clock
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the printed token enrolls once; the operator drains, revokes and removes; the running API follows at once', async () => {
    const tok = await admin(dir, 'node', 'token', '--region', 'us-east', '--expires', '10m');
    assert.equal(tok.code, 0, tok.stderr);
    const token = tok.stdout.trim();
    assert.match(token, /^tbe_[A-Za-z0-9_-]{43}$/);
    h.clock.set(Date.now());
    const e = await h.request('POST', '/v1/nodes/enroll', { body: registration(token) });
    assert.equal(e.status, 201, e.text);
    const id = e.json.node.id as string;

    const list = JSON.parse((await admin(dir, 'node', 'list', '--json')).stdout) as { id: string; state: string; region: string; joined: boolean; active: boolean }[];
    assert.deepEqual(list.map((n) => [n.id, n.region, n.state, n.joined, n.active]), [[id, 'us-east', 'active', true, true]]);
    assert.match((await admin(dir, 'node', 'list')).stdout, new RegExp(`^${id}\\s+us-east\\s+active\\s+`, 'm'));

    const json = JSON.parse((await admin(dir, 'node', 'token', '--region', 'us-east', '--json')).stdout);
    assert.equal(json.region, 'us-east');
    const ttl = Date.parse(json.expires_at) - Date.now();
    assert.ok(ttl > 3000_000 && ttl <= 3600_000, 'default --expires 1h');
    assert.equal((await admin(dir, 'node', 'token', '--region', 'us-east', '--expires', 'soon')).code, 1);
    assert.equal((await admin(dir, 'node', 'token')).code, 1, '--region is required');

    const acct = await h.signup();
    h.control.accounts.setTier(acct.accountId, 'paid');
    const s = await h.request('POST', '/v1/sessions', { token: acct.token, body: { region: 'us-east' } });
    assert.equal(s.status, 201);

    const drain = await admin(dir, 'node', 'drain', id);
    assert.equal(drain.code, 0, drain.stderr);
    assert.match(drain.stdout, new RegExp(`node ${id}: draining`));
    assert.equal((await h.request('POST', '/v1/sessions', { token: acct.token, body: { region: 'us-east' } })).status, 503);

    const revoke = await admin(dir, 'node', 'revoke', id, '--json');
    assert.equal(JSON.parse(revoke.stdout).state, 'revoked');
    assert.equal((await h.request('GET', `/v1/nodes/${id}`, { token: e.json.credential })).status, 401, 'refused at once');

    const remove = await admin(dir, 'node', 'remove', id);
    assert.equal(remove.code, 0, remove.stderr);
    assert.match(remove.stdout, new RegExp(`closed sessions: ${s.json.id}`));
    const after = (await h.request('GET', `/v1/sessions/${s.json.id}`, { token: acct.token })).json;
    assert.equal(after.state, 'closed');
    assert.equal(after.close_reason, 'admin');
    assert.equal((await admin(dir, 'node', 'drain', id)).code, 1, 'a removed node stays removed');
    const audit = JSON.parse((await admin(dir, 'audit', '--json')).stdout) as { action: string; subject: string; actor: string; detail: Record<string, unknown> }[];
    const mine = audit.filter((a) => a.subject === id || a.actor === `node:${id}`).map((a) => a.action).reverse();
    assert.deepEqual(mine, ['node.enroll', 'admin.node.draining', 'admin.node.revoked', 'admin.node.removed']);
    assert.deepEqual(audit.find((a) => a.action === 'admin.node.removed')?.detail, { from: 'revoked', closed_sessions: [s.json.id] });
    assert.ok(audit.some((a) => a.action === 'admin.node.token' && a.actor.startsWith('admin:')));
    const missing = await admin(dir, 'node', 'revoke', 'nod_nope');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no node nod_nope/);
  });
});
