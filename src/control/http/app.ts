/**
 * The /v1 HTTP API as a Koa app. `createApp()` builds it and never listens:
 * the exit server (or a test) passes `app.callback()` to its own
 * http.Server.
 *
 * Middleware, outside in: request metrics and log line (they see the final
 * status); the error mapper (errors → {"error"}); the router, whose handlers
 * are built from the route declarations: limit/authenticate, read and
 * validate the body and query, run the handler.
 */
import Router from '@koa/router';
import Koa, { type Context } from 'koa';
import type { Logger } from 'pino';
import type { ControlPlane } from '../control-plane.js';
import type { Principal } from '../services/auth.js';
import type { NodeRecord } from '../store/nodes.js';
import { FINGERPRINT_HEADER } from '../services/auth.js';
import { readJsonBody, readRawBody } from './body.js';
import { clientSource } from './client-ip.js';
import { errorMiddleware, routeOf } from './error-middleware.js';
import { silentLogger } from './logger.js';
import { createMetrics, type ApiMetrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { authFailureLimiter, publicLimiter, signupLimiter, tokenLimiter } from './rate-limits.js';
import { ControlError } from '../errors.js';
import type { Route } from './route.js';
import { accountRoutes } from './routes/accounts.js';
import { billingRoutes } from './routes/billing.js';
import { publicRoutes } from './routes/public.js';
import { nodePeerRoutes } from './routes/node-peers.js';
import { nodeRoutes } from './routes/nodes.js';
import { sessionRoutes } from './routes/sessions.js';
import { tokenRoutes } from './routes/tokens.js';

export interface AppDeps {
  control: ControlPlane;
  /** Request log and unexpected errors (default: silent). Use createLogger() for secret redaction. */
  logger?: Logger;
  /** Where request figures go (default: a new registry over `control`); served by metricsRequestListener on its own listener. */
  metrics?: ApiMetrics;
  /** Sent on every answer when the API is served over HTTPS: browsers and clients that honour it stay on HTTPS. */
  hsts?: boolean;
}

/** One year, subdomains untouched (the exit's name may share a domain with plain-HTTP hosts). */
export const HSTS_VALUE = 'max-age=31536000';

/** Every /v1 route, in documentation order. */
export function apiRoutes(): Route[] {
  return [...publicRoutes(), ...accountRoutes(), ...tokenRoutes(), ...sessionRoutes(), ...billingRoutes(), ...nodeRoutes(), ...nodePeerRoutes()];
}

export function createApp(deps: AppDeps): Koa {
  const { control } = deps;
  const log = deps.logger ?? silentLogger();
  const metrics = deps.metrics ?? createMetrics(control);
  const app = new Koa({ proxy: control.config.trustProxy, maxIpsCount: 1 });
  app.silent = true; // errors are logged by errorMiddleware, not printed by Koa
  const routes = apiRoutes();
  const publicLimit = publicLimiter(control.config.publicRateLimit);
  const tokenLimit = tokenLimiter(control.config.tiers);
  const failureLimit = authFailureLimiter(control.config.authFailureLimit);
  const signupLimit = signupLimiter(control.config.signupLimit);
  const maxBody = control.config.maxBodyBytes;

  app.use(async (ctx, next) => {
    const start = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const route = routeOf(ctx);
      metrics.observe(ctx.method, route, ctx.status, seconds);
      log.info({ method: ctx.method, route, status: ctx.status, ms: Math.round(seconds * 1000) }, 'request');
    }
  });
  if (deps.hsts) {
    app.use(async (ctx, next) => {
      ctx.set('Strict-Transport-Security', HSTS_VALUE);
      await next();
    });
  }
  app.use(errorMiddleware(log));

  const router = new Router();
  for (const r of routes) {
    const handler = async (ctx: Context): Promise<void> => {
      let principal: Principal | null = null;
      let node: NodeRecord | null = null;
      const source = r.auth === 'public' || r.auth === 'bearer' || r.auth === 'node' ? clientSource(ctx) : null;
      const credentials = r.auth === 'bearer' || r.auth === 'node' || r.credentials === true;
      // Order matters: a source over its failed-authentication budget is refused before any hashing or SQL.
      if (credentials) await failureLimit.check(source!);
      if (r.auth === 'public') await publicLimit.consume(source!);
      if (r.signupLimited) await signupLimit.consume(source!);
      try {
        if (r.auth === 'bearer') {
          principal = control.auth.authenticate(ctx.get('authorization') || undefined, ctx.get(FINGERPRINT_HEADER) || undefined);
          await tokenLimit.consume(principal.account.tier, principal.token.id);
        }
        if (r.auth === 'node') node = control.nodeAuth.authenticate(ctx.get('authorization') || undefined);
        let body: unknown = undefined;
        let rawBody: Buffer | null = null;
        if (r.rawBody) rawBody = await readRawBody(ctx, maxBody);
        else if (r.body) body = r.body.parse(await readJsonBody(ctx, maxBody));
        const query = r.query ? r.query.parse(ctx.query) : {};
        const params = (ctx as Context & { params: Record<string, string> }).params;
        const result = await r.handle({ ctx, control, body, query, params, principal, node, rawBody, source: clientSource(ctx) });
        ctx.status = result.status;
        if (result.headers) ctx.set(result.headers);
        ctx.body = result.body;
      } catch (e) {
        if (credentials && e instanceof ControlError && e.kind === 'unauthorized') await failureLimit.failed(source!);
        throw e;
      }
    };
    if (r.method === 'GET') router.get(r.path, handler);
    else if (r.method === 'POST') router.post(r.path, handler);
    else router.delete(r.path, handler);
  }
  const doc = openApiDocument(routes);
  router.get('/v1/openapi.json', (ctx) => {
    ctx.body = doc;
  });
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
