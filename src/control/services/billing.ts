/**
 * Billing through Stripe (the official `stripe` package). Upgrading creates
 * a Checkout Session for a subscription whose `client_reference_id` is the
 * account id; the tier changes only when Stripe's signed webhook says so:
 *
 *   checkout.session.completed (paid or no payment required),
 *   checkout.session.async_payment_succeeded  → paid, customer recorded
 *   customer.subscription.deleted             → back to anonymous
 *
 * Each event is applied once: its id is recorded in the same transaction
 * that applies it, and a replay is acknowledged without effect.
 */
import type Stripe from 'stripe';
import { z } from 'zod';
import { invalid, unavailable } from '../errors.js';
import type { Account } from '../store/accounts.js';
import type { AccountService } from './accounts.js';
import type { ServiceContext } from './context.js';
import { recordAudit, STRIPE, type Actor } from './audit.js';

export interface WebhookOutcome {
  eventId: string;
  type: string;
  /** False for a replay of an event already applied. */
  firstDelivery: boolean;
  /** What the event did: 'paid', 'anonymous', or 'ignored'. */
  effect: 'paid' | 'anonymous' | 'ignored';
  accountId: string | null;
}

const idOf = (x: string | { id: string } | null | undefined): string | null => (typeof x === 'string' ? x : (x?.id ?? null));

/** The `stripe` package, imported the first time billing needs it (a server without billing never loads it). */
let stripeModule: Promise<typeof Stripe> | null = null;
const loadStripe = (): Promise<typeof Stripe> => (stripeModule ??= import('stripe').then((m) => m.default));

/**
 * What this service reads of an event, checked before anything is written: a
 * correctly signed body is still only bytes (issue 15: a signed `{}` was a
 * SqliteError NOT NULL and `data.object: null` a TypeError, both 500s).
 * Unknown fields pass; an event type we do not handle needs only id, type and
 * an object in data.object.
 */
const StripeRef = z.union([z.string(), z.looseObject({ id: z.string() })]).nullish();
const EventEnvelope = z.looseObject({
  id: z.string().min(1).max(255),
  type: z.string().min(1).max(255),
  data: z.looseObject({ object: z.looseObject({}) }),
});
const CheckoutObject = z.looseObject({
  client_reference_id: z.string().nullish(),
  customer: StripeRef,
  subscription: StripeRef,
  payment_status: z.string().nullish(),
});
const SubscriptionObject = z.looseObject({ id: z.string().min(1), customer: StripeRef });

export class BillingService {
  private client: Promise<Stripe> | null = null;

  constructor(
    private readonly ctx: ServiceContext,
    private readonly accounts: AccountService,
  ) {}

  /** Can upgrades create Checkout Sessions (STRIPE_SECRET_KEY set)? */
  get checkoutEnabled(): boolean {
    return Boolean(this.ctx.config.billing.secretKey);
  }

  /** The Stripe client, made on first use; null without STRIPE_SECRET_KEY. */
  private stripe(): Promise<Stripe> | null {
    const b = this.ctx.config.billing;
    if (!b.secretKey) return null;
    const key = b.secretKey;
    this.client ??= loadStripe().then(
      (StripeClient) =>
        new StripeClient(key, {
          maxNetworkRetries: 1,
          timeout: 15_000,
          telemetry: false,
          ...(b.apiHost ?? {}),
        }),
    );
    return this.client;
  }

