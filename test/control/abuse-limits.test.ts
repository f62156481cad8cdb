/**
 * Abuse limits over real HTTP with the defaults the README states: failed
 * authentication (10 per source per 60 s, checked before any token hashing
 * or SQL), the public limit and the signup limit keyed per /64 for IPv6,
 * and `--anonymous-signup closed`. Every refusal is a 429 with Retry-After.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { defaultControlConfig } from '../../src/control/config.js';
import { sourceKey } from '../../src/control/http/client-ip.js';
import { newFingerprint, startHarness, type Harness } from './harness.js';

const DEFAULTS = defaultControlConfig();
const WRONG = 'tb_' + 'A'.repeat(43);

/** Counts the work done for authentication: calls into the auth service and token lookups in SQLite. */
function countAuthWork(h: Harness): { authenticate: number; tokenLookups: number } {
  const n = { authenticate: 0, tokenLookups: 0 };
  const auth = h.control.auth;
  const authenticate = auth.authenticate.bind(auth);
  auth.authenticate = (a, f) => {
    n.authenticate++;
    return authenticate(a, f);
  };
  const tokens = h.control.store.tokens;
  const find = tokens.findByHash;
  tokens.findByHash = (hash) => {
    n.tokenLookups++;
    return find(hash);
  };
  return n;
}

