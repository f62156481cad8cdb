/** GET /v1/ip/{addr}: exit addresses now and at a past time (?at=), with gaps while a node was down. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { IpAttributionResponse } from '../../src/control/http/schemas.js';
import { NODE_EXIT, startHarness, T0, type Harness } from './harness.js';

describe('IP attribution', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  it('attributes a current exit address to its region and node, nothing about users', async () => {
    const r = await h.request('GET', `/v1/ip/${NODE_EXIT}`);
    assert.equal(r.status, 200);
    const a = IpAttributionResponse.parse(r.json);
    assert.equal(a.exit, true);
    assert.equal(a.region, 'local');
    assert.equal(a.node, h.node.id);
    assert.equal(a.first_seen, new Date(T0).toISOString());
    assert.deepEqual(Object.keys(r.json).sort(), ['address', 'at', 'exit', 'first_seen', 'last_seen', 'node', 'region']);
    const no = await h.request('GET', '/v1/ip/192.0.2.55');
    assert.equal(no.status, 200);
    assert.equal(no.json.exit, false);
    assert.equal(no.json.region, null);
  });

  it('answers for past times with ?at=, and not for times the node did not use the address', async () => {
    // the node moves to a new exit address after an hour, goes down for a day, comes back on the old one
    h.clock.set(T0 + 3600_000);
    h.agent.setExitAddresses(['2001:db8::7']);
    h.agent.sync();
    h.clock.set(T0 + 26 * 3600_000);
    h.agent.setExitAddresses([NODE_EXIT]);
    h.agent.sync();
    const at = async (addr: string, ms: number | string) =>
      (await h.request('GET', `/v1/ip/${addr}?at=${encodeURIComponent(typeof ms === 'number' ? new Date(ms).toISOString() : ms)}`)).json;
    assert.equal((await at(NODE_EXIT, T0 + 60_000)).exit, true);
    assert.equal((await at(NODE_EXIT, T0 - 3600_000)).exit, false, 'before it was seen');
    assert.equal((await at(NODE_EXIT, T0 + 12 * 3600_000)).exit, false, 'not while the node was away from it');
    assert.equal((await at(NODE_EXIT, T0 + 26 * 3600_000)).exit, true);
    assert.equal((await at(NODE_EXIT, T0 + 26 * 3600_000)).first_seen, new Date(T0 + 26 * 3600_000).toISOString(), 'a new interval');
    const v6 = await at('2001:0db8:0000::0007', T0 + 3600_000);
    assert.equal(v6.exit, true);
    assert.equal(v6.address, '2001:db8::7', 'canonical form');
    assert.equal((await at('2001:db8::7', '2026-03-10')).exit, false, 'date-only times are midnight UTC');
    assert.equal((await h.request('GET', '/v1/ip/2001:db8::7')).json.exit, false, 'not now');
    assert.equal((await h.request('GET', '/v1/ip/::ffff:198.51.100.7')).json.address, NODE_EXIT);
  });
});
