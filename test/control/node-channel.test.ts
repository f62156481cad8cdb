/**
 * The control → node channel over real HTTP and a real SQLite file (issue
 * 16): a joined node's peer set as a snapshot with a revision, and the
 * changes as Server-Sent Events resumed from Last-Event-ID — read here both
 * raw (what is on the wire) and through the typed client `serve --join`
 * uses (src/control/node-channel-client.ts).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import type { Actor } from '../../src/control/services/audit.js';
import { createControlPlane } from '../../src/control/control-plane.js';
import { createApp } from '../../src/control/http/app.js';
import { generateKeyPair } from '../../src/crypto/wireguard-keys.js';
import { NodeChannelClient, NodeChannelError, SseParser, type PeerChange, type PeerSnapshot, type PublishedPeer, type SseEvent } from '../../src/server/node-channel-client.js';
import { enrollNode, startHarness, type Harness } from './harness.js';

const OPERATOR: Actor = { actor: 'admin:test', source: null };

/** A raw SSE connection: parsed events and comment lines as they arrive. */
class RawStream {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  status = 0;
  contentType = '';
  body = '';
  ended = false;
  private buf = '';
  private waiters: (() => void)[] = [];
  private res: IncomingMessage | null = null;
  private readonly req;

  constructor(url: string, headers: Record<string, string>) {
    this.req = httpRequest(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      this.res = res;
      this.status = res.statusCode ?? 0;
      this.contentType = String(res.headers['content-type'] ?? '');
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        this.body += chunk;
        if (this.status === 200) this.parse(chunk);
        this.wake();
      });
      res.on('end', () => {
        this.ended = true;
        this.wake();
      });
      res.on('error', () => undefined);
      this.wake();
    });
    this.req.on('error', () => {
      this.ended = true;
      this.wake();
    });
    this.req.end();
  }

  private parse(chunk: string): void {
    this.buf += chunk;
    let i: number;
    while ((i = this.buf.indexOf('\n\n')) >= 0) {
      const block = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      const e: SseEvent = { event: 'message', id: null, data: '' };
      let isEvent = false;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
        else {
          const [field, ...rest] = line.split(':');
          const value = rest.join(':').replace(/^ /, '');
          isEvent = true;
          if (field === 'event') e.event = value;
          else if (field === 'id') e.id = value;
          else if (field === 'data') e.data += value;
        }
      }
      if (isEvent) this.events.push(e);
    }
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until `cond` holds (bounded: fails the test after `ms`). */
  async until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.events)} ${this.body.slice(0, 300)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.req.destroy();
    this.res?.destroy();
  }
}

