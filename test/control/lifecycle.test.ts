/**
 * Token and account lifecycle over real HTTP and a real SQLite file: revoke
 * and rotate the presenting token, a new signup from the same machine
 * revokes that machine's older signup tokens, an account disabled or deleted
 * loses its sessions (peers removed at once in this process) and tokens, and
 * every step lands in the append-only audit table with actor, source and time.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RotatedTokenResponse } from '../../src/control/http/schemas.js';
import { adminActor } from '../../src/control/services/audit.js';
import { makePaid, startHarness, type Harness } from './harness.js';

describe('token and account lifecycle', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  const usage = (t: { token: string; fingerprint: string }) => h.request('GET', '/v1/usage', { token: t.token, fingerprint: t.fingerprint });

  it('DELETE /v1/token revokes the presenting token only; it is refused from then on', async () => {
    const a = await h.signup();
    makePaid(h, a.accountId);
    const login = await h.control.accounts.saveCredentials(h.control.accounts.get(a.accountId), `u${Date.now()}@example.com`, 'a-long-password', null);
    const r = await h.request('DELETE', '/v1/token', { token: a.token, fingerprint: a.fingerprint });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.revoked, true);
    assert.match(r.json.token_id, /^tok_/);
    const again = await usage(a);
    assert.equal(again.status, 401);
    assert.match(again.json.error, /invalid bearer token/);
    assert.equal((await h.request('GET', '/v1/usage', { token: login.token })).status, 200, 'the account\'s other token still works');
    assert.ok(h.control.store.tokens.get(r.json.token_id)!.revokedAt !== null, 'revoked_at is set');
  });

  it('POST /v1/token/rotate: a new token with the same binding; the old one is revoked at once', async () => {
    const a = await h.signup();
    const s = await h.request('POST', '/v1/sessions', { token: a.token, fingerprint: a.fingerprint, body: { region: 'local' } });
    assert.equal(s.status, 201);
    const r = await h.request('POST', '/v1/token/rotate', { token: a.token, fingerprint: a.fingerprint });
    assert.equal(r.status, 200, r.text);
    const body = RotatedTokenResponse.parse(r.json);
    assert.notEqual(body.token, a.token);
    assert.equal(body.account_id, a.accountId);
    assert.equal((await usage(a)).status, 401, 'old token refused');
    assert.equal((await usage({ token: body.token, fingerprint: a.fingerprint })).status, 200, 'new token works');
    assert.equal((await usage({ token: body.token, fingerprint: 'another-machine' })).status, 401, 'still bound to the machine');
    assert.ok(h.dataPlane.peers.has(s.json.client.public_key), 'sessions are not touched by a rotation');
    assert.equal((await h.request('POST', '/v1/token/rotate', { token: a.token, fingerprint: a.fingerprint })).status, 401, 'the old token cannot rotate again');
  });

  it('a new signup from the same machine revokes that machine\'s older signup tokens', async () => {
    const a = await h.signup();
    const again = await h.signup(a.fingerprint);
    assert.equal(again.accountId, a.accountId);
    assert.equal((await usage(a)).status, 401, 'the older token of the machine is revoked');
    assert.equal((await usage(again)).status, 200);
  });

  it('admin account disable: sessions closed and peers removed at once, tokens refused, no new signup from the machine', async () => {
    const a = await h.signup();
    const s = await h.request('POST', '/v1/sessions', { token: a.token, fingerprint: a.fingerprint, body: { region: 'local' } });
    const pk = s.json.client.public_key as string;
    assert.ok(h.dataPlane.peers.has(pk));
    const r = h.control.accounts.disable(a.accountId, adminActor());
    assert.deepEqual(r.closedSessionIds, [s.json.id]);
    assert.ok(!h.dataPlane.peers.has(pk), 'peer removed in the same call');
    assert.equal((await usage(a)).status, 401, 'its tokens are revoked');
    const again = await h.request('POST', '/v1/signup', { body: { fingerprint: a.fingerprint } });
    assert.equal(again.status, 403);
    assert.match(again.json.error, /disabled/);
    assert.equal(h.control.store.sessions.get(s.json.id)!.closeReason, 'admin');
    assert.deepEqual(h.agent.sync().failures, []);
  });

  it('admin account delete: personal data erased, login refused, history kept', async () => {
    const a = await h.signup();
    makePaid(h, a.accountId);
    const email = `del${Date.now()}@example.com`;
    await h.control.accounts.saveCredentials(h.control.accounts.get(a.accountId), email, 'a-long-password', null);
    const s = await h.request('POST', '/v1/sessions', { token: a.token, fingerprint: a.fingerprint, body: { region: 'local' } });
    h.control.accounts.delete(a.accountId, adminActor());
    const row = h.control.store.db.prepare('SELECT * FROM accounts WHERE id = ?').get(a.accountId) as Record<string, unknown>;
    assert.equal(row.email, null);
    assert.equal(row.password_hash, null);
    assert.equal(row.signup_fingerprint_hash, null);
    assert.ok(row.deleted_at !== null);
    assert.ok(!h.dataPlane.peers.has(s.json.client.public_key));
    assert.equal((await h.request('POST', '/v1/login', { body: { email, password: 'a-long-password' } })).status, 401);
    assert.equal((await usage(a)).status, 401);
    assert.ok(!h.control.accounts.list().some((x) => x.id === a.accountId), 'not listed');
    assert.ok(h.control.store.audit.list({ accountId: a.accountId }).some((e) => e.action === 'admin.account.delete'));
  });

  it('the audit table records actor, source and time of each event, and refuses UPDATE and DELETE', async () => {
    const a = await h.signup();
    const s = await h.request('POST', '/v1/sessions', { token: a.token, fingerprint: a.fingerprint, body: { region: 'local' } });
    await h.request('DELETE', `/v1/sessions/${s.json.id}`, { token: a.token, fingerprint: a.fingerprint });
    const rot = await h.request('POST', '/v1/token/rotate', { token: a.token, fingerprint: a.fingerprint });
    h.control.accounts.setTier(a.accountId, 'paid', adminActor());
    const entries = h.control.store.audit.list({ accountId: a.accountId }).reverse();
    assert.deepEqual(entries.map((e) => e.action), ['account.signup', 'session.create', 'session.close', 'token.rotate', 'account.tier']);
    for (const e of entries.slice(0, 4)) {
      assert.equal(e.actor, `account:${a.accountId}`);
      assert.equal(e.source, '127.0.0.1');
      assert.equal(e.at, h.clock.wallMs());
    }
    assert.equal(entries[1]!.subject, s.json.id);
    assert.equal(entries[3]!.detail?.new_token, rot.json.token_id);
    assert.match(entries[4]!.actor, /^admin:/);
    assert.deepEqual(entries[4]!.detail, { from: 'anonymous', to: 'paid', closed_sessions: [] });
    const db = h.control.store.db;
    assert.throws(() => db.prepare(`UPDATE audit SET action = 'x'`).run(), /append-only/);
    assert.throws(() => db.prepare(`DELETE FROM audit`).run(), /append-only/);
    assert.ok(!JSON.stringify(db.prepare('SELECT * FROM audit').all()).includes(a.token), 'no token text in the log');
  });
});
