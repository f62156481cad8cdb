/**
 * Every row of the API document's error table, and the bad-input cases of
 * docs/contract.md §7, reached by real HTTP requests against the app.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startHarness, type Harness, type Reply } from './harness.js';

function assertError(r: Reply, status: number, pattern?: RegExp): void {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text}`);
  assert.match(r.headers.get('content-type') ?? '', /application\/json/);
  assert.deepEqual(Object.keys(r.json), ['error'], `error body has only "error": ${r.text}`);
  assert.equal(typeof r.json.error, 'string');
  if (pattern) assert.match(r.json.error, pattern);
}

describe('API error table', () => {
  let h: Harness;
  let anon: { token: string; fingerprint: string };
  before(async () => {
    h = await startHarness();
    h.control.regions.add('vip', { name: 'VIP', paidOnly: true });
    h.control.regions.add('empty', { name: 'No nodes' });
    anon = await h.signup();
  });
  after(() => h.close());
  const auth = () => ({ token: anon.token, fingerprint: anon.fingerprint });

  it('400 — bad region', async () => {
    assertError(await h.request('POST', '/v1/sessions', { ...auth(), body: { region: 'atlantis' } }), 400, /unknown region/);
  });

  it('400 — malformed IP', async () => {
    assertError(await h.request('GET', '/v1/ip/300.1.2.3'), 400, /malformed IP/);
    assertError(await h.request('GET', '/v1/ip/not-an-ip'), 400, /malformed IP/);
    assertError(await h.request('GET', '/v1/ip/fe80::1%25eth0'), 400, /malformed IP/);
  });

  it('401 — missing or invalid bearer token', async () => {
    assertError(await h.request('GET', '/v1/usage'), 401, /missing bearer token/);
    assertError(await h.request('GET', '/v1/usage', { token: 'tb_' + 'A'.repeat(43), fingerprint: anon.fingerprint }), 401, /invalid bearer token/);
    assertError(await h.request('GET', '/v1/usage', { headers: { authorization: 'Basic dXNlcjpwYXNz' } }), 401, /invalid bearer token/);
    assertError(await h.request('POST', '/v1/sessions', { body: { region: 'local' } }), 401);
  });

  it('403 — valid token, operation above the tier', async () => {
    assertError(await h.request('POST', '/v1/sessions', { ...auth(), body: { region: 'vip' } }), 403, /paid accounts/);
  });

  it('404 — resource (session id) does not exist', async () => {
    assertError(await h.request('GET', '/v1/sessions/ses_0000000000000000', auth()), 404, /no such session/);
    assertError(await h.request('DELETE', '/v1/sessions/ses_0000000000000000', auth()), 404);
  });

  it('429 — rate limited, with Retry-After', async () => {
    const strict = await startHarness({ node: false, config: { publicRateLimit: { burst: 2, perSecond: 1 } } });
    try {
      for (let i = 0; i < 2; i++) assert.equal((await strict.request('GET', '/v1/regions')).status, 200);
      const r = await strict.request('GET', '/v1/regions');
      assertError(r, 429, /too many requests/);
      assert.ok(Number(r.headers.get('retry-after')) >= 1);
    } finally {
      await strict.close();
    }
  });

  it('503 — no active node in the requested region', async () => {
    assertError(await h.request('POST', '/v1/sessions', { ...auth(), body: { region: 'empty' } }), 503, /no active node in region empty/);
  });

  it('413 — oversized body (2 MiB)', async () => {
    const big = JSON.stringify({ fingerprint: 'x'.repeat(2 * 1024 * 1024) });
    assertError(await h.request('POST', '/v1/signup', { rawBody: big, headers: { 'content-type': 'application/json' } }), 413, /larger than/);
    assertError(await h.request('POST', '/v1/sessions', { ...auth(), rawBody: big }), 413);
  });

  it('400 — malformed JSON, wrong types, unknown fields, bad keys', async () => {
    assertError(await h.request('POST', '/v1/signup', { rawBody: '{"fingerprint": ', headers: { 'content-type': 'application/json' } }), 400, /malformed JSON/);
    assertError(await h.request('POST', '/v1/signup', { body: { fingerprint: 12345678 } }), 400, /^fingerprint: expected string/);
    assertError(await h.request('POST', '/v1/signup', { body: {} }), 400, /^fingerprint: required/);
    assertError(await h.request('POST', '/v1/signup', { body: [1, 2] }), 400, /expected object/);
    assertError(await h.request('POST', '/v1/signup', { body: 'machine-1234' }), 400);
    assertError(await h.request('POST', '/v1/signup', { body: { fingerprint: 'machine-12345', admin: true } }), 400, /unknown field: admin/);
    assertError(await h.request('POST', '/v1/sessions', { ...auth(), body: { region: 'local', public_key: 'not-a-key' } }), 400, /public_key: must be a WireGuard key/);
    assertError(await h.request('POST', '/v1/sessions', { ...auth(), body: { region: 'local', public_key: 'A'.repeat(43) + '=' } }), 400);
    assertError(await h.request('POST', '/v1/sessions', { ...auth(), body: { region: 7 } }), 400, /^region: expected string/);
    assertError(await h.request('POST', '/v1/login', { body: { email: 'not-an-email', password: 'x' } }), 400, /^email:/);
    assertError(await h.request('GET', '/v1/ip/192.0.2.1?at=yesterday'), 400, /ISO 8601/);
    assertError(await h.request('GET', '/v1/ip/192.0.2.1?at=a&at=b'), 400);
    assertError(await h.request('GET', '/v1/sessions?state=bogus', auth()), 400, /^state:/);
  });

  it('unknown routes are a JSON 404, wrong methods a JSON 405', async () => {
    assertError(await h.request('GET', '/v1/nope'), 404, /not found/);
    assertError(await h.request('GET', '/'), 404);
    const r = await h.request('PUT', '/v1/regions');
    assertError(r, 405);
    assert.match(r.headers.get('allow') ?? '', /GET/);
  });

  it('no bad input is ever a 500', async () => {
    const probes: [string, string, string | undefined][] = [
      ['POST', '/v1/signup', '\u0000\u0001'],
      ['POST', '/v1/signup', 'null'],
      ['POST', '/v1/signup', '{"fingerprint": null}'],
      ['POST', '/v1/login', '{"email": {}, "password": []}'],
      ['POST', '/v1/upgrade', '{}'],
      ['POST', '/v1/webhooks/stripe', '{}'],
      ['GET', '/v1/ip/%E0%A4%A', undefined],
      ['GET', '/v1/sessions/%00', undefined],
      ['DELETE', '/v1/sessions/..%2F..', undefined],
    ];
    for (const [method, path, rawBody] of probes) {
      const r = await h.request(method, path, { ...auth(), ...(rawBody === undefined ? {} : { rawBody }) });
      assert.ok(r.status >= 400 && r.status < 500 || r.status === 503, `${method} ${path} → ${r.status} ${r.text}`);
      assert.equal(typeof r.json?.error, 'string');
    }
  });
});
