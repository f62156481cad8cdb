/**
 * One open `GET /v1/nodes/{id}/peers/stream`: Server-Sent Events (WHATWG
 * HTML §9.2) carrying a node's peer changes in revision order.
 *
 *   : open                      a comment, so the answer's headers leave at once
 *   event: snapshot / id: <rev> / data: {"revision":…,"changeId":…,"peers":[…]}
 *                               when the node holds nothing we can resume from
 *   event: peer / id: <rev> / data: {"op":"add","peer":{…},"changeId":…} | {"op":"remove","publicKey":…,"changeId":…}
 *   : keepalive                 every peerStreamKeepaliveMs, so a dead link is noticed
 *
 * The `id` of every event is the revision the node holds after applying it,
 * which is what it sends back as Last-Event-ID when it reconnects (§9.2.4),
 * with the `changeId` of that event as X-TB-Change-Id: the revision is only
 * continued from when this database's change at it has that id
 * (services/peer-channel.ts planFrom), else the node gets a snapshot.
 * Nothing here polls: the stream writes when the peer channel says the
 * node's log grew, and on each tick of the server, when it also re-checks
 * the credential — a revoked or removed node's stream is ended then.
 */
import { PassThrough } from 'node:stream';
import type { Context } from 'koa';
import type { ControlPlane } from '../control-plane.js';
import type { PeerSnapshot, ResumePoint } from '../services/peer-channel.js';
import type { NodeRecord } from '../store/nodes.js';
import type { RouteResult } from './route.js';

/** Changes read from SQLite per query while catching up. */
const PAGE = 500;

export function openPeerStream(ctx: Context, control: ControlPlane, node: NodeRecord, since: ResumePoint | null): RouteResult {
  const channel = control.peerChannel;
  const authorization = ctx.get('authorization');
  const out = new PassThrough();
  let held = 0; // the revision the node will hold after what has been written
  let ended = false;

  const snapshot = (s: PeerSnapshot): void => {
    out.write(`event: snapshot\nid: ${s.revision}\ndata: ${JSON.stringify(s)}\n\n`);
    held = s.revision;
  };

  /** Writes everything after `held`; a gap (the log was compacted past it) becomes a snapshot. */
  const catchUp = (): void => {
    const plan = channel.planFrom(node.id, { revision: held }); // this stream's own position in this database
    if (plan.kind === 'snapshot') return snapshot(plan.snapshot);
    for (;;) {
      const page = channel.changesAfter(node.id, held, PAGE);
      for (const { revision, changeId, change } of page) {
        if (revision !== held + 1) return snapshot(channel.currentSnapshot(node.id)); // compacted (by another process) between two reads
        out.write(`event: peer\nid: ${revision}\ndata: ${JSON.stringify({ ...change, changeId })}\n\n`);
        held = revision;
      }
      if (page.length < PAGE) return;
    }
  };

  /** The credential may have been revoked (here or by `tunnelbyte admin` in another process). */
  const stillAllowed = (): boolean => {
    try {
      return control.nodeAuth.authenticate(authorization || undefined).id === node.id;
    } catch {
      return false;
    }
  };

  // Where the node starts, decided before anything is subscribed: a failure here is an ordinary
  // error answer, with nothing left behind (and no event can slip in between: this is one turn).
  const start = channel.resume(node.id, since);
  out.write(': open\n\n');
  if (start.kind === 'snapshot') snapshot(start.snapshot);
  else {
    held = start.from;
    catchUp();
  }

  // A failure while following (SQLite busy past its timeout) ends this stream only — never the
  // publisher that woke it, which may be a session being created — and the node resumes.
  const guarded = (work: () => void) => (): void => {
    if (ended) return;
    try {
      work();
    } catch {
      end();
    }
  };
  const onChanged = (nodeId: string): void => {
    if (nodeId === node.id) guarded(catchUp)();
  };
  const onTick = guarded(() => (stillAllowed() ? catchUp() : end()));
  const keepalive = setInterval(() => out.write(': keepalive\n\n'), control.config.peerStreamKeepaliveMs);
  const end = (): void => {
    if (ended) return;
    ended = true;
    clearInterval(keepalive);
    channel.events.off('changed', onChanged);
    channel.events.off('tick', onTick);
    out.end();
  };
  channel.events.on('changed', onChanged);
  channel.events.on('tick', onTick);
  out.on('close', end);
  ctx.res.on('close', end);
  ctx.req.socket.setNoDelay(true);
  return {
    status: 200,
    body: out,
    headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' },
  };
}
