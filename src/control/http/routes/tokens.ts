/** The presenting token: revoke it (logout) or rotate it (a new one, the old one revoked). */
import { accountActor } from '../../services/audit.js';
import { defineRoute, principalOf, type Route } from '../route.js';
import { RevokedTokenResponse, RotatedTokenResponse } from '../schemas.js';

export function tokenRoutes(): Route[] {
  return [
    defineRoute({
      method: 'DELETE',
      path: '/v1/token',
      auth: 'bearer',
      tag: 'accounts',
      summary: 'Revoke the token this request carries (logout). Other tokens of the account and its sessions are not touched.',
      responses: { 200: { description: 'Revoked; the token is refused from now on.', schema: RevokedTokenResponse } },
      handle: (req) => {
        const p = principalOf(req);
        req.control.auth.revokePresented(p, accountActor(p.account.id, req.source));
        return { status: 200, body: { revoked: true, token_id: p.token.id } };
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/v1/token/rotate',
      auth: 'bearer',
      tag: 'accounts',
      summary: 'A new token in place of the one this request carries (same account and machine binding); the old one is revoked at once.',
      responses: { 200: { description: 'The new token (shown once).', schema: RotatedTokenResponse } },
      handle: (req) => {
        const p = principalOf(req);
        const fresh = req.control.auth.rotate(p, accountActor(p.account.id, req.source));
        return { status: 200, body: { token: fresh.token, token_id: fresh.id, revoked_token_id: p.token.id, account_id: p.account.id, tier: p.account.tier } };
      },
    }),
  ];
}
