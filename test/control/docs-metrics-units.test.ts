/** OpenAPI document, /metrics, and the small pure pieces (addresses, periods, keys, data dir). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { formatIp, normalizeIp, parseCidr } from '../../src/control/ip-address.js';
import { resolveDataDir, ROOT_DATA_DIR } from '../../src/control/paths.js';
import { periodAt, secondsUntilPeriodEnd } from '../../src/control/services/periods.js';
import { hashPassword, verifyPassword } from '../../src/control/services/secrets.js';
import { generateKeyPair, isWireGuardKey, publicKeyOf } from '../../src/crypto/wireguard-keys.js';
import { startHarness, type Harness } from './harness.js';

describe('OpenAPI and metrics', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  it('GET /v1/openapi.json documents every endpoint with schemas generated from zod', async () => {
    const r = await h.request('GET', '/v1/openapi.json');
    assert.equal(r.status, 200);
    const doc = r.json;
    assert.equal(doc.openapi, '3.1.0');
    for (const [path, method] of [
      ['/v1/health', 'get'], ['/v1/regions', 'get'], ['/v1/ip/{addr}', 'get'], ['/v1/signup', 'post'], ['/v1/login', 'post'],
      ['/v1/upgrade', 'post'], ['/v1/webhooks/stripe', 'post'], ['/v1/sessions', 'post'], ['/v1/sessions', 'get'],
      ['/v1/sessions/{id}', 'get'], ['/v1/sessions/{id}', 'delete'], ['/v1/usage', 'get'],
    ] as const) {
      assert.ok(doc.paths[path]?.[method], `${method} ${path}`);
    }
    const create = doc.paths['/v1/sessions'].post;
    const body = create.requestBody.content['application/json'].schema;
    assert.deepEqual(body.required, ['region']);
    assert.equal(body.additionalProperties, false);
    assert.ok(create.responses['201'].content['application/json'].schema.properties.config);
    for (const s of ['400', '401', '403', '429', '503']) assert.ok(create.responses[s], s);
    assert.ok(doc.paths['/v1/ip/{addr}'].get.parameters.some((p: { name: string; in: string }) => p.name === 'at' && p.in === 'query'));
  });

  it('GET /metrics on its own listener: requests by route template and status, sessions and accounts gauges; not on the API', async () => {
    const a = await h.signup();
    await h.request('POST', '/v1/sessions', { token: a.token, fingerprint: a.fingerprint, body: { region: 'local' } });
    await h.request('GET', '/v1/sessions/ses_0000000000000000', { token: a.token, fingerprint: a.fingerprint });
    const onApi = await h.request('GET', '/metrics');
    assert.equal(onApi.status, 404);
    assert.deepEqual(onApi.json, { error: 'not found' });
    const res = await fetch(`${h.metricsUrl}/metrics`);
    const r = { status: res.status, headers: res.headers, text: await res.text() };
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /text\/plain/);
    assert.match(r.text, /tunnelbyte_http_requests_total\{method="POST",route="\/v1\/signup",status="201"\} 1/);
    assert.match(r.text, /tunnelbyte_http_requests_total\{method="GET",route="\/v1\/sessions\/:id",status="404"\} 1/);
    assert.match(r.text, /^tunnelbyte_sessions_active 1$/m);
    assert.match(r.text, /^tunnelbyte_accounts\{tier="anonymous"\} 1$/m);
    assert.match(r.text, /^tunnelbyte_regions_active 1$/m);
    assert.ok(!r.text.includes(a.token));
    const other = await fetch(`${h.metricsUrl}/v1/health`);
    assert.equal(other.status, 404, 'the metrics listener serves nothing else');
    assert.match(await other.text(), /^\{"error":/);
    assert.equal((await fetch(`${h.metricsUrl}/metrics`, { method: 'POST' })).status, 405);
  });

  it('GET /v1/health and /v1/regions', async () => {
    assert.deepEqual((await h.request('GET', '/v1/health')).json, { ok: true });
    h.control.regions.add('idle', { name: 'No nodes here' });
    assert.deepEqual((await h.request('GET', '/v1/regions')).json, { regions: [{ id: 'local', name: 'local', paid_only: false, nodes: 1 }] });
    h.clock.advance(h.control.config.nodeStaleAfterMs + 1);
    assert.deepEqual((await h.request('GET', '/v1/regions')).json, { regions: [] }, 'a region without a recent heartbeat is not active');
  });
});

describe('pure pieces', () => {
  it('IP addresses: canonical text, CIDR checks', () => {
    assert.equal(normalizeIp('2001:0DB8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
    assert.equal(normalizeIp('::'), '::');
    assert.equal(normalizeIp('::ffff:10.0.0.1'), '10.0.0.1');
    assert.equal(normalizeIp('1.2.3'), null);
    assert.equal(formatIp(6, 1n), '::1');
    assert.throws(() => parseCidr('10.0.0.1/8'), /host bits set \(did you mean 10\.0\.0\.0\/8\?\)/);
    assert.throws(() => parseCidr('10.0.0.0/33'), /longer than 32/);
    assert.throws(() => parseCidr('nonsense'), /not a CIDR/);
  });

  it('periods are UTC calendar months', () => {
    const p = periodAt(Date.UTC(2026, 11, 31, 23, 59, 59));
    assert.equal(p.id, '2026-12');
    assert.equal(p.endMs, Date.UTC(2027, 0, 1));
    assert.equal(secondsUntilPeriodEnd(Date.UTC(2027, 0, 1) - 1500), 2);
  });

  it('WireGuard keys: generated pairs match, malformed keys are refused', () => {
    const kp = generateKeyPair();
    assert.ok(isWireGuardKey(kp.privateKey) && isWireGuardKey(kp.publicKey));
    assert.equal(publicKeyOf(kp.privateKey), kp.publicKey);
    const sk = Buffer.from(kp.privateKey, 'base64');
    assert.equal(sk[0]! & 7, 0);
    assert.equal(sk[31]! & 0xc0, 0x40);
    assert.ok(!isWireGuardKey('A'.repeat(43) + '='), 'the zero key');
    assert.ok(!isWireGuardKey(kp.publicKey.slice(1)));
  });

  it('passwords: scrypt with a per-password salt', async () => {
    const a = await hashPassword('same');
    const b = await hashPassword('same');
    assert.notEqual(a, b);
    assert.ok(await verifyPassword('same', a));
    assert.ok(!(await verifyPassword('other', a)));
    assert.ok(!(await verifyPassword('same', null)));
  });

  it('data dir: --data, then TB_DATA, then /var/lib/tunnelbyte for root, else the user data dir', () => {
    assert.equal(resolveDataDir({ flag: '/srv/tb', env: { TB_DATA: '/x' }, uid: 0 }), '/srv/tb');
    assert.equal(resolveDataDir({ env: { TB_DATA: '/x' }, uid: 0 }), '/x');
    assert.equal(resolveDataDir({ env: {}, uid: 0 }), ROOT_DATA_DIR);
    const user = resolveDataDir({ env: { XDG_DATA_HOME: '/home/u/.local/share' }, uid: 1000 });
    assert.match(user, /tunnelbyte$/);
    assert.notEqual(user, ROOT_DATA_DIR);
  });
});
