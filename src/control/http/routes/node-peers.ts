/**
 * The control → node channel (issue 16): a joined node reads its peer set
 * as a snapshot with a revision, then follows the changes as Server-Sent
 * Events, resuming after a reconnect from the last revision it applied.
 * See services/peer-channel.ts (what is published, and when) and
 * http/peer-stream.ts (the event stream).
 */
import { invalid } from '../../errors.js';
import { openPeerStream } from '../peer-stream.js';
import { defineRoute, nodeOf, type Route } from '../route.js';
import { CHANGE_ID, ErrorResponse, NodePeersResponse, PeerChangeEvent, PeerStreamQuery } from '../schemas.js';

export function nodePeerRoutes(): Route[] {
  return [
    defineRoute({
      method: 'GET',
      path: '/v1/nodes/:id/peers',
      auth: 'node',
      tag: 'nodes',
      summary: "The calling node's peer set — active, unexpired sessions placed on it whose account has quota left — at its revision.",
      params: { id: 'The node id of the credential.' },
      responses: { 200: { description: 'The peer set.', schema: NodePeersResponse } },
      handle: (req) => {
        const node = nodeOf(req);
        req.control.nodeAuth.assertSelf(node, req.params.id ?? '');
        return { status: 200, body: req.control.peerChannel.snapshot(node.id) };
      },
    }),
    defineRoute<undefined, typeof PeerStreamQuery._output>({
      method: 'GET',
      path: '/v1/nodes/:id/peers/stream',
      auth: 'node',
      tag: 'nodes',
      summary:
        'Server-Sent Events of the peer set: `snapshot` (data as GET …/peers) when there is no usable resume point, then one `peer` event per change (`{"op":"add","peer":…,"changeId":…}` or `{"op":"remove","publicKey":…,"changeId":…}`), each with `id: <revision>`; `: keepalive` comments in between. Resume with Last-Event-ID (or ?since=) and X-TB-Change-Id: the changeId of that revision — a revision whose change in this database has another id (a database restored from a backup, or another one) gets a snapshot.',
      params: { id: 'The node id of the credential.' },
      query: PeerStreamQuery,
      responses: {
        200: { description: 'The event stream; each event\'s data is a snapshot or a change.', schema: NodePeersResponse.or(PeerChangeEvent), contentType: 'text/event-stream' },
        400: { description: 'Last-Event-ID or since is not a revision, or X-TB-Change-Id is not a change id.', schema: ErrorResponse },
      },
      handle: (req) => {
        const node = nodeOf(req);
        req.control.nodeAuth.assertSelf(node, req.params.id ?? '');
        const lastEventId = req.ctx.get('last-event-id');
        let since: number | null = null;
        if (lastEventId !== '') {
          if (!/^\d{1,15}$/.test(lastEventId.trim())) throw invalid('Last-Event-ID must be a revision (a non-negative integer)');
          since = Number(lastEventId.trim());
        } else if (req.query.since !== undefined) since = Number(req.query.since);
        const changeId = req.ctx.get('x-tb-change-id').trim();
        if (changeId !== '' && !CHANGE_ID.test(changeId)) throw invalid('X-TB-Change-Id must be the changeId of the revision held (16 hex digits)');
        return openPeerStream(req.ctx, req.control, node, since === null ? null : changeId === '' ? { revision: since } : { revision: since, changeId });
      },
    }),
  ];
}
