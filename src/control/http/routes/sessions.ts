/** Sessions: create, list, status, close. */
import { accountActor } from '../../services/audit.js';
import { defineRoute, principalOf, type Route } from '../route.js';
import { CreateSessionRequest, CreatedSessionView, ErrorResponse, SessionListQuery, SessionView, SessionsResponse } from '../schemas.js';
import { createdSessionView, sessionView } from '../views.js';

export function sessionRoutes(): Route[] {
  return [
    defineRoute({
      method: 'POST',
      path: '/v1/sessions',
      auth: 'bearer',
      tag: 'sessions',
      summary: 'Create a session: the peer is installed at once; the response carries a complete wg-quick config.',
      body: CreateSessionRequest,
      responses: {
        201: { description: 'Session created.', schema: CreatedSessionView },
        400: { description: 'Unknown region, bad key, invalid body.', schema: ErrorResponse },
        403: { description: 'Above the tier: paid-only region or session limit reached.', schema: ErrorResponse },
        409: { description: 'The public key is used by another active session.', schema: ErrorResponse },
        429: { description: 'Data quota of the period used up (Retry-After: until the period ends), or request cap.', schema: ErrorResponse },
        503: { description: 'No active node in the region. Try another.', schema: ErrorResponse },
      },
      handle: (req) => {
        const { account } = principalOf(req);
        const created = req.control.sessions.create(account, { regionId: req.body.region, publicKey: req.body.public_key }, accountActor(account.id, req.source));
        return { status: 201, body: createdSessionView(created), headers: { Location: `/v1/sessions/${created.session.id}` } };
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/sessions',
      auth: 'bearer',
      tag: 'sessions',
      summary: "The caller's sessions, newest first.",
      query: SessionListQuery,
      responses: { 200: { description: 'Sessions.', schema: SessionsResponse } },
      handle: (req) => ({
        status: 200,
        body: {
          sessions: req.control.sessions.list(principalOf(req).account, { activeOnly: req.query.state !== 'all' }).map(sessionView),
        },
      }),
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/sessions/:id',
      auth: 'bearer',
      tag: 'sessions',
      summary: 'Status of a session: state, region, node, times, last handshake, bytes.',
      params: { id: 'Session id (ses_...).' },
      responses: {
        200: { description: 'The session.', schema: SessionView },
        404: { description: "No such session of the caller's.", schema: ErrorResponse },
      },
      handle: (req) => ({ status: 200, body: sessionView(req.control.sessions.get(principalOf(req).account, req.params.id ?? '')) }),
    }),
    defineRoute({
      method: 'DELETE',
      path: '/v1/sessions/:id',
      auth: 'bearer',
      tag: 'sessions',
      summary: 'Close a session: its peer is removed at once.',
      params: { id: 'Session id (ses_...).' },
      responses: {
        200: { description: 'The closed session.', schema: SessionView },
        404: { description: "No such session of the caller's.", schema: ErrorResponse },
      },
      handle: (req) => {
        const { account } = principalOf(req);
        return { status: 200, body: sessionView(req.control.sessions.close(account, req.params.id ?? '', accountActor(account.id, req.source))) };
      },
    }),
  ];
}