/** A TCP relay in front of the API whose connections the test cuts, as a flaky link would. */
class Link {
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server) {}

  static async open(targetUrl: string): Promise<Link> {
    const target = new URL(targetUrl);
    let link: Link | null = null;
    const server = createServer((inbound) => {
      const outbound = connect(Number(target.port), target.hostname);
      for (const [a, b] of [[inbound, outbound], [outbound, inbound]] as const) {
        link!.sockets.add(a);
        a.on('error', () => b.destroy());
        a.on('close', () => {
          link!.sockets.delete(a);
          b.destroy();
        });
        a.pipe(b);
      }
    });
    link = new Link(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return link;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Every open connection dies at once (no FIN seen by the application, only a reset). */
  cut(): void {
    for (const s of this.sockets) s.destroy();
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** What a joined node does with the channel — applies it — checking that no change is skipped or applied twice. */
class AppliedSet {
  readonly peers = new Map<string, PublishedPeer>();
  held: number | null = null;
  /** The id of the change that made `held`, kept with it as a node keeps it in node.db. */
  changeId: string | null = null;
  snapshots = 0;
  readonly changes: string[] = [];
  readonly errors: string[] = [];

  onSnapshot = (snap: PeerSnapshot): void => {
    this.snapshots++;
    this.peers.clear();
    for (const p of snap.peers) this.peers.set(p.publicKey, p);
    this.held = snap.revision;
    this.changeId = snap.changeId;
  };

  onPeer = (revision: number, c: PeerChange, changeId: string | null): void => {
    if (this.held === null || revision !== this.held + 1) this.errors.push(`revision ${revision} applied on top of ${this.held}`);
    if (c.op === 'add') {
      if (this.peers.has(c.peer.publicKey)) this.errors.push(`add of a present peer at ${revision}`);
      this.peers.set(c.peer.publicKey, c.peer);
      this.changes.push(`${revision} add ${c.peer.publicKey}`);
    } else {
      if (!this.peers.delete(c.publicKey)) this.errors.push(`remove of an absent peer at ${revision}`);
      this.changes.push(`${revision} remove ${c.publicKey}`);
    }
    this.held = revision;
    this.changeId = changeId;
  };
}

/** An event's or snapshot's data without its `changeId`, which must be a change id (16 hex digits; null only where `nullable`). */
function data(text: string, nullable = false): Record<string, unknown> {
  const { changeId, ...rest } = JSON.parse(text) as Record<string, unknown>;
  if (!(nullable && changeId === null)) assert.match(String(changeId), /^[0-9a-f]{16}$/, `changeId of ${text.slice(0, 200)}`);
  return rest;
}

/** Polls `cond` (bounded: fails after `ms`). */
async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Follows a node's stream into `applied` until stopped; `done` settles when stream() does. */
function follow(client: NodeChannelClient, applied: AppliedSet, extra: { onDisconnect?: (e: Error) => void } = {}) {
  const ac = new AbortController();
  const since = applied.held === null ? null : { revision: applied.held, changeId: applied.changeId };
  const done = client.stream({ since, onSnapshot: applied.onSnapshot, onPeer: applied.onPeer, signal: ac.signal, ...extra });
  done.catch(() => undefined);
  return { stop: () => ac.abort(), done };
}

it('the client parses the event-stream format: CRLF, LF and CR line ends (also split across chunks), comments, multi-line data', () => {
  const got: SseEvent[] = [];
  const p = new SseParser((e) => got.push(e));
  for (const chunk of [': open\r', '\n\r\nevent: snapshot\r', '\nid: 7\ndata: {"a":\ndata:1}\n', '\n', ': keepalive\n\n', 'id:8\revent:peer\rdata: x\r\r', 'data: no blank line yet']) p.push(chunk);
  assert.deepEqual(got, [
    { event: 'snapshot', id: '7', data: '{"a":\n1}' },
    { event: 'peer', id: '8', data: 'x' },
  ]);
});

describe('the control → node peer channel', () => {
  let h: Harness;
  const enroll = (region: string) => enrollNode(h, region);
  const paidAccount = async () => {
    const a = await h.signup();
    h.control.accounts.setTier(a.accountId, 'paid', OPERATOR);
    return a;
  };
  const openSession = async (a: { token: string; fingerprint: string }, region: string, publicKey = generateKeyPair().publicKey) => {
    const r = await h.request('POST', '/v1/sessions', { token: a.token, fingerprint: a.fingerprint, body: { region, public_key: publicKey } });
    assert.equal(r.status, 201, r.text);
    return { id: r.json.id as string, publicKey };
  };
  const closeSession = async (a: { token: string; fingerprint: string }, id: string) => {
    const r = await h.request('DELETE', `/v1/sessions/${id}`, { token: a.token, fingerprint: a.fingerprint });
    assert.equal(r.status, 200, r.text);
  };
  const stream = (n: { id: string; credential: string }, headers: Record<string, string> = {}, query = '') =>
    new RawStream(`${h.url}/v1/nodes/${n.id}/peers/stream${query}`, { authorization: `Bearer ${n.credential}`, ...headers });

  before(async () => {
    h = await startHarness({
      node: false,
      config: {
        peerStreamKeepaliveMs: 300,
        peerLogLimit: 5,
        sessionIdleTtlMs: 40 * 24 * 3600_000, // the quota test moves the clock into the next month
        tiers: { anonymous: { quotaBytes: 10_000 }, paid: { maxSessions: 100 } },
      },
    });
  });
  after(() => h.close());

  it('GET /peers is the desired set at a revision; only the own node', async () => {
    const n = await enroll('snap');
    const other = await enroll('snap-other');
    const empty = await h.request('GET', `/v1/nodes/${n.id}/peers`, { token: n.credential });
    assert.equal(empty.status, 200, empty.text);
    assert.deepEqual(empty.json, { revision: 0, changeId: null, peers: [] }, 'revision 0 was made by no change');
    const a = await paidAccount();
    const s1 = await openSession(a, 'snap');
    const s2 = await openSession(a, 'snap');
    const r = await h.request('GET', `/v1/nodes/${n.id}/peers`, { token: n.credential });
    assert.equal(r.json.revision, 2);
    assert.match(r.json.changeId, /^[0-9a-f]{16}$/, 'the id of change 2');
    const byKey = new Map((r.json.peers as { publicKey: string; sessionId: string; allowedIps: string[] }[]).map((p) => [p.publicKey, p]));
    assert.equal(byKey.size, 2);
    assert.equal(byKey.get(s1.publicKey)!.sessionId, s1.id);
    assert.match(byKey.get(s1.publicKey)!.allowedIps[0]!, /^10\.\d+\.0\.\d+\/32$/);
    assert.match(byKey.get(s1.publicKey)!.allowedIps[1]!, /^fd[0-9a-f]{2}:.*\/128$/);
    await closeSession(a, s2.id);
    const after1 = await h.request('GET', `/v1/nodes/${n.id}/peers`, { token: n.credential });
    assert.equal(after1.json.revision, 3);
    assert.deepEqual(after1.json.peers.map((p: { publicKey: string }) => p.publicKey), [s1.publicKey]);
    const again = await h.request('GET', `/v1/nodes/${n.id}/peers`, { token: n.credential });
    assert.equal(again.json.revision, 3, 'reading does not make revisions');

    assert.equal((await h.request('GET', `/v1/nodes/${other.id}/peers`, { token: n.credential })).status, 403, "another node's peers");
    assert.equal((await h.request('GET', `/v1/nodes/${n.id}/peers`, { token: other.credential })).status, 403);
    assert.equal((await h.request('GET', `/v1/nodes/${n.id}/peers`)).status, 401);
    assert.equal((await h.request('GET', `/v1/nodes/${n.id}/peers`, { token: 'tbn_' + 'x'.repeat(43) })).status, 401);
    const doc = (await h.request('GET', '/v1/openapi.json')).json;
    assert.ok(doc.paths['/v1/nodes/{id}/peers'].get.responses['200'].content['application/json']);
    assert.ok(doc.paths['/v1/nodes/{id}/peers/stream'].get.responses['200'].content['text/event-stream'], 'the stream is documented as an event stream');
    const s = stream(n, { authorization: `Bearer ${other.credential}` });
    await s.until(() => s.ended, 'refusal');
    assert.equal(s.status, 403);
    assert.ok(JSON.parse(s.body).error);
  });
  it('the stream: a snapshot first, then one event per change in revision order, keepalive comments between', async () => {
    const n = await enroll('live');
    const a = await paidAccount();
    const s0 = await openSession(a, 'live');
    const st = stream(n);
    try {
      await st.until(() => st.events.length >= 1, 'the snapshot');
      assert.equal(st.status, 200);
      assert.match(st.contentType, /^text\/event-stream/);
      const snap = st.events[0]!;
      assert.equal(snap.event, 'snapshot');
      assert.equal(snap.id, '1');
      assert.deepEqual(JSON.parse(snap.data).peers.map((p: { publicKey: string }) => p.publicKey), [s0.publicKey]);
      const s1 = await openSession(a, 'live');
      await closeSession(a, s0.id);
      await st.until(() => st.events.length >= 3, 'two changes');
      assert.deepEqual(
        st.events.slice(1).map((e) => [e.event, e.id, data(e.data)]),
        [
          ['peer', '2', { op: 'add', peer: { publicKey: s1.publicKey, allowedIps: JSON.parse(st.events[1]!.data).peer.allowedIps, sessionId: s1.id } }],
          ['peer', '3', { op: 'remove', publicKey: s0.publicKey }],
        ],
      );
      await st.until(() => st.comments.includes('keepalive'), 'a keepalive comment');
    } finally {
      st.close();
    }
  });

  it('reconnecting with Last-Event-ID (or ?since=) brings exactly the missed changes; a compacted or unknown resume point a snapshot', async () => {
    const n = await enroll('resume');
    const a = await paidAccount();
    const s0 = await openSession(a, 'resume');
    const first = stream(n);
    await first.until(() => first.events.length >= 1, 'the snapshot');
    const lastId = first.events.at(-1)!.id!;
    first.close();
    const s1 = await openSession(a, 'resume');
    const s2 = await openSession(a, 'resume');
    await closeSession(a, s1.id);
    const again = stream(n, { 'last-event-id': lastId });
    try {
      await again.until(() => again.events.length >= 3, 'the missed changes');
      assert.deepEqual(
        again.events.map((e) => [e.event, e.id, JSON.parse(e.data).op, JSON.parse(e.data).peer?.publicKey ?? JSON.parse(e.data).publicKey]),
        [
          ['peer', '2', 'add', s1.publicKey],
          ['peer', '3', 'add', s2.publicKey],
          ['peer', '4', 'remove', s1.publicKey],
        ],
      );
      await again.until(() => again.comments.includes('keepalive'), 'a keepalive');
      assert.equal(again.events.length, 3, 'nothing else');
    } finally {
      again.close();
    }
    const viaQuery = stream(n, {}, '?since=3');
    try {
      await viaQuery.until(() => viaQuery.events.length >= 1, 'the change after 3');
      assert.deepEqual(viaQuery.events.map((e) => e.id), ['4']);
    } finally {
      viaQuery.close();
    }
    const current = stream(n, { 'last-event-id': '4' });
    try {
      await current.until(() => current.comments.includes('keepalive'), 'a keepalive');
      assert.equal(current.events.length, 0, 'up to date: nothing to send');
    } finally {
      current.close();
    }
    // peerLogLimit is 5 here: six more changes push revision 4's successors out of the log.
    for (let i = 0; i < 3; i++) await closeSession(a, (await openSession(a, 'resume')).id);
    const compacted = stream(n, { 'last-event-id': '4' });
    const future = stream(n, { 'last-event-id': '999' });
    try {
      await compacted.until(() => compacted.events.length >= 1, 'a snapshot');
      assert.equal(compacted.events[0]!.event, 'snapshot');
      assert.equal(compacted.events[0]!.id, '10');
      assert.deepEqual(JSON.parse(compacted.events[0]!.data).peers.map((p: { publicKey: string }) => p.publicKey).sort(), [s0.publicKey, s2.publicKey].sort());
      await future.until(() => future.events.length >= 1, 'a snapshot');
      assert.equal(future.events[0]!.event, 'snapshot');
      assert.equal(future.events[0]!.id, '10');
    } finally {
      compacted.close();
      future.close();
    }
    const bad = stream(n, { 'last-event-id': 'abc' });
    await bad.until(() => bad.ended, 'a refusal');
    assert.equal(bad.status, 400);
    assert.ok(JSON.parse(bad.body).error);
  });

  it("changes logged by another process reach an open stream at the tick; past the log's bound, as a snapshot", async () => {
    const n = await enroll('other-process');
    const a = await paidAccount();
    const sessions = [];
    for (let i = 0; i < 7; i++) sessions.push(await openSession(a, 'other-process'));
    const st = stream(n);
    const admin = createControlPlane({ dbPath: h.dbPath, config: h.control.config, clock: h.clock }); // as `tunnelbyte admin` would
    try {
      await st.until(() => st.events.length >= 1, 'the snapshot');
      assert.equal(st.events[0]!.id, '7');
      admin.sessions.adminClose(sessions[0]!.id);
      h.control.peerChannel.publishAll(); // the server's tick: nothing for it to publish, but the stream catches up
      await st.until(() => st.events.length >= 2, 'the change made elsewhere');
      assert.deepEqual([st.events[1]!.event, st.events[1]!.id, data(st.events[1]!.data)], ['peer', '8', { op: 'remove', publicKey: sessions[0]!.publicKey }]);
      for (const s of sessions.slice(1)) admin.sessions.adminClose(s.id); // six more: the log keeps five
      h.control.peerChannel.publishAll();
      await st.until(() => st.events.length >= 3, 'a snapshot');
      assert.deepEqual([st.events[2]!.event, st.events[2]!.id, JSON.parse(st.events[2]!.data).peers], ['snapshot', '14', []]);
    } finally {
      st.close();
      admin.close();
    }
  });

  it('a stream that fails while following ends alone: the session change that woke it still succeeds', async () => {
    const n = await enroll('failing');
    const a = await paidAccount();
    const st = stream(n);
    const channel = h.control.peerChannel;
    const original = channel.changesAfter;
    try {
      await st.until(() => st.events.length >= 1, 'the snapshot');
      channel.changesAfter = () => {
        throw new Error('database is locked');
      };
      const s = await openSession(a, 'failing'); // 201: the failure stayed in the stream
      await st.until(() => st.ended, 'the stream to end');
      channel.changesAfter = original;
      const again = stream(n, { 'last-event-id': st.events.at(-1)!.id! });
      try {
        await again.until(() => again.events.length >= 1, 'the change, on resuming');
        assert.deepEqual(data(again.events[0]!.data), { op: 'add', peer: { publicKey: s.publicKey, allowedIps: JSON.parse(again.events[0]!.data).peer.allowedIps, sessionId: s.id } });
      } finally {
        again.close();
      }
    } finally {
      channel.changesAfter = original;
      st.close();
    }
  });

  it("a revoked node's open stream ends at the next tick and its credential gets 401", async () => {
    const n = await enroll('revoke');
    const st = stream(n);
    await st.until(() => st.events.length >= 1, 'the snapshot');
    h.control.nodes.revoke(n.id, OPERATOR);
    h.control.peerChannel.publishAll(); // the server's tick
    await st.until(() => st.ended, 'the stream to end');
    const r = await h.request('GET', `/v1/nodes/${n.id}/peers`, { token: n.credential });
    assert.equal(r.status, 401);
    const again = stream(n);
    await again.until(() => again.ended, 'a refusal');
    assert.equal(again.status, 401);
  });
  const clientOf = (n: { id: string; credential: string }, url = h.url) =>
    new NodeChannelClient({ url: `${url}/v1`, nodeId: n.id, credential: n.credential, idleTimeoutMs: 2_000, backoff: { initialMs: 20, maxMs: 200 } });

  it('the client: a snapshot, then changes applied in order; stopped, changes made, resumed: exactly the missed ones', async () => {
    const n = await enroll('client');
    const a = await paidAccount();
    const s0 = await openSession(a, 'client');
    const client = clientOf(n);
    assert.deepEqual((await client.fetchSnapshot()).peers.map((p) => p.publicKey), [s0.publicKey]);
    const applied = new AppliedSet();
    let f = follow(client, applied);
    await until(() => applied.held === 1, 'the snapshot');
    const s1 = await openSession(a, 'client');
    await until(() => applied.held === 2, 'the add');
    f.stop();
    await f.done;
    await closeSession(a, s0.id);
    const s2 = await openSession(a, 'client');
    f = follow(client, applied);
    await until(() => applied.held === 4, 'the missed changes');
    f.stop();
    await f.done;
    assert.equal(applied.snapshots, 1, 'resumed, not re-snapshotted');
    assert.deepEqual(applied.changes, [`2 add ${s1.publicKey}`, `3 remove ${s0.publicKey}`, `4 add ${s2.publicKey}`]);
    assert.deepEqual(applied.errors, []);
    assert.deepEqual([...applied.peers.keys()].sort(), [s1.publicKey, s2.publicKey].sort());
  });

  it('the client survives a cut link: it reconnects with backoff and resumes from the last applied revision', async () => {
    const n = await enroll('cut');
    const a = await paidAccount();
    const link = await Link.open(h.url);
    const applied = new AppliedSet();
    const disconnects: string[] = [];
    const f = follow(clientOf(n, link.url), applied, { onDisconnect: (e) => disconnects.push(e.message) });
    try {
      await until(() => applied.held === 0, 'the empty snapshot');
      const s0 = await openSession(a, 'cut');
      await until(() => applied.held === 1, 'the add');
      link.cut();
      const s1 = await openSession(a, 'cut');
      await closeSession(a, s0.id);
      await until(() => applied.held === 3, 'the changes made while cut');
      assert.ok(disconnects.length >= 1, 'the cut was noticed');
      assert.equal(applied.snapshots, 1);
      assert.deepEqual(applied.errors, []);
      assert.deepEqual([...applied.peers.keys()], [s1.publicKey]);
    } finally {
      f.stop();
      await f.done;
      await link.close();
    }
  });

  it('keepalive comments keep a quiet stream open; the client does not reconnect while they flow', async () => {
    const n = await enroll('quiet');
    const applied = new AppliedSet();
    const disconnects: string[] = [];
    const f = follow(clientOf(n), applied, { onDisconnect: (e) => disconnects.push(e.message) });
    try {
      await until(() => applied.held === 0, 'the snapshot');
      await new Promise((resolve) => setTimeout(resolve, 3_000)); // longer than the client's 2 s idle limit; keepalives every 0.3 s
      assert.deepEqual(disconnects, []);
    } finally {
      f.stop();
      await f.done;
    }
  });

  it('node A cannot read B through the client; a revoked node\'s stream() rejects with 401', async () => {
    const x = await enroll('iso-a');
    const y = await enroll('iso-b');
    const asOther = new NodeChannelClient({ url: h.url, nodeId: y.id, credential: x.credential });
    await assert.rejects(asOther.fetchSnapshot(), (e: unknown) => e instanceof NodeChannelError && e.status === 403 && e.fatal);
    await assert.rejects(
      asOther.stream({ onSnapshot: () => undefined, onPeer: () => undefined, signal: new AbortController().signal }),
      (e: unknown) => e instanceof NodeChannelError && e.status === 403,
    );
    const applied = new AppliedSet();
    const client = clientOf(x);
    const ac = new AbortController();
    const done = client.stream({ onSnapshot: applied.onSnapshot, onPeer: applied.onPeer, signal: ac.signal });
    try {
      await until(() => applied.held === 0, 'the snapshot');
      h.control.nodes.revoke(x.id, OPERATOR);
      h.control.peerChannel.publishAll();
      await assert.rejects(done, (e: unknown) => e instanceof NodeChannelError && e.status === 401 && e.fatal);
    } finally {
      ac.abort();
    }
  });

  it('property: for random session operations and random link cuts and client restarts, the applied set ends equal to the desired set', async () => {
    const n = await enroll('prop');
    const accounts = [await paidAccount(), await paidAccount()];
    const link = await Link.open(h.url);
    const client = clientOf(n, link.url);
    // A cut or restart either at once (events may be in flight) or once the client has caught up.
    type Op = { kind: 'open'; who: number } | { kind: 'close'; pick: number } | { kind: 'cut' | 'restart'; settled: boolean };
    const op: fc.Arbitrary<Op> = fc.oneof(
      { arbitrary: fc.record({ kind: fc.constant('open' as const), who: fc.nat(1) }), weight: 4 },
      { arbitrary: fc.record({ kind: fc.constant('close' as const), pick: fc.nat(50) }), weight: 3 },
      { arbitrary: fc.record({ kind: fc.constant('cut' as const), settled: fc.boolean() }), weight: 2 },
      { arbitrary: fc.record({ kind: fc.constant('restart' as const), settled: fc.boolean() }), weight: 1 },
    );
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 14 }), async (ops) => {
          const open: { id: string; who: number }[] = [];
          const applied = new AppliedSet();
          let f = follow(client, applied);
          const caughtUp = () => until(() => applied.held === h.control.store.nodePeers.revision(n.id), 'the client to catch up');
          try {
            for (const o of ops) {
              if ((o.kind === 'cut' || o.kind === 'restart') && o.settled) await caughtUp();
              if (o.kind === 'open') open.push({ id: (await openSession(accounts[o.who]!, 'prop')).id, who: o.who });
              else if (o.kind === 'close' && open.length > 0) {
                const [s] = open.splice(o.pick % open.length, 1);
                await closeSession(accounts[s!.who]!, s!.id);
              } else if (o.kind === 'cut') link.cut();
              else if (o.kind === 'restart') {
                f.stop();
                await f.done;
                f = follow(client, applied); // from applied.held, as a restarted node would from its disk
              }
            }
            const want = await h.request('GET', `/v1/nodes/${n.id}/peers`, { token: n.credential });
            await until(() => applied.held === want.json.revision, `revision ${want.json.revision}`);
            assert.deepEqual(applied.errors, []);
            const desired = h.control.sessions.listActiveOnNode(n.id).map((s) => s.clientPublicKey).sort();
            assert.deepEqual([...applied.peers.keys()].sort(), desired);
            assert.deepEqual([...applied.peers.values()].sort((p, q) => (p.publicKey < q.publicKey ? -1 : 1)), want.json.peers);
          } finally {
            f.stop();
            await f.done;
            for (const s of open) await closeSession(accounts[s.who]!, s.id);
          }
        }),
        { numRuns: 20 },
      );
    } finally {
      await link.close();
    }
  });

  it('quota: a usage report that uses it up removes the peer; a new period brings it back; so does an upgrade. Expiry removes it', async () => {
    const n = await enroll('quota');
    const a = await h.signup(); // anonymous: 10 000 bytes a month in this harness
    const s = await openSession(a, 'quota');
    const applied = new AppliedSet();
    const f = follow(clientOf(n), applied);
    const report = (seqNo: number, bytes: number) =>
      h.request('POST', `/v1/nodes/${n.id}/usage`, {
        token: n.credential,
        body: { seq: seqNo, sessions: [{ id: s.id, rx_bytes: bytes, tx_bytes: 0, last_handshake_at: new Date(h.clock.wallMs()).toISOString() }] },
      });
    try {
      await until(() => applied.held === 1 && applied.peers.has(s.publicKey), 'the peer');
      assert.equal((await report(1, 4_000)).status, 200);
      assert.equal((await report(2, 12_000)).status, 200);
      await until(() => applied.held === 2, 'the cut');
      assert.deepEqual(applied.changes.at(-1), `2 remove ${s.publicKey}`, 'removed by the report, not by a tick');
      // The next month: the tick (ControlServer / ExitServer) publishes the restored peer.
      h.clock.set(Date.UTC(2026, 3, 1, 0, 0, 1));
      h.control.nodes.heartbeat(n.id, []);
      h.control.peerChannel.publishAll();
      await until(() => applied.held === 3, 'the restore');
      assert.equal(applied.changes.at(-1), `3 add ${s.publicKey}`);
      assert.equal((await report(3, 30_000)).status, 200);
      await until(() => applied.held === 4, 'the cut of the new month');
      h.control.accounts.setTier(a.accountId, 'paid', OPERATOR);
      await until(() => applied.held === 5, 'the upgrade');
      assert.equal(applied.changes.at(-1), `5 add ${s.publicKey}`);
      h.clock.advance(41 * 24 * 3600_000);
      assert.ok(h.control.sessions.expireDue().includes(s.id));
      await until(() => applied.held === 6, 'the expiry');
      assert.equal(applied.changes.at(-1), `6 remove ${s.publicKey}`);
      assert.deepEqual(applied.errors, []);
      assert.equal(applied.peers.size, 0);
    } finally {
      f.stop();
      await f.done;
    }
  });
  it("over https the client trusts the control plane's own CA given as `ca` (verification stays on: without it, refused)", async () => {
    const n = await enroll('tls');
    const certDir = mkdtempSync(join(tmpdir(), 'tb-channel-tls-'));
    const server = (() => {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem')], { stdio: 'ignore' });
      return createHttpsServer({ key: readFileSync(join(certDir, 'key.pem')), cert: readFileSync(join(certDir, 'cert.pem')) }, createApp({ control: h.control }).callback());
    })();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const ac = new AbortController();
    try {
      const trusted = new NodeChannelClient({ url, nodeId: n.id, credential: n.credential, ca: readFileSync(join(certDir, 'cert.pem')), backoff: { initialMs: 20, maxMs: 100 } });
      assert.deepEqual(await trusted.fetchSnapshot(), { revision: 0, changeId: null, peers: [] });
      const applied = new AppliedSet();
      const done = trusted.stream({ onSnapshot: applied.onSnapshot, onPeer: applied.onPeer, signal: ac.signal });
      const s = await openSession(await paidAccount(), 'tls');
      await until(() => applied.held === 1, 'the change over TLS');
      assert.ok(applied.peers.has(s.publicKey));
      ac.abort();
      await done;
      const untrusted = new NodeChannelClient({ url, nodeId: n.id, credential: n.credential });
      await assert.rejects(untrusted.fetchSnapshot(), (e: unknown) => /SELF_SIGNED|self-signed|unable to verify/i.test(`${(e as NodeJS.ErrnoException).code} ${(e as Error).message}`));
    } finally {
      ac.abort();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(certDir, { recursive: true, force: true });
    }
  });

  it('closed streams leave no listeners behind', async () => {
    await until(() => h.control.peerChannel.events.listenerCount('changed') === 0 && h.control.peerChannel.events.listenerCount('tick') === 0, 'every stream to let go');
  });
});

