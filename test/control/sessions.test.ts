/**
 * Sessions over real HTTP: creation (with and without a client key), the
 * wg-quick config, the peer on the data plane, tier limits, close, counters,
 * expiry, quota exhaustion, restart reload and concurrent creation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createControlPlane } from '../../src/control/control-plane.js';
import { GiB } from '../../src/control/config.js';
import { CreatedSessionView, SessionView, UsageResponse } from '../../src/control/http/schemas.js';
import { cidrContains, parseCidr } from '../../src/control/ip-address.js';
import { generateKeyPair, publicKeyOf } from '../../src/crypto/wireguard-keys.js';
import { RecordingDataPlane, makePaid, startHarness, T0, type Harness } from './harness.js';

describe('sessions', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ config: { tiers: { anonymous: { quotaBytes: 10_000 } } } });
    h.control.regions.add('vip', { paidOnly: true });
  });
  after(() => h.close());

  it('creates a session with a server-generated key pair and a complete wg-quick config', async () => {
    const a = await h.signup();
    const r = await h.request('POST', '/v1/sessions', { token: a.token, fingerprint: a.fingerprint, body: { region: 'local' } });
    assert.equal(r.status, 201, r.text);
    const s = CreatedSessionView.parse(r.json);
    assert.equal(r.headers.get('location'), `/v1/sessions/${s.id}`);
    assert.equal(s.state, 'active');
    assert.equal(s.region, 'local');
    assert.equal(s.node, h.node.id);
    assert.ok(s.private_key);
    assert.equal(publicKeyOf(s.private_key), s.client.public_key);
    assert.equal(s.client.addresses.length, 2);
    assert.ok(cidrContains(parseCidr('10.64.0.0/16'), s.client.addresses[0]!.replace('/32', '')));
    assert.match(s.client.addresses[1]!, /^fd00:64::[0-9a-f]+\/128$/);
    assert.deepEqual(s.exit, { public_key: h.node.publicKey, endpoint: 'vpn.example.test:51820', allowed_ips: ['0.0.0.0/0', '::/0'], persistent_keepalive: 25 });
    const cfg = s.config;
    assert.match(cfg, /^\[Interface\]$/m);
    assert.ok(cfg.includes(`PrivateKey = ${s.private_key}\n`));
    assert.ok(cfg.includes(`Address = ${s.client.addresses.join(', ')}\n`));
    assert.ok(cfg.includes('DNS = 1.1.1.1, 2606:4700:4700::1111\n'));
    assert.match(cfg, /^\[Peer\]$/m);
    assert.ok(cfg.includes(`PublicKey = ${h.node.publicKey}\n`));
    assert.ok(cfg.includes('Endpoint = vpn.example.test:51820\n'));
    assert.ok(cfg.includes('AllowedIPs = 0.0.0.0/0, ::/0\n'));
    assert.ok(cfg.includes('PersistentKeepalive = 25\n'));
    // the peer is on the data plane at once, with only the client's own addresses
    assert.deepEqual(h.dataPlane.peers.get(s.client.public_key), s.client.addresses);
    // the private key is not stored anywhere
    const dump = JSON.stringify(h.control.store.db.prepare('SELECT * FROM sessions').all());
    assert.ok(!dump.includes(s.private_key));
  });

  it('uses the client key when given: the config carries no private key', async () => {
    const a = await h.signup();
    const kp = generateKeyPair();
    const r = await h.request('POST', '/v1/sessions', { token: a.token, fingerprint: a.fingerprint, body: { region: 'local', public_key: kp.publicKey } });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.private_key, null);
    assert.equal(r.json.client.public_key, kp.publicKey);
    assert.doesNotMatch(r.json.config, /^PrivateKey =/m);
    assert.ok(h.dataPlane.peers.has(kp.publicKey));
    // another account cannot take the same key while it is active
    const b = await h.signup();
    const dup = await h.request('POST', '/v1/sessions', { token: b.token, fingerprint: b.fingerprint, body: { region: 'local', public_key: kp.publicKey } });
    assert.equal(dup.status, 409, dup.text);
  });

  it("refuses the exit's own key (400) and a key active on another node (409), so no sync ever fails on them", async () => {
    const a = await h.signup();
    const own = await h.request('POST', '/v1/sessions', { token: a.token, fingerprint: a.fingerprint, body: { region: 'local', public_key: h.node.publicKey } });
    assert.equal(own.status, 400, own.text);
    assert.match(own.json.error, /exit's own public key/);
    // a second node of the region: a session there, then the same key offered again while this node is least loaded
    const other = h.control.nodes.register({ regionId: 'local', publicKey: generateKeyPair().publicKey, endpoint: 'vpn2.example.test:51820', exitAddresses: ['198.51.100.8'], pool4: '10.65.0.0/16', pool6: 'fd00:65::/64' });
    const kp = generateKeyPair();
    const first = h.control.sessions.create(h.control.accounts.get(a.accountId), { regionId: 'local', publicKey: kp.publicKey });
    const b = await h.signup();
    const dup = await h.request('POST', '/v1/sessions', { token: b.token, fingerprint: b.fingerprint, body: { region: 'local', public_key: kp.publicKey } });
    assert.equal(dup.status, 409, `${first.node.id} then ${dup.status} ${dup.text}`);
    h.control.sessions.adminClose(first.session.id);
    h.control.store.db.prepare('UPDATE nodes SET last_heartbeat_at = 0 WHERE id = ?').run(other.node.id); // gone: later tests see one node
    const report = h.agent.sync();
    assert.deepEqual(report.failures, []);
  });

  it("lists and shows the caller's sessions; another account's session is a 404", async () => {
    const a = await h.signup();
    const b = await h.signup();
    const created = await h.request('POST', '/v1/sessions', { token: a.token, fingerprint: a.fingerprint, body: { region: 'local' } });
    const id = created.json.id as string;
    const list = await h.request('GET', '/v1/sessions', { token: a.token, fingerprint: a.fingerprint });
    assert.equal(list.status, 200);
    assert.deepEqual(list.json.sessions.map((s: { id: string }) => s.id), [id]);
    const one = await h.request('GET', `/v1/sessions/${id}`, { token: a.token, fingerprint: a.fingerprint });
    assert.equal(one.status, 200);
    const s = SessionView.parse(one.json);
    assert.equal(s.id, id);
    assert.equal(s.created_at, new Date(T0).toISOString());
    assert.equal(s.last_handshake_at, null);
    assert.equal(s.rx_bytes, 0);
    assert.equal('config' in one.json, false);
    assert.equal((await h.request('GET', `/v1/sessions/${id}`, { token: b.token, fingerprint: b.fingerprint })).status, 404);
    assert.equal((await h.request('DELETE', `/v1/sessions/${id}`, { token: b.token, fingerprint: b.fingerprint })).status, 404);
    assert.deepEqual((await h.request('GET', '/v1/sessions', { token: b.token, fingerprint: b.fingerprint })).json.sessions, []);
    assert.equal(h.control.store.sessions.get(id)!.state, 'active');
  });

  it('anonymous: a second active session is 403; closing one removes its peer at once and frees the slot', async () => {
    const a = await h.signup();
    const auth = { token: a.token, fingerprint: a.fingerprint };
    const first = await h.request('POST', '/v1/sessions', { ...auth, body: { region: 'local' } });
    assert.equal(first.status, 201);
    const second = await h.request('POST', '/v1/sessions', { ...auth, body: { region: 'local' } });
    assert.equal(second.status, 403);
    assert.match(second.json.error, /session limit/);
    const pk = first.json.client.public_key as string;
    assert.ok(h.dataPlane.peers.has(pk));
    const del = await h.request('DELETE', `/v1/sessions/${first.json.id}`, auth);
    assert.equal(del.status, 200);
    assert.equal(del.json.state, 'closed');
    assert.equal(del.json.close_reason, 'client');
    assert.ok(!h.dataPlane.peers.has(pk), 'peer removed without waiting for a sync');
    assert.equal((await h.request('DELETE', `/v1/sessions/${first.json.id}`, auth)).status, 200, 'closing twice is harmless');
    assert.deepEqual((await h.request('GET', '/v1/sessions', auth)).json.sessions, []);
    const all = await h.request('GET', '/v1/sessions?state=all', auth);
    assert.equal(all.json.sessions.length, 1);
    assert.equal((await h.request('POST', '/v1/sessions', { ...auth, body: { region: 'local' } })).status, 201);
  });

  it('paid-only region: 403 for anonymous, 503 once paid while it has no node; paid limit is 5', async () => {
    const a = await h.signup();
    const auth = { token: a.token, fingerprint: a.fingerprint };
    assert.equal((await h.request('POST', '/v1/sessions', { ...auth, body: { region: 'vip' } })).status, 403);
    makePaid(h, a.accountId);
    const r = await h.request('POST', '/v1/sessions', { ...auth, body: { region: 'vip' } });
    assert.equal(r.status, 503);
    assert.match(r.json.error, /no active node/);
    for (let i = 0; i < 5; i++) assert.equal((await h.request('POST', '/v1/sessions', { ...auth, body: { region: 'local' } })).status, 201);
    assert.equal((await h.request('POST', '/v1/sessions', { ...auth, body: { region: 'local' } })).status, 403);
    // back to anonymous: the tier allows one session, the oldest stays
    const change = h.control.accounts.setTier(a.accountId, 'anonymous');
    assert.equal(change.closedSessionIds.length, 4);
    assert.equal(h.control.store.sessions.countActiveByAccount(a.accountId), 1);
  });

  it('counters: device bytes become session bytes (client view) and period usage; handshakes slide the expiry', async () => {
    const a = await h.signup();
    const auth = { token: a.token, fingerprint: a.fingerprint };
    const s = (await h.request('POST', '/v1/sessions', { ...auth, body: { region: 'local' } })).json;
    h.clock.advance(60_000);
    h.dataPlane.traffic(s.client.public_key, 300, 1200, h.clock.wallMs());
    const report = h.agent.sync();
    assert.equal(report.bytesFlushed, 1500);
    h.dataPlane.traffic(s.client.public_key, 100, 400);
    h.agent.sync();
    const st = SessionView.parse((await h.request('GET', `/v1/sessions/${s.id}`, auth)).json);
    assert.equal(st.rx_bytes, 1600, 'what the client received = what the exit sent');
    assert.equal(st.tx_bytes, 400);
    assert.equal(st.last_handshake_at, new Date(h.clock.wallMs()).toISOString());
    assert.equal(Date.parse(st.expires_at), h.clock.wallMs() + h.control.config.sessionIdleTtlMs);
    const u = UsageResponse.parse((await h.request('GET', '/v1/usage', auth)).json);
    assert.deepEqual(u.bytes, { rx: 1600, tx: 400, total: 2000 });
    assert.equal(u.period.id, '2026-03');
    assert.equal(u.sessions.active, 1);
    assert.equal(u.sessions.limit, 1);
    assert.equal(u.quota_bytes, 10_000);
    assert.equal(u.regions, 'free');
    h.control.sessions.close(h.control.accounts.get(a.accountId), s.id);
  });

  it('an idle session expires: its peer is removed at the next sync', async () => {
    const a = await h.signup();
    const auth = { token: a.token, fingerprint: a.fingerprint };
    const s = (await h.request('POST', '/v1/sessions', { ...auth, body: { region: 'local' } })).json;
    h.clock.advance(h.control.config.sessionIdleTtlMs + 1);
    const report = h.agent.sync();
    assert.ok(report.expired.includes(s.id));
    assert.ok(report.removed.includes(s.client.public_key));
    assert.ok(!h.dataPlane.peers.has(s.client.public_key));
    const st = (await h.request('GET', `/v1/sessions/${s.id}`, auth)).json;
    assert.equal(st.state, 'expired');
    assert.equal(st.close_reason, 'expired');
  });

  it('quota exhausted: peers cut, 429 with Retry-After until the period ends, restored in the next period', async () => {
    const periodEnd = Date.UTC(2026, 3, 1);
    h.clock.set(periodEnd - 2 * 3600_000); // late in March, so the session is not idle-expired at the turn
    h.agent.sync();
    const a = await h.signup();
    const auth = { token: a.token, fingerprint: a.fingerprint };
    const s = (await h.request('POST', '/v1/sessions', { ...auth, body: { region: 'local' } })).json;
    h.dataPlane.traffic(s.client.public_key, 4000, 6500, h.clock.wallMs());
    const report = h.agent.sync();
    assert.ok(report.suspended.includes(s.id));
    assert.ok(!h.dataPlane.peers.has(s.client.public_key), 'peer stops passing traffic');
    const st = (await h.request('GET', `/v1/sessions/${s.id}`, auth)).json;
    assert.equal(st.state, 'suspended');
    assert.equal(st.rx_bytes, 6500);
    const u = (await h.request('GET', '/v1/usage', auth)).json;
    assert.equal(u.quota_exhausted, true);
    const r = await h.request('POST', '/v1/sessions', { ...auth, body: { region: 'local' } });
    assert.equal(r.status, 429, r.text);
    assert.equal(Number(r.headers.get('retry-after')), 7200);
    assert.match(r.json.error, /quota/);
    h.clock.set(periodEnd - 1000);
    h.agent.sync();
    assert.equal((await h.request('POST', '/v1/sessions', { ...auth, body: { region: 'local' } })).status, 429);
    assert.ok(!h.dataPlane.peers.has(s.client.public_key));
    // the period turns: usage starts at zero, the peer is back
    h.clock.set(periodEnd);
    const back = h.agent.sync();
    assert.ok(back.added.includes(s.client.public_key));
    assert.ok(h.dataPlane.peers.has(s.client.public_key));
    assert.equal((await h.request('GET', `/v1/sessions/${s.id}`, auth)).json.state, 'active');
    assert.equal((await h.request('GET', '/v1/usage', auth)).json.bytes.total, 0);
    assert.equal((await h.request('POST', '/v1/sessions', { ...auth, body: { region: 'local' } })).status, 403, 'the limit of 1 holds again');
  });

  it('quota-cut peers come back when the tier is raised', async () => {
    h.clock.set(Date.UTC(2026, 3, 2));
    h.agent.sync();
    const a = await h.signup();
    const auth = { token: a.token, fingerprint: a.fingerprint };
    const s = (await h.request('POST', '/v1/sessions', { ...auth, body: { region: 'local' } })).json;
    h.dataPlane.traffic(s.client.public_key, 20_000, 0);
    h.agent.sync();
    assert.ok(!h.dataPlane.peers.has(s.client.public_key));
    makePaid(h, a.accountId);
    assert.ok(h.dataPlane.peers.has(s.client.public_key), 'restored at once by the tier change');
    assert.equal((await h.request('GET', `/v1/sessions/${s.id}`, auth)).json.state, 'active');
  });
});

describe('sessions: concurrency, restart, other processes', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ config: { tiers: { paid: { maxSessions: 1000, requestsPerMinute: 100_000 } } } });
  });
  after(() => h.close());

  it('200 concurrent session creations never share an address', async () => {
    const a = await h.signup();
    makePaid(h, a.accountId);
    const replies = await Promise.all(
      Array.from({ length: 200 }, () => h.request('POST', '/v1/sessions', { token: a.token, body: { region: 'local' } })),
    );
    for (const r of replies) assert.equal(r.status, 201, r.text);
    const v4 = replies.map((r) => r.json.client.addresses[0] as string);
    const v6 = replies.map((r) => r.json.client.addresses[1] as string);
    assert.equal(new Set(v4).size, 200);
    assert.equal(new Set(v6).size, 200);
    const pool = parseCidr('10.64.0.0/16');
    for (const addr of v4) {
      const ip = addr.replace('/32', '');
      assert.ok(cidrContains(pool, ip) && ip !== '10.64.0.0' && ip !== '10.64.0.1' && ip !== '10.64.255.255', ip);
    }
    assert.equal(h.dataPlane.peers.size, 200);
    assert.equal(new Set([...h.dataPlane.peers.values()].map((ips) => ips[0])).size, 200);
  });

  it('reloads the active sessions of its node after a restart', async () => {
    const active = h.control.store.sessions.listActiveByNode(h.node.id);
    assert.ok(active.length >= 200);
    const cp2 = createControlPlane({ dbPath: h.dbPath, config: h.control.config, clock: h.clock });
    try {
      const dp2 = new RecordingDataPlane();
      const agent2 = cp2.attachDataPlane(h.node.id, dp2, []);
      const r = agent2.sync();
      assert.equal(r.added.length, active.length);
      for (const s of active) assert.deepEqual(dp2.peers.get(s.clientPublicKey), [`${s.ipv4}/32`, `${s.ipv6}/128`]);
    } finally {
      cp2.close();
    }
  });

  it('a session closed by another process loses its peer at the next sync; bytes up to then are kept', async () => {
    const [victim] = h.control.store.sessions.listActiveByNode(h.node.id);
    h.dataPlane.traffic(victim!.clientPublicKey, 10, 20);
    const other = createControlPlane({ dbPath: h.dbPath, config: h.control.config, clock: h.clock });
    try {
      other.sessions.adminClose(victim!.id);
    } finally {
      other.close();
    }
    assert.ok(h.dataPlane.peers.has(victim!.clientPublicKey), 'still there until the server syncs');
    const r = h.agent.sync();
    assert.deepEqual(r.removed, [victim!.clientPublicKey]);
    assert.ok(!h.dataPlane.peers.has(victim!.clientPublicKey));
    const after = h.control.store.sessions.get(victim!.id)!;
    assert.equal(after.state, 'closed');
    assert.equal(after.closeReason, 'admin');
    assert.equal(after.rxBytes, 20);
    assert.equal(after.txBytes, 10);
  });

  it('the default anonymous quota is 10 GiB', () => {
    assert.equal(h.control.config.tiers.anonymous.quotaBytes, 10 * GiB);
  });
});
