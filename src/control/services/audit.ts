/**
 * Who does what, for the audit log (store/audit.ts). Every service method
 * that changes an account, a tier, a token or a session takes the actor that
 * asked: the account itself through the API (with the client's address), the
 * operator through `tunnelbyte admin`, Stripe through its webhook, or the
 * server itself (expiry). The entry is written in the same transaction as
 * the change when the caller runs one.
 */
import { hostname, userInfo } from 'node:os';
import type { ServiceContext } from './context.js';

export interface Actor {
  /** account:acc_…, admin:<os user>, stripe, system */
  actor: string;
  /** The client address (an IPv6 one as its /64) of an API call; the host of an admin command; null for the server. */
  source: string | null;
}

export const SYSTEM: Actor = { actor: 'system', source: null };
export const STRIPE = (source: string | null): Actor => ({ actor: 'stripe', source });
export const accountActor = (accountId: string, source: string | null): Actor => ({ actor: `account:${accountId}`, source });

/** The operator running `tunnelbyte admin` on this machine. */
export function adminActor(): Actor {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    /* no passwd entry (containers) */
  }
  return { actor: `admin:${user}`, source: hostname() };
}

/** Appends one audit entry (inside the caller's transaction, if any). */
export function recordAudit(
  ctx: ServiceContext,
  by: Actor,
  action: string,
  what: { accountId?: string | null; subject?: string | null; detail?: Record<string, unknown> | null } = {},
): void {
  ctx.store.audit.append({
    at: ctx.clock.wallMs(),
    actor: by.actor,
    source: by.source,
    action,
    accountId: what.accountId ?? null,
    subject: what.subject ?? null,
    detail: what.detail ?? null,
  });
}
