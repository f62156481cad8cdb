/**
 * The node side of the API: enrollment (a one-time token for a node
 * credential) and what a node may read with that credential — only its own
 * record. See services/node-enrollment.ts and services/node-auth.ts.
 */
import { defineRoute, nodeOf, type Route } from '../route.js';
import { EnrollNodeRequest, EnrollNodeResponse, ErrorResponse, NodeView } from '../schemas.js';
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
  ];
}
