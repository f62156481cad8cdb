/** Billing: the Stripe webhook and the pages Checkout returns to. */
import { defineRoute, type Route } from '../route.js';
import { BillingPageResponse, ErrorResponse, WebhookResponse } from '../schemas.js';

export function billingRoutes(): Route[] {
  return [
    defineRoute({
      method: 'POST',
      path: '/v1/webhooks/stripe',
      auth: 'stripe',
      tag: 'billing',
      summary:
        'Stripe events (signature-verified, each applied once): checkout.session.completed → paid; customer.subscription.deleted → anonymous.',
      rawBody: true,
      responses: {
        200: { description: 'Received (duplicate: a replay of an event already applied).', schema: WebhookResponse },
        400: { description: 'Missing or bad signature, or a signed body that is not a well-formed event.', schema: ErrorResponse },
        503: { description: 'STRIPE_WEBHOOK_SECRET is not set.', schema: ErrorResponse },
      },
      handle: async ({ control, rawBody, ctx, source }) => {
        const r = await control.billing.handleWebhook(rawBody!, ctx.get('stripe-signature') || undefined, source);
        return { status: 200, body: { received: true, duplicate: !r.firstDelivery } };
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/billing/success',
      auth: 'public',
      tag: 'billing',
      summary: 'Where Stripe Checkout returns after payment (unless TB_CHECKOUT_SUCCESS_URL is set).',
      responses: { 200: { description: 'A short message.', schema: BillingPageResponse } },
      handle: () => ({
        status: 200,
        body: { ok: true, message: 'Payment received. Your account becomes paid as soon as Stripe confirms it; check with `tunnelbyte usage`.' },
      }),
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/billing/cancel',
      auth: 'public',
      tag: 'billing',
      summary: 'Where Stripe Checkout returns when the customer cancels (unless TB_CHECKOUT_CANCEL_URL is set).',
      responses: { 200: { description: 'A short message.', schema: BillingPageResponse } },
      handle: () => ({ status: 200, body: { ok: false, message: 'Checkout cancelled; nothing was charged. Run `tunnelbyte upgrade` again to retry.' } }),
    }),
  ];
}
