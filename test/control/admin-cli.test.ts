/**
 * `tunnelbyte admin` as a separate process on the SQLite file that a running
 * app has open: its changes are seen by the app at once (tiers, regions) or
 * at the next sync (a closed session's peer).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runAdmin, startHarness, type Harness } from './harness.js';

const admin = runAdmin;

describe('tunnelbyte admin', () => {
  let h: Harness;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tb-admin-'));
    h = await startHarness({ dir, now: Date.now() }); // admin runs on the system clock
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('region add / list, as a table and as JSON', async () => {
    const add = await admin(dir, 'region', 'add', 'eu-west', '--name', 'EU West', '--paid-only');
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, /region eu-west \(EU West\), paid only/);
    const table = await admin(dir, 'region', 'list');
    assert.match(table.stdout, /^ID\s+NAME\s+PAID ONLY\s+ACTIVE NODES$/m);
    assert.match(table.stdout, /^eu-west\s+EU West\s+yes\s+0$/m);
    assert.match(table.stdout, /^local\s+local\s+no\s+1$/m);
    const json = JSON.parse((await admin(dir, 'region', 'list', '--json')).stdout);
    assert.deepEqual(json.find((r: { id: string }) => r.id === 'eu-west'), { id: 'eu-west', name: 'EU West', paid_only: true, nodes: 0 });
    // the running app sees it: a paid-only region is a 403 for anonymous accounts at once
    const a = await h.signup();
    const r = await h.request('POST', '/v1/sessions', { token: a.token, fingerprint: a.fingerprint, body: { region: 'eu-west' } });
    assert.equal(r.status, 403);
    const badId = await admin(dir, 'region', 'add', 'Bad_Id');
    assert.equal(badId.code, 1);
    assert.match(badId.stderr, /region id must be/);
  });

  it('account list and set-tier (by id or email) take effect in the running app', async () => {
    const a = await h.signup();
    const list = JSON.parse((await admin(dir, 'account', 'list', '--json')).stdout) as { id: string; tier: string }[];
    assert.equal(list.find((x) => x.id === a.accountId)?.tier, 'anonymous');
    const table = (await admin(dir, 'account', 'list')).stdout;
    assert.match(table, new RegExp(`^${a.accountId}\\s+anonymous\\s+-\\s+`, 'm'));
    const set = await admin(dir, 'account', 'set-tier', a.accountId, 'paid');
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /anonymous → paid/);
    assert.equal((await h.request('GET', '/v1/usage', { token: a.token })).json.tier, 'paid', 'portable at once');
    h.control.store.accounts.setCredentials(a.accountId, 'dave@example.test', 'x', 0);
    const byEmail = JSON.parse((await admin(dir, 'account', 'set-tier', 'DAVE@example.test', 'anonymous', '--json')).stdout);
    assert.deepEqual(byEmail, { account_id: a.accountId, tier: 'anonymous', previous_tier: 'paid', closed_sessions: [] });
    const unknown = await admin(dir, 'account', 'set-tier', 'acc_nobody', 'paid');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^tunnelbyte: no account acc_nobody/);
    const badTier = await admin(dir, 'account', 'set-tier', a.accountId, 'gold');
    assert.equal(badTier.code, 1);
    assert.match(badTier.stderr, /tier must be paid or anonymous/);
  });

  it('session list and close: the server removes the peer at its next sync', async () => {
    const a = await h.signup();
    const s = (await h.request('POST', '/v1/sessions', { token: a.token, fingerprint: a.fingerprint, body: { region: 'local' } })).json;
    const list = JSON.parse((await admin(dir, 'session', 'list', '--json')).stdout) as { id: string; account_id: string; state: string }[];
    const mine = list.find((x) => x.id === s.id);
    assert.equal(mine?.account_id, a.accountId);
    assert.equal(mine?.state, 'active');
    assert.match((await admin(dir, 'session', 'list')).stdout, new RegExp(`^${s.id}\\s+${a.accountId}\\s+local\\s+${h.node.id}\\s+active\\s+10\\.64\\.`, 'm'));
    const close = await admin(dir, 'session', 'close', s.id);
    assert.equal(close.code, 0, close.stderr);
    assert.match(close.stdout, new RegExp(`session ${s.id}: closed \\(admin\\)`));
    assert.ok(h.dataPlane.peers.has(s.client.public_key));
    h.agent.sync();
    assert.ok(!h.dataPlane.peers.has(s.client.public_key));
    const st = (await h.request('GET', `/v1/sessions/${s.id}`, { token: a.token, fingerprint: a.fingerprint })).json;
    assert.equal(st.state, 'closed');
    assert.equal(st.close_reason, 'admin');
    assert.ok(!(await admin(dir, 'session', 'list')).stdout.includes(s.id), 'ended sessions only with --all');
    assert.ok((await admin(dir, 'session', 'list', '--all')).stdout.includes(s.id));
    assert.equal((await admin(dir, 'session', 'close', 'ses_nope')).code, 1);
  });

  it('token revoke, account disable and delete from another process; the running app sees them (peers at the next sync); audit lists them', async () => {
    const a = await h.signup();
    const b = await h.signup();
    const s = (await h.request('POST', '/v1/sessions', { token: b.token, fingerprint: b.fingerprint, body: { region: 'local' } })).json;
    const rev = await admin(dir, 'token', 'revoke', a.accountId, '--json');
    assert.equal(rev.code, 0, rev.stderr);
    assert.equal(JSON.parse(rev.stdout).revoked_tokens.length, 1);
    assert.equal((await h.request('GET', '/v1/usage', { token: a.token, fingerprint: a.fingerprint })).status, 401, 'refused at once');
    const dis = await admin(dir, 'account', 'disable', b.accountId);
    assert.equal(dis.code, 0, dis.stderr);
    assert.match(dis.stdout, /disabled; 1 session\(s\) closed, 1 token\(s\) revoked/);
    assert.ok(h.dataPlane.peers.has(s.client.public_key), 'another process: the peer goes at the next sync');
    h.clock.set(Date.now());
    h.agent.sync();
    assert.ok(!h.dataPlane.peers.has(s.client.public_key));
    const listed = JSON.parse((await admin(dir, 'account', 'list', '--json')).stdout) as { id: string; disabled_at: string | null }[];
    assert.ok(listed.find((x) => x.id === b.accountId)?.disabled_at, 'account list shows it disabled');
    assert.equal((await admin(dir, 'account', 'delete', b.accountId)).code, 0);
    assert.ok(!(await admin(dir, 'account', 'list')).stdout.includes(b.accountId), 'a deleted account is not listed');
    assert.equal((await admin(dir, 'account', 'delete', b.accountId)).code, 1, 'a deleted account is gone');
    const log = JSON.parse((await admin(dir, 'audit', '--json', '--account', b.accountId)).stdout) as { action: string; actor: string; source: string; at: string }[];
    assert.deepEqual(log.map((e) => e.action), ['admin.account.delete', 'admin.account.disable', 'session.create', 'account.signup']);
    assert.match(log[0]!.actor, /^admin:/);
    assert.equal(log[2]!.source, '127.0.0.1');
    const table = await admin(dir, 'audit', '--since', '1h');
    assert.match(table.stdout, /^TIME\s+ACTION\s+ACCOUNT/);
    assert.match(table.stdout, new RegExp(`admin\\.token\\.revoke\\s+${a.accountId}`));
    assert.equal((await admin(dir, 'audit', '--since', 'yesterday')).code, 1);
  });

  it('node list; a missing database is an error, not a new empty one', async () => {
    // the harness's clock stood still while the admin processes ran (over a minute on a loaded machine): heartbeat now
    h.clock.set(Date.now());
    h.agent.sync();
    const nodes = JSON.parse((await admin(dir, 'node', 'list', '--json')).stdout);
    assert.equal(nodes[0].id, h.node.id);
    assert.equal(nodes[0].active, true);
    const empty = mkdtempSync(join(tmpdir(), 'tb-admin-empty-'));
    try {
      const r = await admin(empty, 'session', 'list');
      assert.equal(r.code, 1);
      assert.match(r.stderr, /no tunnelbyte database/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