/**
 * A revision names a state of ONE database: a control plane restored from an
 * older backup, or started on another database, numbers its own changes
 * from its own revision on. The node resumes naming the id of the change it
 * holds (migration 6); a database that did not make that change answers with
 * its snapshot — also when its revision is equal to or above the node's,
 * where a revision alone would read as "up to date" or as "these changes
 * follow". The same database restarted still resumes with the changes only.
 */
describe('the peer channel across control-plane databases', () => {
  const dirs: string[] = [];
  const harnesses: Harness[] = [];
  const freshDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'tb-channel-db-'));
    dirs.push(d);
    return d;
  };
  const start = async (dir: string) => {
    const h = await startHarness({ node: false, dir, config: { tiers: { paid: { maxSessions: 100 } } } });
    harnesses.push(h);
    return h;
  };
  const stop = async (h: Harness) => {
    harnesses.splice(harnesses.indexOf(h), 1);
    await h.close();
  };
  const paidAccount = async (h: Harness) => {
    const a = await h.signup();
    h.control.accounts.setTier(a.accountId, 'paid', OPERATOR);
    return a;
  };
  const openSession = async (h: Harness, a: { token: string; fingerprint: string }, region: string) => {
    const publicKey = generateKeyPair().publicKey;
    const r = await h.request('POST', '/v1/sessions', { token: a.token, fingerprint: a.fingerprint, body: { region, public_key: publicKey } });
    assert.equal(r.status, 201, r.text);
    return publicKey;
  };
  const clientOf = (h: Harness, n: { id: string; credential: string }) =>
    new NodeChannelClient({ url: `${h.url}/v1`, nodeId: n.id, credential: n.credential, idleTimeoutMs: 2_000, backoff: { initialMs: 20, maxMs: 200 } });
  /** Follows until the applied set reaches `revision` (and `also` holds), or fails; then stops. */
  const syncTo = async (h: Harness, n: { id: string; credential: string }, applied: AppliedSet, revision: number, what: string, also = () => true) => {
    const f = follow(clientOf(h, n), applied);
    try {
      await until(() => applied.held === revision && also(), what);
    } finally {
      f.stop();
      await f.done;
    }
  };

  after(async () => {
    for (const h of harnesses.splice(0)) await h.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('restored from an older backup whose revision catches up with the node: the node gets the restored database\'s snapshot', async () => {
    const dirA = freshDir();
    let h = await start(dirA);
    const n = await enrollNode(h, 'restore');
    const a = await paidAccount(h);
    const k1 = await openSession(h, a, 'restore');
    const backup = join(freshDir(), 'backup.db');
    h.control.store.db.exec(`VACUUM INTO '${backup}'`); // the operator's backup, at revision 1
    const k2 = await openSession(h, a, 'restore');
    const k3 = await openSession(h, a, 'restore');
    const applied = new AppliedSet();
    await syncTo(h, n, applied, 3, 'revision 3 of the first database');
    assert.deepEqual([...applied.peers.keys()].sort(), [k1, k2, k3].sort());
    assert.match(String(applied.changeId), /^[0-9a-f]{16}$/);

    // The database is lost; the control plane comes back on the backup and lives on: two new sessions are
    // revisions 2 and 3 there — the node's revision number, made by other changes.
    await stop(h);
    const dirB = freshDir();
    copyFileSync(backup, join(dirB, 'tunnelbyte.db'));
    h = await start(dirB);
    const t1 = await openSession(h, a, 'restore');
    const t2 = await openSession(h, a, 'restore');
    assert.equal((await h.request('GET', `/v1/nodes/${n.id}/peers`, { token: n.credential })).json.revision, 3);

    const snapshots = applied.snapshots;
    const raw = new RawStream(`${h.url}/v1/nodes/${n.id}/peers/stream`, { authorization: `Bearer ${n.credential}`, 'last-event-id': '3', 'x-tb-change-id': applied.changeId! });
    try {
      await raw.until(() => raw.events.length >= 1, 'the answer to the resume');
      assert.equal(raw.events[0]!.event, 'snapshot', 'revision 3 of another database is not taken for this one');
    } finally {
      raw.close();
    }
    // Without the change id it would be "up to date" at once: wait for the snapshot (bounded), then check the set.
    await syncTo(h, n, applied, 3, 'the restored database\'s snapshot', () => applied.snapshots > snapshots);
    assert.equal(applied.snapshots, snapshots + 1, 'one snapshot');
    assert.deepEqual([...applied.peers.keys()].sort(), [k1, t1, t2].sort(), "exactly the restored database's peers: not k2, k3 of the lost one");
    assert.deepEqual(applied.errors, []);

    // From here the node follows the restored database by its changes again.
    const t3 = await openSession(h, a, 'restore');
    await syncTo(h, n, applied, 4, 'the next change');
    assert.equal(applied.snapshots, snapshots + 1, 'resumed with changes');
    assert.ok(applied.peers.has(t3));
  });

  it('a fresh database that knows the node, at a revision above the node\'s: its snapshot, not its changes on top of the old set', async () => {
    const dirA = freshDir();
    let h = await start(dirA);
    const n = await enrollNode(h, 'fresh');
    const a = await paidAccount(h);
    const k1 = await openSession(h, a, 'fresh');
    const k2 = await openSession(h, a, 'fresh');
    const applied = new AppliedSet();
    await syncTo(h, n, applied, 2, 'revision 2 of database A');
    await stop(h);

    // Database B: created new, with the node (same id and credential) carried over by the operator.
    const dirB = freshDir();
    const dbB = join(dirB, 'tunnelbyte.db');
    createControlPlane({ dbPath: dbB }).close(); // created and migrated
    const sql = new Database(dbB);
    try {
      sql.exec(`ATTACH '${join(dirA, 'tunnelbyte.db')}' AS a`);
      sql.exec(`INSERT INTO regions SELECT * FROM a.regions WHERE id = 'fresh'`);
      sql.prepare(`INSERT INTO nodes SELECT * FROM a.nodes WHERE id = ?`).run(n.id);
      sql.prepare(`UPDATE nodes SET peer_revision = 0 WHERE id = ?`).run(n.id);
    } finally {
      sql.close();
    }
    h = await start(dirB);
    const b = await paidAccount(h);
    const t1 = await openSession(h, b, 'fresh');
    const t2 = await openSession(h, b, 'fresh');
    const t3 = await openSession(h, b, 'fresh');
    assert.equal((await h.request('GET', `/v1/nodes/${n.id}/peers`, { token: n.credential })).json.revision, 3);

    const snapshots = applied.snapshots;
    await syncTo(h, n, applied, 3, "database B's snapshot", () => applied.snapshots > snapshots);
    assert.equal(applied.snapshots, snapshots + 1, 'one snapshot');
    assert.deepEqual([...applied.peers.keys()].sort(), [t1, t2, t3].sort(), 'B\'s peers only: not k1, k2, nor B\'s change 3 alone on top of them');
    assert.ok(!applied.peers.has(k1) && !applied.peers.has(k2));
    assert.deepEqual(applied.errors, []);
  });

  it('the same database restarted: the node resumes with exactly the missed changes, no snapshot', async () => {
    const dir = freshDir();
    let h = await start(dir);
    const n = await enrollNode(h, 'same');
    const a = await paidAccount(h);
    const k1 = await openSession(h, a, 'same');
    const applied = new AppliedSet();
    await syncTo(h, n, applied, 1, 'revision 1');
    await stop(h);
    h = await start(dir);
    const k2 = await openSession(h, a, 'same');
    const snapshots = applied.snapshots;
    await syncTo(h, n, applied, 2, 'the change after the restart');
    assert.equal(applied.snapshots, snapshots, 'resumed, not re-snapshotted');
    assert.deepEqual(applied.changes.at(-1), `2 add ${k2}`);
    assert.deepEqual([...applied.peers.keys()].sort(), [k1, k2].sort());
  });

  it('X-TB-Change-Id that is not a change id is a 400', async () => {
    const h = await start(freshDir());
    const n = await enrollNode(h, 'bad-id');
    const raw = new RawStream(`${h.url}/v1/nodes/${n.id}/peers/stream`, { authorization: `Bearer ${n.credential}`, 'last-event-id': '0', 'x-tb-change-id': 'not-hex' });
    try {
      await raw.until(() => raw.ended, 'the refusal');
      assert.equal(raw.status, 400);
      assert.match(JSON.parse(raw.body).error, /X-TB-Change-Id/);
    } finally {
      raw.close();
    }
  });
});
