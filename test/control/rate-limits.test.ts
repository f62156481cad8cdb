/**
 * Request limits with the default settings: public endpoints 10 burst and
 * 1/s per source IP (X-Forwarded-For only with a trusted proxy); bearer
 * endpoints per token by tier.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { startHarness } from './harness.js';

describe('rate limits', () => {
  it('public: the 11th quick request is a 429 with Retry-After; one more is allowed per second; health is never limited', async () => {
    const h = await startHarness({ node: false, config: { publicRateLimit: { burst: 10, perSecond: 1 } } });
    try {
      for (let i = 0; i < 10; i++) assert.equal((await h.request('GET', '/v1/regions')).status, 200, `request ${i + 1}`);
      const r = await h.request('GET', '/v1/regions');
      assert.equal(r.status, 429);
      assert.equal(r.headers.get('retry-after'), '1');
      assert.match(r.json.error, /too many requests/);
      assert.equal((await h.request('GET', '/v1/ip/192.0.2.1')).status, 429, 'the limit is per address, across public endpoints');
      for (let i = 0; i < 20; i++) assert.equal((await h.request('GET', '/v1/health')).status, 200);
      await sleep(1100);
      assert.equal((await h.request('GET', '/v1/regions')).status, 200, 'refilled after 1 s');
      assert.equal((await h.request('GET', '/v1/regions')).status, 429, 'by one request only');
    } finally {
      await h.close();
    }
  });

  it('X-Forwarded-For is ignored without --trust-proxy and honoured with it', async () => {
    const direct = await startHarness({ node: false, config: { publicRateLimit: { burst: 2, perSecond: 1 } } });
    const proxied = await startHarness({ node: false, config: { trustProxy: true, publicRateLimit: { burst: 2, perSecond: 1 } } });
    try {
      const spoof = (i: number) => ({ headers: { 'x-forwarded-for': `203.0.113.${i}` } });
      const d = [];
      for (let i = 0; i < 4; i++) d.push((await direct.request('GET', '/v1/regions', spoof(i))).status);
      assert.deepEqual(d, [200, 200, 429, 429]);
      const p = [];
      for (let i = 0; i < 4; i++) p.push((await proxied.request('GET', '/v1/regions', spoof(i))).status);
      assert.deepEqual(p, [200, 200, 200, 200], 'each forwarded client has its own budget');
      const same = [];
      for (let i = 0; i < 3; i++) same.push((await proxied.request('GET', '/v1/regions', { headers: { 'x-forwarded-for': '198.18.0.1, 203.0.113.50' } })).status);
      assert.deepEqual(same, [200, 200, 429], 'the right-most entry (added by the proxy) counts');
    } finally {
      await direct.close();
      await proxied.close();
    }
  });

  it('bearer endpoints: per-token cap of the tier, 429 with Retry-After', async () => {
    const h = await startHarness({ config: { tiers: { anonymous: { requestsPerMinute: 3 } } } });
    try {
      const a = await h.signup();
      const b = await h.signup();
      for (let i = 0; i < 3; i++) assert.equal((await h.request('GET', '/v1/usage', { token: a.token, fingerprint: a.fingerprint })).status, 200);
      const r = await h.request('GET', '/v1/usage', { token: a.token, fingerprint: a.fingerprint });
      assert.equal(r.status, 429);
      const retry = Number(r.headers.get('retry-after'));
      assert.ok(retry >= 1 && retry <= 60, String(retry));
      assert.match(r.json.error, /request cap of the anonymous tier/);
      assert.equal((await h.request('GET', '/v1/usage', { token: b.token, fingerprint: b.fingerprint })).status, 200, 'other tokens are not affected');
      assert.equal((await h.request('GET', '/v1/usage', { token: b.token, fingerprint: b.fingerprint })).json.requests_per_minute, 3);
    } finally {
      await h.close();
    }
  });
});
