/**
 * The node side of the API: enrollment (a one-time token for a node
 * credential), what a node may read with that credential — only its own
 * record — and what it reports: heartbeats and usage. See
 * services/node-enrollment.ts, node-auth.ts and node-reports.ts.
 */
import { defineRoute, nodeOf, type Route } from '../route.js';
import { EnrollNodeRequest, EnrollNodeResponse, ErrorResponse, NodeHeartbeatRequest, NodeUsageRequest, NodeUsageResponse, NodeView } from '../schemas.js';
import { nodeView } from '../views.js';

export function nodeRoutes(): Route[] {
  return [
    defineRoute<typeof EnrollNodeRequest._output>({
      method: 'POST',
      path: '/v1/nodes/enroll',
      auth: 'public',
      credentials: true,
      tag: 'nodes',
      summary: "An exit node joins: registers in the enrollment token's region and gets its node credential (the token is spent).",
      body: EnrollNodeRequest,
      responses: {
        201: { description: 'Enrolled: the node and its credential (shown once).', schema: EnrollNodeResponse },
        400: { description: 'Malformed key, endpoint, address or pool.', schema: ErrorResponse },
        401: { description: 'The enrollment token is invalid, used or expired.', schema: ErrorResponse },
        403: { description: 'This public key belongs to a revoked or removed node.', schema: ErrorResponse },
      },
      handle: ({ control, body, source }) => {
        const e = control.nodeEnrollment.enroll(body.token, {
          publicKey: body.public_key,
          endpoint: body.endpoint,
          exitAddresses: body.exit_addresses,
          pool4: body.pool4,
          pool6: body.pool6 ?? null,
        }, source);
        return { status: 201, body: { node: nodeView(e.node), credential: e.credential } };
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/nodes/:id',
      auth: 'node',
      tag: 'nodes',
      summary: 'The calling node itself (its region, state, pools and tunnel addresses).',
      params: { id: 'The node id of the credential.' },
      responses: { 200: { description: 'The node.', schema: NodeView } },
      handle: (req) => {
        const node = nodeOf(req);
        req.control.nodeAuth.assertSelf(node, req.params.id ?? '');
        return { status: 200, body: nodeView(node) };
      },
    }),
    defineRoute<typeof NodeHeartbeatRequest._output>({
      method: 'POST',
      path: '/v1/nodes/:id/heartbeat',
      auth: 'node',
      tag: 'nodes',
      summary: 'The node is alive, with its current exit addresses; the answer carries its state (draining, …).',
      params: { id: 'The node id of the credential.' },
      body: NodeHeartbeatRequest,
      responses: { 200: { description: 'Recorded.', schema: NodeView }, 400: { description: 'A malformed address.', schema: ErrorResponse } },
      handle: (req) => {
        const node = nodeOf(req);
        req.control.nodeAuth.assertSelf(node, req.params.id ?? '');
        return { status: 200, body: nodeView(req.control.nodeReports.heartbeat(node, req.body.exit_addresses)) };
      },
    }),
    defineRoute<typeof NodeUsageRequest._output>({
      method: 'POST',
      path: '/v1/nodes/:id/usage',
      auth: 'node',
      tag: 'nodes',
      summary: 'Usage as cumulative per-session counters with a sequence number: a retried report never counts twice.',
      params: { id: 'The node id of the credential.' },
      body: NodeUsageRequest,
      responses: {
        200: { description: 'Applied, or acknowledged as a retry.', schema: NodeUsageResponse },
        400: { description: 'A malformed report.', schema: ErrorResponse },
      },
      handle: (req) => {
        const node = nodeOf(req);
        req.control.nodeAuth.assertSelf(node, req.params.id ?? '');
        const r = req.control.nodeReports.usage(
          node,
          req.body.seq,
          req.body.sessions.map((s) => ({
            sessionId: s.id,
            rxBytes: s.rx_bytes,
            txBytes: s.tx_bytes,
            lastHandshakeAt: s.last_handshake_at === null ? null : Date.parse(s.last_handshake_at),
          })),
        );
        return { status: 200, body: { acked_seq: r.ackedSeq, applied: r.applied } };
      },
    }),
  ];
}
