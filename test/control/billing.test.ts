/**
 * Billing: Checkout Sessions created against a local fake Stripe API (the
 * real `stripe` client pointed at 127.0.0.1), and webhooks signed with
 * stripe's own generateTestHeaderString: applied once, replays harmless,
 * bad signatures 400.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Stripe from 'stripe';
import { UpgradeResponse } from '../../src/control/http/schemas.js';
import { startHarness, type Harness } from './harness.js';

const WEBHOOK_SECRET = 'whsec_test_secret_for_tunnelbyte';

interface FakeStripe {
  server: Server;
  port: number;
  requests: { method: string; path: string; auth: string; form: URLSearchParams }[];
}

async function startFakeStripe(): Promise<FakeStripe> {
  const requests: FakeStripe['requests'] = [];
  let n = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      requests.push({ method: req.method!, path: req.url!, auth: req.headers.authorization ?? '', form });
      res.setHeader('content-type', 'application/json');
      if (req.method === 'POST' && req.url === '/v1/checkout/sessions') {
        const id = `cs_test_${++n}`;
        res.end(JSON.stringify({ id, object: 'checkout.session', mode: 'subscription', url: `https://checkout.stripe.test/c/pay/${id}`, client_reference_id: form.get('client_reference_id') }));
      } else {
        res.statusCode = 404;
        res.end(JSON.stringify({ error: { type: 'invalid_request_error', message: 'no such route in the fake' } }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, requests };
}

let eventSeq = 0;
function signedEvent(type: string, object: Record<string, unknown>, id = `evt_test_${++eventSeq}`): { payload: string; signature: string } {
  const payload = JSON.stringify({ id, object: 'event', type, api_version: '2025-01-01', created: Math.floor(Date.now() / 1000), data: { object } });
  return { payload, signature: Stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET }) };
}

describe('billing with Stripe', () => {
  let h: Harness;
  let stripe: FakeStripe;
  before(async () => {
    stripe = await startFakeStripe();
    h = await startHarness({
      config: {
        billing: { secretKey: 'sk_test_fake', webhookSecret: WEBHOOK_SECRET, apiHost: { host: '127.0.0.1', port: stripe.port, protocol: 'http' } },
      },
    });
    h.control.regions.add('vip', { paidOnly: true });
  });
  after(async () => {
    await h.close();
    stripe.server.closeAllConnections();
    await new Promise<void>((r) => stripe.server.close(() => r()));
  });

  const deliver = (e: { payload: string; signature: string }) =>
    h.request('POST', '/v1/webhooks/stripe', { rawBody: e.payload, headers: { 'content-type': 'application/json', 'stripe-signature': e.signature } });

  it('upgrade creates a subscription Checkout Session for the account and returns its URL', async () => {
    const a = await h.signup();
    const r = await h.request('POST', '/v1/upgrade', { token: a.token, fingerprint: a.fingerprint, body: { email: 'carol@example.test', password: 'carol-password' } });
    assert.equal(r.status, 200, r.text);
    const up = UpgradeResponse.parse(r.json);
    assert.match(up.checkout_url!, /^https:\/\/checkout\.stripe\.test\/c\/pay\/cs_test_\d+$/);
    assert.equal(up.tier, 'anonymous', 'paid only once Stripe confirms');
    const req = stripe.requests.at(-1)!;
    assert.equal(req.path, '/v1/checkout/sessions');
    assert.equal(req.auth, 'Bearer sk_test_fake');
    assert.equal(req.form.get('mode'), 'subscription');
    assert.equal(req.form.get('client_reference_id'), a.accountId);
    assert.equal(req.form.get('customer_email'), 'carol@example.test');
    assert.equal(req.form.get('line_items[0][price_data][recurring][interval]'), 'month');
    assert.match(req.form.get('success_url')!, /^http:\/\/127\.0\.0\.1:\d+\/v1\/billing\/success\?session_id=\{CHECKOUT_SESSION_ID\}$/);
    // the new token is still machine-bound until payment
    assert.equal((await h.request('GET', '/v1/usage', { token: up.token })).status, 401);
    assert.equal((await h.request('GET', '/v1/usage', { token: up.token, fingerprint: a.fingerprint })).status, 200);
  });

  it('checkout.session.completed makes the account paid, once; replays are acknowledged without effect', async () => {
    const a = await h.signup();
    const auth = { token: a.token, fingerprint: a.fingerprint };
    assert.equal((await h.request('POST', '/v1/sessions', { ...auth, body: { region: 'vip' } })).status, 403);
    const ev = signedEvent('checkout.session.completed', {
      id: 'cs_test_paid',
      object: 'checkout.session',
      client_reference_id: a.accountId,
      customer: 'cus_123',
      subscription: 'sub_123',
      payment_status: 'paid',
    });
    const first = await deliver(ev);
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(first.json, { received: true, duplicate: false });
    const acct = h.control.store.accounts.get(a.accountId)!;
    assert.equal(acct.tier, 'paid');
    assert.equal(acct.stripeCustomerId, 'cus_123');
    assert.equal(acct.stripeSubscriptionId, 'sub_123');
    assert.equal((await h.request('GET', '/v1/usage', { token: a.token })).json.tier, 'paid', 'portable once paid');

    // the operator downgrades; a replay of the old event must not re-apply it
    h.control.accounts.setTier(a.accountId, 'anonymous');
    const replay = await deliver(ev);
    assert.equal(replay.status, 200);
    assert.deepEqual(replay.json, { received: true, duplicate: true });
    assert.equal(h.control.store.accounts.get(a.accountId)!.tier, 'anonymous');
    const count = h.control.store.db.prepare('SELECT COUNT(*) AS n FROM stripe_events WHERE id = ?').get(JSON.parse(ev.payload).id) as { n: number };
    assert.equal(count.n, 1);
  });

  it('customer.subscription.deleted returns the account to the anonymous tier and its limits', async () => {
    const a = await h.signup();
    await deliver(signedEvent('checkout.session.completed', { object: 'checkout.session', client_reference_id: a.accountId, customer: 'cus_del', subscription: 'sub_del', payment_status: 'paid' }));
    const auth = { token: a.token, fingerprint: a.fingerprint };
    const s1 = await h.request('POST', '/v1/sessions', { ...auth, body: { region: 'local' } });
    const s2 = await h.request('POST', '/v1/sessions', { ...auth, body: { region: 'local' } });
    assert.equal(s1.status, 201);
    assert.equal(s2.status, 201);
    // a deletion of some other subscription of the customer does nothing
    const other = await deliver(signedEvent('customer.subscription.deleted', { id: 'sub_old', object: 'subscription', customer: 'cus_del' }));
    assert.equal(other.status, 200);
    assert.equal(h.control.store.accounts.get(a.accountId)!.tier, 'paid');
    const r = await deliver(signedEvent('customer.subscription.deleted', { id: 'sub_del', object: 'subscription', customer: 'cus_del' }));
    assert.equal(r.status, 200);
    assert.equal(h.control.store.accounts.get(a.accountId)!.tier, 'anonymous');
    assert.equal(h.control.store.sessions.countActiveByAccount(a.accountId), 1, 'sessions beyond the anonymous limit are closed');
    assert.ok(!h.dataPlane.peers.has(s2.json.client.public_key), 'the newest one, and its peer is gone');
    assert.ok(h.dataPlane.peers.has(s1.json.client.public_key));
  });

  it('bad, missing or stale signatures are a 400 and change nothing', async () => {
    const a = await h.signup();
    const ev = signedEvent('checkout.session.completed', { object: 'checkout.session', client_reference_id: a.accountId, payment_status: 'paid' });
    const forged = JSON.stringify({ ...JSON.parse(ev.payload), id: 'evt_forged' });
    const r1 = await h.request('POST', '/v1/webhooks/stripe', { rawBody: forged, headers: { 'stripe-signature': ev.signature } });
    assert.equal(r1.status, 400);
    assert.match(r1.json.error, /bad Stripe signature/);
    const r2 = await h.request('POST', '/v1/webhooks/stripe', { rawBody: ev.payload });
    assert.equal(r2.status, 400);
    assert.match(r2.json.error, /missing Stripe-Signature/);
    const wrongSecret = Stripe.webhooks.generateTestHeaderString({ payload: ev.payload, secret: 'whsec_other' });
    assert.equal((await h.request('POST', '/v1/webhooks/stripe', { rawBody: ev.payload, headers: { 'stripe-signature': wrongSecret } })).status, 400);
    const stale = Stripe.webhooks.generateTestHeaderString({ payload: ev.payload, secret: WEBHOOK_SECRET, timestamp: Math.floor(Date.now() / 1000) - 3600 });
    assert.equal((await h.request('POST', '/v1/webhooks/stripe', { rawBody: ev.payload, headers: { 'stripe-signature': stale } })).status, 400);
    assert.equal(h.control.store.accounts.get(a.accountId)!.tier, 'anonymous');
    // the genuine one still applies afterwards
    assert.equal((await deliver(ev)).json.duplicate, false);
    assert.equal(h.control.store.accounts.get(a.accountId)!.tier, 'paid');
  });

  it('an unpaid completed checkout waits for async_payment_succeeded; unknown events are acknowledged', async () => {
    const a = await h.signup();
    await deliver(signedEvent('checkout.session.completed', { object: 'checkout.session', client_reference_id: a.accountId, customer: 'cus_async', payment_status: 'unpaid' }));
    assert.equal(h.control.store.accounts.get(a.accountId)!.tier, 'anonymous');
    await deliver(signedEvent('checkout.session.async_payment_succeeded', { object: 'checkout.session', client_reference_id: a.accountId, customer: 'cus_async', payment_status: 'paid' }));
    assert.equal(h.control.store.accounts.get(a.accountId)!.tier, 'paid');
    const unknown = await deliver(signedEvent('invoice.paid', { object: 'invoice' }));
    assert.equal(unknown.status, 200);
  });

  it('signed bodies that are not well-formed events are a 400 that changes nothing, never a 500', async () => {
    const a = await h.signup();
    const signed = (payload: string) => ({ payload, signature: Stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET }) });
    const event = (over: Record<string, unknown>) => JSON.stringify({ id: `evt_bad_${++eventSeq}`, object: 'event', type: 'checkout.session.completed', data: { object: { client_reference_id: a.accountId } }, ...over });
    const bodies = [
      '{}',
      '[]',
      '"checkout.session.completed"',
      'null',
      '42',
      event({ type: undefined }),
      event({ type: 7 }),
      event({ id: undefined }),
      event({ id: { nested: true } }),
      event({ data: null }),
      event({ data: { object: null } }),
      event({ data: { object: 'checkout.session' } }),
      event({ data: [] }),
      event({ data: { object: { client_reference_id: 12345 } } }),
      event({ data: { object: { client_reference_id: a.accountId, customer: 17 } } }),
      event({ type: 'customer.subscription.deleted', data: { object: { customer: 'cus_x' } } }),
      event({ type: 'customer.subscription.deleted', data: { object: { id: 5 } } }),
    ];
    for (const b of bodies) {
      const r = await deliver(signed(b));
      assert.equal(r.status, 400, `${b} → ${r.status} ${r.text}`);
      assert.match(r.json.error, /not a well-formed Stripe event/);
    }
    assert.equal(h.control.store.accounts.get(a.accountId)!.tier, 'anonymous');
    assert.equal((h.control.store.db.prepare(`SELECT COUNT(*) AS n FROM stripe_events WHERE id LIKE 'evt_bad_%'`).get() as { n: number }).n, 0);
  });

  it('webhook without STRIPE_WEBHOOK_SECRET is a 503', async () => {
    const plain = await startHarness({ node: false });
    try {
      const ev = signedEvent('checkout.session.completed', {});
      const r = await plain.request('POST', '/v1/webhooks/stripe', { rawBody: ev.payload, headers: { 'stripe-signature': ev.signature } });
      assert.equal(r.status, 503);
    } finally {
      await plain.close();
    }
  });
});
