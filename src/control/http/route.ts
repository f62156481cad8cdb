/**
 * A route declares everything about itself in one place: method, path,
 * how it authenticates, its request schemas and its responses. The app
 * registers handlers from these declarations and the OpenAPI document is
 * generated from the same list, so the two cannot drift apart.
 */
import type { Context } from 'koa';
import type { z } from 'zod';
import type { ControlPlane } from '../control-plane.js';
import type { Principal } from '../services/auth.js';
import type { NodeRecord } from '../store/nodes.js';

/**
 * none: no checks (health, docs, metrics); public: rate limited per source
 * IP; bearer: a token (and, for anonymous accounts, the fingerprint), rate
 * limited per token; stripe: the Stripe-Signature of the raw body; node: a
 * node credential (tbn_…), under the failed-authentication limit.
 */
export type RouteAuth = 'none' | 'public' | 'bearer' | 'stripe' | 'node';

export interface RouteRequest<B, Q> {
  ctx: Context;
  control: ControlPlane;
  body: B;
  query: Q;
  params: Record<string, string>;
  /** Set for bearer routes. */
  principal: Principal | null;
  /** Set for node routes: the node whose credential was presented. */
  node: NodeRecord | null;
  /** Set for routes with `rawBody`. */
  rawBody: Buffer | null;
  /** The client address (an IPv6 one as its /64), for the audit log. */
  source: string;
}

export interface RouteResult {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface RouteResponseDoc {
  description: string;
  schema?: z.ZodType;
  /** The media type of the body when it is not JSON (text/event-stream); `schema` then describes each event's data. */
  contentType?: string;
}

export interface Route<B = unknown, Q = unknown> {
  method: 'GET' | 'POST' | 'DELETE';
  /** Koa-router path (`/v1/sessions/:id`). */
  path: string;
  auth: RouteAuth;
  summary: string;
  tag: string;
  body?: z.ZodType<B>;
  /** A public route that checks credentials (login): under the failed-authentication limit like bearer routes. */
  credentials?: boolean;
  /** Counted by the anonymous-signup limit of its source. */
  signupLimited?: boolean;
  /** Hand the handler the raw bytes instead of parsed JSON. */
  rawBody?: boolean;
  query?: z.ZodType<Q>;
  /** Path parameters and what they are (for the docs). */
  params?: Record<string, string>;
  responses: Record<number, RouteResponseDoc>;
  handle(req: RouteRequest<B, Q>): Promise<RouteResult> | RouteResult;
}

/** Types the handler from the schemas, then erases them for the route list. */
export function defineRoute<B = undefined, Q = Record<string, never>>(r: Route<B, Q>): Route {
  return r as unknown as Route;
}

/** The caller of a node route. */
export function nodeOf(req: { node: NodeRecord | null }): NodeRecord {
  if (!req.node) throw new Error('node route without a node');
  return req.node;
}

/** The caller of a bearer route. */
export function principalOf(req: { principal: Principal | null }): Principal {
  if (!req.principal) throw new Error('bearer route without a principal');
  return req.principal;
}

/** Error responses every route of an auth kind can give (documented once here). */
export const COMMON_ERRORS: Record<RouteAuth, Record<number, string>> = {
  none: {},
  public: { 429: 'Rate limited (per source IP, per /64 for IPv6); see Retry-After.' },
  bearer: {
    401: 'Missing or invalid bearer token, or an anonymous token from another machine.',
    429: 'Request cap of the tier reached, or too many failed authentications from this address; see Retry-After.',
  },
  stripe: { 400: 'Missing or bad Stripe-Signature.', 503: 'Billing is not configured.' },
  node: {
    401: 'Missing or invalid node credential, or the node was revoked or removed.',
    403: "The path names another node than the credential's.",
    429: 'Too many failed authentications from this address; see Retry-After.',
  },
};
