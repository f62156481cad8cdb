/**
 * Accounts and tokens over real HTTP: machine-bound anonymous tokens, login
 * of paid accounts, upgrade without billing, and how secrets are stored.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LoginResponse, SignupResponse } from '../../src/control/http/schemas.js';
import { sha256Hex } from '../../src/control/services/secrets.js';
import { makePaid, newFingerprint, startHarness, type Harness } from './harness.js';

describe('accounts and tokens', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  it('signup: 201 with a tb_ token bound to the machine; stored only as its SHA-256', async () => {
    const fp = newFingerprint();
    const r = await h.request('POST', '/v1/signup', { body: { fingerprint: fp } });
    assert.equal(r.status, 201);
    const s = SignupResponse.parse(r.json);
    assert.match(s.token, /^tb_[A-Za-z0-9_-]{43}$/);
    assert.match(s.account_id, /^acc_[0-9a-z]{16}$/);
    assert.equal(s.tier, 'anonymous');
    const rows = JSON.stringify(h.control.store.db.prepare('SELECT * FROM tokens').all()) + JSON.stringify(h.control.store.db.prepare('SELECT * FROM accounts').all());
    assert.ok(!rows.includes(s.token), 'token text not stored');
    assert.ok(!rows.includes(fp), 'fingerprint not stored in the clear');
    assert.ok(rows.includes(sha256Hex(s.token)));
  });

  it('signing up again from the same machine returns its account (200), not a fresh quota', async () => {
    const a = await h.signup();
    const again = await h.request('POST', '/v1/signup', { body: { fingerprint: a.fingerprint } });
    assert.equal(again.status, 200);
    assert.equal(again.json.account_id, a.accountId);
    assert.notEqual(again.json.token, a.token);
    const other = await h.signup();
    assert.notEqual(other.accountId, a.accountId);
  });

  it('an anonymous token needs the fingerprint of its machine: missing or different is a 401 saying so', async () => {
    const a = await h.signup();
    assert.equal((await h.request('GET', '/v1/usage', { token: a.token, fingerprint: a.fingerprint })).status, 200);
    const missing = await h.request('GET', '/v1/usage', { token: a.token });
    assert.equal(missing.status, 401);
    assert.match(missing.json.error, /X-TB-Fingerprint/);
    const other = await h.request('GET', '/v1/usage', { token: a.token, fingerprint: newFingerprint() });
    assert.equal(other.status, 401);
    assert.match(other.json.error, /another machine/);
  });

  it('a paid account token works from any machine', async () => {
    const a = await h.signup();
    makePaid(h, a.accountId);
    assert.equal((await h.request('GET', '/v1/usage', { token: a.token })).status, 200);
    assert.equal((await h.request('GET', '/v1/usage', { token: a.token, fingerprint: newFingerprint() })).json.tier, 'paid');
  });

  it('upgrade without billing configured is a clear 503 and changes nothing', async () => {
    const a = await h.signup();
    const r = await h.request('POST', '/v1/upgrade', { token: a.token, fingerprint: a.fingerprint, body: { email: 'ann@example.test', password: 'correct horse' } });
    assert.equal(r.status, 503);
    assert.match(r.json.error, /billing is not configured/);
    assert.equal(h.control.store.accounts.get(a.accountId)!.email, null);
    assert.equal((await h.request('POST', '/v1/upgrade', { token: a.token, fingerprint: a.fingerprint, body: { email: 'ann@example.test', password: 'short' } })).status, 400);
  });

  it('login: paid accounts get a portable token; wrong password 401; unpaid account 403; email taken 409', async () => {
    const a = await h.signup();
    makePaid(h, a.accountId);
    // a paid account (granted by the operator) sets credentials through upgrade without checkout
    const up = await h.request('POST', '/v1/upgrade', { token: a.token, body: { email: 'Bob@Example.test', password: 'hunter2hunter2' } });
    assert.equal(up.status, 200, up.text);
    assert.equal(up.json.checkout_url, null);
    assert.equal(up.json.email, 'bob@example.test');
    const stored = h.control.store.accounts.get(a.accountId)!.passwordHash!;
    assert.match(stored, /^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    assert.ok(!stored.includes('hunter2'));

    const ok = await h.request('POST', '/v1/login', { body: { email: 'bob@example.test', password: 'hunter2hunter2' } });
    assert.equal(ok.status, 200, ok.text);
    const login = LoginResponse.parse(ok.json);
    assert.equal(login.account_id, a.accountId);
    assert.equal((await h.request('GET', '/v1/usage', { token: login.token, fingerprint: newFingerprint() })).status, 200);

    const bad = await h.request('POST', '/v1/login', { body: { email: 'bob@example.test', password: 'hunter3hunter3' } });
    assert.equal(bad.status, 401);
    const nobody = await h.request('POST', '/v1/login', { body: { email: 'nobody@example.test', password: 'hunter2hunter2' } });
    assert.equal(nobody.status, 401);
    assert.equal(nobody.json.error, bad.json.error, 'no hint whether the email exists');

    const b = await h.signup();
    const taken = await h.request('POST', '/v1/upgrade', { token: b.token, fingerprint: b.fingerprint, body: { email: 'BOB@example.test', password: 'whatever123' } });
    assert.equal(taken.status, 409);

    // the account loses the paid tier: login is refused, the login token (no machine) stops working
    h.control.accounts.setTier(a.accountId, 'anonymous');
    assert.equal((await h.request('POST', '/v1/login', { body: { email: 'bob@example.test', password: 'hunter2hunter2' } })).status, 403);
    assert.equal((await h.request('GET', '/v1/usage', { token: login.token })).status, 401);
    assert.equal((await h.request('GET', '/v1/usage', { token: a.token, fingerprint: a.fingerprint })).status, 200, 'the signup token is bound again');
  });
});