describe('abuse limits', () => {
  it('the README numbers are the defaults', () => {
    assert.deepEqual(DEFAULTS.authFailureLimit, { failures: 10, windowSeconds: 60 });
    assert.deepEqual(DEFAULTS.signupLimit, { mode: 'open', perSource: 5, windowSeconds: 3600 });
    assert.deepEqual(DEFAULTS.publicRateLimit, { burst: 10, perSecond: 1 });
  });

  it('IPv6 sources are counted per /64, IPv4 per address', () => {
    assert.equal(sourceKey('2001:db8:1:2::1'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('2001:db8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('2001:db8:1:3::1'), '2001:db8:1:3::/64');
    assert.equal(sourceKey('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(sourceKey('192.0.2.7'), '192.0.2.7');
  });

  it('a flood of 500 wrong tokens from one address: 10 are checked, the rest are 429s before any hashing or SQL', async () => {
    const h = await startHarness({ config: { authFailureLimit: DEFAULTS.authFailureLimit } });
    try {
      const good = await h.signup();
      const work = countAuthWork(h);
      const statuses = new Map<number, number>();
      let retryAfter: string | null = null;
      const started = process.hrtime.bigint();
      // 8 keep-alive clients at once, like the measured flood (bounded: 500 requests)
      let sent = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (sent < 500) {
            sent++;
            const r = await h.request('GET', '/v1/usage', { token: WRONG, fingerprint: 'x' });
            statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
            if (r.status === 429) {
              retryAfter = r.headers.get('retry-after');
              assert.match(r.json.error, /too many failed authentications/);
            } else assert.equal(r.status, 401);
          }
        }),
      );
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      console.log(`# 500 wrong tokens over 8 connections: ${Math.round(500 / seconds)} requests/s, ${JSON.stringify(Object.fromEntries(statuses))}`);
      assert.equal(statuses.get(401), 10, 'exactly the budget is authenticated');
      assert.equal(statuses.get(429), 490);
      assert.equal(work.authenticate, 10, 'authentication ran only for the first 10');
      assert.equal(work.tokenLookups, 10, 'SQLite was asked only 10 times');
      const ra = Number(retryAfter);
      assert.ok(ra >= 1 && ra <= 60, `Retry-After ${retryAfter}`);
      const valid = await h.request('GET', '/v1/usage', { token: good.token, fingerprint: good.fingerprint });
      assert.equal(valid.status, 429, 'the source is refused as a whole while it is over its budget');
      assert.equal((await h.request('GET', '/v1/health')).status, 200, 'health is never limited');
    } finally {
      await h.close();
    }
  });

  it('wrong fingerprints and wrong passwords count too; other sources and /64s keep their budget', async () => {
    const h = await startHarness({ config: { trustProxy: true, authFailureLimit: { failures: 3, windowSeconds: 60 } } });
    try {
      const a = await h.signup();
      const from = (ip: string) => ({ 'x-forwarded-for': ip });
      const st: number[] = [];
      st.push((await h.request('GET', '/v1/usage', { token: a.token, fingerprint: 'other-machine', headers: from('2001:db8:1:2::1') })).status);
      st.push((await h.request('POST', '/v1/login', { body: { email: 'x@example.com', password: 'wrong-password' }, headers: from('2001:db8:1:2::2') })).status);
      st.push((await h.request('GET', '/v1/sessions', { headers: from('2001:db8:1:2::3') })).status);
      st.push((await h.request('GET', '/v1/usage', { token: a.token, fingerprint: a.fingerprint, headers: from('2001:db8:1:2:ffff::9') })).status);
      st.push((await h.request('POST', '/v1/login', { body: { email: 'x@example.com', password: 'wrong-password' }, headers: from('2001:db8:1:2::4') })).status);
      assert.deepEqual(st, [401, 401, 401, 429, 429], 'one /64 shares one budget across bearer and login');
      assert.equal((await h.request('GET', '/v1/usage', { token: a.token, fingerprint: a.fingerprint, headers: from('2001:db8:1:3::1') })).status, 200, 'the next /64 is another source');
      assert.equal((await h.request('GET', '/v1/usage', { token: a.token, fingerprint: a.fingerprint, headers: from('192.0.2.1') })).status, 200);
    } finally {
      await h.close();
    }
  });

  it('the refusal lasts until the window ends', async () => {
    const h = await startHarness({ config: { authFailureLimit: { failures: 1, windowSeconds: 2 } } });
    try {
      const a = await h.signup();
      assert.equal((await h.request('GET', '/v1/usage', { token: WRONG, fingerprint: a.fingerprint })).status, 401);
      const r = await h.request('GET', '/v1/usage', { token: a.token, fingerprint: a.fingerprint });
      assert.equal(r.status, 429);
      assert.ok(Number(r.headers.get('retry-after')) <= 2);
      await sleep(2100);
      assert.equal((await h.request('GET', '/v1/usage', { token: a.token, fingerprint: a.fingerprint })).status, 200, 'after the window');
    } finally {
      await h.close();
    }
  });

  it('the public limit counts an IPv6 /64 as one source', async (t) => {
    const h = await startHarness({ node: false, config: { trustProxy: true, publicRateLimit: { burst: 2, perSecond: 1 } } });
    // The limiter (rate-limiter-flexible, in memory) refills by Date.now() and
    // forgets a key by setTimeout; both are frozen here, so a stall of more
    // than a second between two requests on a loaded machine cannot refill
    // the bucket and turn the third request into a 200.
    t.mock.timers.enable({ apis: ['Date', 'setTimeout'], now: Date.now() });
    try {
      const st: number[] = [];
      for (let i = 1; i <= 3; i++) st.push((await h.request('GET', '/v1/regions', { headers: { 'x-forwarded-for': `2001:db8:7:7::${i}` } })).status);
      assert.deepEqual(st, [200, 200, 429]);
      assert.equal((await h.request('GET', '/v1/regions', { headers: { 'x-forwarded-for': '2001:db8:7:8::1' } })).status, 200);
    } finally {
      t.mock.timers.reset();
      await h.close();
    }
  });

  it('signups: 5 per source per hour, then 429 with Retry-After; other sources unaffected', async () => {
    const h = await startHarness({ config: { trustProxy: true, signupLimit: DEFAULTS.signupLimit } });
    try {
      const from = { 'x-forwarded-for': '198.51.100.23' };
      for (let i = 0; i < 5; i++) assert.equal((await h.request('POST', '/v1/signup', { body: { fingerprint: newFingerprint() }, headers: from })).status, 201);
      const r = await h.request('POST', '/v1/signup', { body: { fingerprint: newFingerprint() }, headers: from });
      assert.equal(r.status, 429);
      const ra = Number(r.headers.get('retry-after'));
      assert.ok(ra > 3000 && ra <= 3600, `Retry-After ${ra}`);
      assert.match(r.json.error, /too many signups/);
      assert.equal(h.control.store.accounts.list().length, 5, 'no sixth account');
      assert.equal((await h.request('POST', '/v1/signup', { body: { fingerprint: newFingerprint() }, headers: { 'x-forwarded-for': '198.51.100.24' } })).status, 201);
    } finally {
      await h.close();
    }
  });

  it('--anonymous-signup closed: no new accounts (403), a known machine still gets its token', async () => {
    const h = await startHarness();
    try {
      const known = await h.signup();
      h.control.config.signupLimit.mode = 'closed';
      const r = await h.request('POST', '/v1/signup', { body: { fingerprint: newFingerprint() } });
      assert.equal(r.status, 403);
      assert.match(r.json.error, /signup is closed/);
      const again = await h.request('POST', '/v1/signup', { body: { fingerprint: known.fingerprint } });
      assert.equal(again.status, 200);
      assert.equal(again.json.account_id, known.accountId);
    } finally {
      await h.close();
    }
  });
});
