/**
 * Node → control over real HTTP (issue 16, the node channel's reporting
 * half): heartbeats keep a joined node placeable, and usage reports of
 * cumulative per-session counters with a sequence number count exactly once
 * — retried, reordered or repeated — and only for the node's own sessions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Actor } from '../../src/control/services/audit.js';
import { enrollNode, startHarness, type Harness } from './harness.js';

const OPERATOR: Actor = { actor: 'admin:test', source: null };

describe('node heartbeats and usage reports', () => {
  let h: Harness;
  const enroll = (region: string) => enrollNode(h, region);
  before(async () => {
    h = await startHarness({ node: false });
  });
  after(() => h.close());

  it('heartbeats keep the node placeable; missed ones take its region away; the answer carries its state', async () => {
    const n = await enroll('hb');
    h.clock.advance(h.control.config.nodeStaleAfterMs + 1);
    assert.ok(!(await h.request('GET', '/v1/regions')).json.regions.some((r: { id: string }) => r.id === 'hb'), 'marked down after missed heartbeats');
    const hb = await h.request('POST', `/v1/nodes/${n.id}/heartbeat`, { token: n.credential, body: { exit_addresses: ['203.0.113.200'] } });
    assert.equal(hb.status, 200, hb.text);
    assert.equal(hb.json.state, 'active');
    assert.ok((await h.request('GET', '/v1/regions')).json.regions.some((r: { id: string }) => r.id === 'hb'));
    assert.equal((await h.request('GET', '/v1/ip/203.0.113.200')).json.node, n.id, 'its exit addresses are attributed');
    h.control.nodes.drain(n.id, OPERATOR);
    assert.equal((await h.request('POST', `/v1/nodes/${n.id}/heartbeat`, { token: n.credential, body: { exit_addresses: [] } })).json.state, 'draining');
    assert.equal((await h.request('POST', `/v1/nodes/${n.id}/heartbeat`, { token: n.credential, body: { exit_addresses: ['not-an-ip'] } })).status, 400);
  });

  it('usage counts once per sequence, by cumulative counters, into the session and the account', async () => {
    const n = await enroll('use');
    const a = await h.signup();
    const s = await h.request('POST', '/v1/sessions', { token: a.token, fingerprint: a.fingerprint, body: { region: 'use' } });
    assert.equal(s.status, 201);
    assert.equal(s.json.node, n.id);
    const report = (seqNo: number, rx: number, tx: number) =>
      h.request('POST', `/v1/nodes/${n.id}/usage`, {
        token: n.credential,
        body: { seq: seqNo, sessions: [{ id: s.json.id, rx_bytes: rx, tx_bytes: tx, last_handshake_at: new Date(h.clock.wallMs()).toISOString() }] },
      });
    const usage = async () => (await h.request('GET', `/v1/sessions/${s.json.id}`, { token: a.token, fingerprint: a.fingerprint })).json;
    assert.deepEqual((await report(1, 1000, 200)).json, { acked_seq: 1, applied: true });
    assert.deepEqual((await report(1, 1000, 200)).json, { acked_seq: 1, applied: false }, 'a retry is acknowledged, not counted');
    assert.deepEqual((await report(3, 5000, 700)).json, { acked_seq: 3, applied: true }, 'a gap is fine: counters are cumulative');
    assert.deepEqual((await report(2, 3000, 500)).json, { acked_seq: 3, applied: false }, 'a late older report changes nothing');
    let u = await usage();
    assert.equal(u.rx_bytes, 5000);
    assert.equal(u.tx_bytes, 700);
    assert.ok(u.last_handshake_at);
    assert.deepEqual((await h.request('GET', '/v1/usage', { token: a.token, fingerprint: a.fingerprint })).json.bytes, { rx: 5000, tx: 700, total: 5700 });
    assert.deepEqual((await report(4, 4000, 700)).json, { acked_seq: 4, applied: true }, 'a counter that went back counts nothing');
    assert.deepEqual((await report(5, 6000, 900)).json, { acked_seq: 5, applied: true });
    u = await usage();
    assert.equal(u.rx_bytes, 6000, 'counted from the highest value seen');
    assert.equal(u.tx_bytes, 900);
    assert.equal((await h.request('POST', `/v1/nodes/${n.id}/usage`, { token: n.credential, body: { seq: 0, sessions: [] } })).status, 400);
    assert.equal((await h.request('POST', `/v1/nodes/${n.id}/usage`, { token: n.credential, body: { seq: 6, sessions: [{ id: s.json.id, rx_bytes: -1, tx_bytes: 0, last_handshake_at: null }] } })).status, 400);
  });

  it("a node reports only its own sessions, and only under its own id", async () => {
    const x = await enroll('iso');
    const y = await enroll('iso');
    const a = await h.signup();
    h.control.accounts.setTier(a.accountId, 'paid', OPERATOR);
    const s1 = (await h.request('POST', '/v1/sessions', { token: a.token, body: { region: 'iso' } })).json;
    const s2 = (await h.request('POST', '/v1/sessions', { token: a.token, body: { region: 'iso' } })).json;
    const onX = s1.node === x.id ? s1 : s2;
    const onY = s1.node === y.id ? s1 : s2;
    assert.notEqual(onX.id, onY.id);
    const body = (id: string) => ({ seq: 1, sessions: [{ id, rx_bytes: 10, tx_bytes: 10, last_handshake_at: null }] });
    const foreign = await h.request('POST', `/v1/nodes/${x.id}/usage`, { token: x.credential, body: { ...body(onX.id), sessions: [...body(onX.id).sessions, ...body(onY.id).sessions] } });
    assert.equal(foreign.status, 403, "exit-a cannot report exit-b's session");
    assert.equal((await h.request('POST', `/v1/nodes/${y.id}/usage`, { token: x.credential, body: body(onY.id) })).status, 403, 'nor report as exit-b');
    assert.equal((await h.request('POST', `/v1/nodes/${y.id}/heartbeat`, { token: x.credential, body: { exit_addresses: [] } })).status, 403);
    const sx = (await h.request('GET', `/v1/sessions/${onX.id}`, { token: a.token })).json;
    assert.equal(sx.rx_bytes, 0, 'the refused report counted nothing, not even its own part');
    assert.deepEqual((await h.request('POST', `/v1/nodes/${x.id}/usage`, { token: x.credential, body: body(onX.id) })).json, { acked_seq: 1, applied: true }, 'its seq was not spent');
    // A session this database never had (the node counted it under a database this one replaced) counts nothing; the rest applies.
    const unknown = { id: 'ses_0000000000000000', rx_bytes: 5000, tx_bytes: 5000, last_handshake_at: null };
    const mixed = await h.request('POST', `/v1/nodes/${x.id}/usage`, { token: x.credential, body: { seq: 2, sessions: [unknown, { ...body(onX.id).sessions[0]!, rx_bytes: 30 }] } });
    assert.deepEqual(mixed.json, { acked_seq: 2, applied: true });
    assert.equal((await h.request('GET', `/v1/sessions/${onX.id}`, { token: a.token })).json.rx_bytes, 30, 'the known session counted, the unknown one nothing');
    h.control.nodes.revoke(x.id, OPERATOR);
    assert.equal((await h.request('POST', `/v1/nodes/${x.id}/usage`, { token: x.credential, body: { seq: 2, sessions: [] } })).status, 401, 'revoked: refused at once');
  });

  it('/metrics times every report answered 200 in SQLite, by kind (what bench --fleet reads)', async () => {
    const n = await enroll('met');
    const counts = async () => {
      const text = await (await fetch(`${h.metricsUrl}/metrics`)).text();
      const count = (kind: string) => Number(new RegExp(`^tunnelbyte_node_report_write_seconds_count\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
      assert.match(text, /^tunnelbyte_node_report_write_seconds\{quantile="0.99",kind="heartbeat"\} /m);
      return { heartbeat: count('heartbeat'), usage: count('usage') };
    };
    const before = await counts();
    assert.equal((await h.request('POST', `/v1/nodes/${n.id}/heartbeat`, { token: n.credential, body: { exit_addresses: ['203.0.113.77'] } })).status, 200);
    assert.equal((await h.request('POST', `/v1/nodes/${n.id}/heartbeat`, { token: n.credential, body: { exit_addresses: ['not-an-ip'] } })).status, 400);
    assert.equal((await h.request('POST', `/v1/nodes/${n.id}/usage`, { token: n.credential, body: { seq: 1, sessions: [] } })).status, 200);
    assert.equal((await h.request('POST', `/v1/nodes/${n.id}/usage`, { token: n.credential, body: { seq: 1, sessions: [] } })).status, 200, 'a retry');
    assert.deepEqual(await counts(), { heartbeat: before.heartbeat + 1, usage: before.usage + 2 }, 'the refused heartbeat is not timed');
  });
});
