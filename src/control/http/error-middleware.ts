/**
 * The one error path of the API. Every failure becomes `{"error": "..."}`:
 * ControlError kinds map to their statuses (429 and 503 with Retry-After
 * when known), zod validation errors to 400, Koa/router HTTP errors keep
 * their status, an unmatched route is a JSON 404 (a wrong method a
 * JSON 405 with Allow). Anything else is a bug:
 * logged, and answered 500 with no detail.
 */
import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import { z } from 'zod';
import { ControlError, type ControlErrorKind } from '../errors.js';

export const STATUS_OF: Record<ControlErrorKind, number> = {
  invalid: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  rate_limited: 429,
  quota_exhausted: 429,
  unavailable: 503,
};

/** "field.sub: message" of the first issue, in words a client can act on. */
export function describeZodError(e: z.ZodError): string {
  const issue = e.issues[0];
  if (!issue) return 'invalid input';
  if (issue.code === 'unrecognized_keys') {
    const where = issue.path.length ? ` in ${issue.path.join('.')}` : '';
    return `unknown field${issue.keys.length > 1 ? 's' : ''}${where}: ${issue.keys.join(', ')}`;
  }
  const path = issue.path.join('.');
  let msg = issue.message.replace(/^Invalid input: /, '');
  if (/received undefined$/.test(msg)) msg = 'required';
  return path ? `${path}: ${msg}` : msg;
}

export function errorMiddleware(log: Logger) {
  return async function errors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
      if (ctx.body == null && (ctx.status === 404 || ctx.status === 405 || ctx.status === 501)) {
        const status = ctx.status;
        ctx.body = { error: status === 404 ? 'not found' : status === 405 ? 'method not allowed' : 'method not implemented' };
        ctx.status = status;
      }
    } catch (e) {
      if (e instanceof ControlError) {
        ctx.status = STATUS_OF[e.kind];
        if (e.retryAfterSeconds !== undefined) ctx.set('Retry-After', String(e.retryAfterSeconds));
        ctx.body = { error: e.message };
      } else if (e instanceof z.ZodError) {
        ctx.status = 400;
        ctx.body = { error: describeZodError(e) };
      } else if (isExposedHttpError(e)) {
        ctx.status = e.status;
        if (e.headers) ctx.set(e.headers);
        ctx.body = { error: e.message.toLowerCase() };
      } else {
        log.error({ err: e, route: routeOf(ctx) }, 'unhandled error');
        ctx.status = 500;
        ctx.body = { error: 'internal error' };
      }
    }
  };
}

function isExposedHttpError(e: unknown): e is { status: number; message: string; headers?: Record<string, string> } {
  const x = e as { status?: unknown; expose?: unknown } | null;
  return typeof x?.status === 'number' && x.expose === true;
}

/** The matched route template (/v1/sessions/:id), never the raw path with ids. */
export function routeOf(ctx: Context): string {
  const r = (ctx as Context & { _matchedRoute?: string | RegExp })._matchedRoute;
  return typeof r === 'string' ? r : 'unmatched';
}