  /**
   * A Checkout Session for the paid tier; returns its URL. `origin` is this
   * API's public origin (for the default success/cancel pages).
   */
  async createCheckout(account: Account, email: string, origin: string): Promise<{ id: string; url: string }> {
    const client = this.stripe();
    if (!client) {
      throw unavailable('billing is not configured on this server (STRIPE_SECRET_KEY unset); ask the operator to grant the paid tier');
    }
    const stripe = await client;
    const b = this.ctx.config.billing;
    const lineItem: Stripe.Checkout.SessionCreateParams.LineItem = b.priceId
      ? { price: b.priceId, quantity: 1 }
      : {
          quantity: 1,
          price_data: {
            currency: b.inlinePrice.currency,
            unit_amount: b.inlinePrice.unitAmount,
            recurring: { interval: 'month' },
            product_data: { name: b.inlinePrice.productName },
          },
        };
    let session: Stripe.Checkout.Session;
    try {
      session = await stripe.checkout.sessions.create({
        mode: 'subscription',
        line_items: [lineItem],
        client_reference_id: account.id,
        ...(account.stripeCustomerId ? { customer: account.stripeCustomerId } : { customer_email: email }),
        metadata: { account_id: account.id },
        subscription_data: { metadata: { account_id: account.id } },
        success_url: b.successUrl ?? `${origin}/v1/billing/success?session_id={CHECKOUT_SESSION_ID}`,
        cancel_url: b.cancelUrl ?? `${origin}/v1/billing/cancel`,
      });
    } catch (e) {
      throw unavailable(`payment provider unavailable (${(e as Error).message}); try again later`);
    }
    if (!session.url) throw unavailable('payment provider returned no checkout URL; try again later');
    return { id: session.id, url: session.url };
  }

  /** Verifies and applies one webhook delivery. 400 for a bad or missing signature; 503 when no webhook secret is set. */
  async handleWebhook(rawBody: Buffer, signature: string | undefined, source: string | null = null): Promise<WebhookOutcome> {
    const secret = this.ctx.config.billing.webhookSecret;
    if (!secret) throw unavailable('billing is not configured on this server (STRIPE_WEBHOOK_SECRET unset)');
    if (!signature) throw invalid('missing Stripe-Signature header');
    const StripeClient = await loadStripe();
    let event: Stripe.Event;
    try {
      event = StripeClient.webhooks.constructEvent(rawBody, signature, secret);
    } catch {
      throw invalid('bad Stripe signature');
    }
    const shape = EventEnvelope.safeParse(event);
    const objectSchema = event?.type === 'customer.subscription.deleted' ? SubscriptionObject : event?.type?.startsWith?.('checkout.session.') ? CheckoutObject : null;
    if (!shape.success || (objectSchema && !objectSchema.safeParse(event.data.object).success)) {
      throw invalid('not a well-formed Stripe event (needs id, type and data.object of the fields this event type carries)');
    }
    const { store, clock } = this.ctx;
    return store.transaction((): WebhookOutcome => {
      const base = { eventId: event.id, type: event.type };
      if (!store.stripeEvents.recordIfNew(event.id, event.type, clock.wallMs())) {
        return { ...base, firstDelivery: false, effect: 'ignored', accountId: null };
      }
      const applied = this.apply(event, STRIPE(source));
      recordAudit(this.ctx, STRIPE(source), 'billing.event', { accountId: applied.accountId, subject: event.id, detail: { type: event.type, effect: applied.effect } });
      return { ...base, firstDelivery: true, ...applied };
    });
  }

  private apply(event: Stripe.Event, by: Actor): Pick<WebhookOutcome, 'effect' | 'accountId'> {
    const { store, clock } = this.ctx;
    const ignored = { effect: 'ignored' as const, accountId: null };
    switch (event.type) {
      case 'checkout.session.completed':
      case 'checkout.session.async_payment_succeeded': {
        const cs = event.data.object;
        const account = cs.client_reference_id ? store.accounts.get(cs.client_reference_id) : null;
        if (!account) return ignored;
        store.accounts.setStripeIds(account.id, idOf(cs.customer), idOf(cs.subscription), clock.wallMs());
        if (event.type === 'checkout.session.completed' && cs.payment_status === 'unpaid') {
          return { effect: 'ignored', accountId: account.id }; // waits for async_payment_succeeded
        }
        this.accounts.setTier(account.id, 'paid', by);
        return { effect: 'paid', accountId: account.id };
      }
      case 'customer.subscription.deleted': {
        const sub = event.data.object;
        const customer = idOf(sub.customer);
        const account =
          store.accounts.getByStripeSubscription(sub.id) ?? (customer ? store.accounts.getByStripeCustomer(customer) : null);
        if (!account) return ignored;
        // A newer subscription of the same customer keeps the account paid.
        if (account.stripeSubscriptionId && account.stripeSubscriptionId !== sub.id) return { effect: 'ignored', accountId: account.id };
        this.accounts.setTier(account.id, 'anonymous', by);
        return { effect: 'anonymous', accountId: account.id };
      }
      default:
        return ignored;
    }
  }
}
