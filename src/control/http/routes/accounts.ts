/** Accounts: signup, login, upgrade, usage. */
import { accountActor } from '../../services/audit.js';
import { FINGERPRINT_HEADER } from '../../services/auth.js';
import { defineRoute, principalOf, type Route } from '../route.js';
import {
  ErrorResponse,
  LoginRequest,
  LoginResponse,
  SignupRequest,
  SignupResponse,
  UpgradeRequest,
  UpgradeResponse,
  UsageResponse,
} from '../schemas.js';
import { usageView } from '../views.js';

export function accountRoutes(): Route[] {
  return [
    defineRoute({
      method: 'POST',
      path: '/v1/signup',
      auth: 'public',
      tag: 'accounts',
      signupLimited: true,
      summary: 'Anonymous account bound to this machine. Signing up again from the same machine returns its account (200) with a new token.',
      body: SignupRequest,
      responses: {
        201: { description: 'Account created.', schema: SignupResponse },
        200: { description: 'This machine already had an anonymous account; a new token for it.', schema: SignupResponse },
        400: { description: 'Invalid body.', schema: ErrorResponse },
        403: { description: 'Anonymous signup is closed on this server, or this machine\'s account is disabled.', schema: ErrorResponse },
        429: { description: 'Rate limited, or too many signups from this address; see Retry-After.', schema: ErrorResponse },
      },
      handle: ({ control, body, source }) => {
        const r = control.accounts.signup(body.fingerprint, { actor: 'anonymous', source });
        return { status: r.created ? 201 : 200, body: { token: r.token, account_id: r.account.id, tier: r.account.tier } };
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/v1/login',
      auth: 'public',
      credentials: true,
      tag: 'accounts',
      summary: 'A token for a paid account, usable from any machine.',
      body: LoginRequest,
      responses: {
        200: { description: 'Logged in.', schema: LoginResponse },
        400: { description: 'Invalid body.', schema: ErrorResponse },
        401: { description: 'Wrong email or password.', schema: ErrorResponse },
        403: { description: 'The account is not paid.', schema: ErrorResponse },
      },
      handle: async ({ control, body, ctx, source }) => {
        const r = await control.accounts.login(body.email, body.password, ctx.get(FINGERPRINT_HEADER) || null, { actor: 'anonymous', source });
        return { status: 200, body: { token: r.token, account_id: r.account.id, tier: r.account.tier, email: r.account.email! } };
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/v1/upgrade',
      auth: 'bearer',
      tag: 'accounts',
      summary:
        "Turn the caller's account into a paid one: sets email and password and returns a Stripe Checkout URL; the tier changes when Stripe confirms payment.",
      body: UpgradeRequest,
      responses: {
        200: { description: 'Credentials set; pay at checkout_url.', schema: UpgradeResponse },
        400: { description: 'Invalid body.', schema: ErrorResponse },
        409: { description: 'The email belongs to another account.', schema: ErrorResponse },
        503: { description: 'Billing is not configured on this server, or Stripe is unreachable.', schema: ErrorResponse },
      },
      handle: async (req) => {
        const { control, body, ctx } = req;
        const { account } = principalOf(req);
        control.accounts.checkEmailAvailable(account, body.email);
        const checkout = account.tier === 'paid' ? null : await control.billing.createCheckout(account, body.email, `${ctx.protocol}://${ctx.host}`);
        const r = await control.accounts.saveCredentials(account, body.email, body.password, ctx.get(FINGERPRINT_HEADER) || null, accountActor(account.id, req.source));
        return {
          status: 200,
          body: { token: r.token, account_id: r.account.id, tier: r.account.tier, email: r.account.email!, checkout_url: checkout?.url ?? null },
        };
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/usage',
      auth: 'bearer',
      tag: 'accounts',
      summary: 'Tier, current period (calendar month, UTC), bytes used and quota, active sessions and their limit, request cap.',
      responses: { 200: { description: 'Usage.', schema: UsageResponse } },
      handle: (req) => ({ status: 200, body: usageView(req.control.usage.report(principalOf(req).account)) }),
    }),
  ];
}
