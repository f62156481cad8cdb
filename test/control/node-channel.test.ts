/**
 * The control → node channel over real HTTP and a real SQLite file (issue
 * 16): a joined node's peer set as a snapshot with a revision, and the
 * changes as Server-Sent Events resumed from Last-Event-ID — read here both
 * raw (what is on the wire) and through the typed client `serve --join`
 * uses (src/control/node-channel-client.ts).
 */
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { Actor } from '../../src/control/services/audit.js';
import { generateKeyPair } from '../../src/crypto/wireguard-keys.js';
import { startHarness, type Harness } from './harness.js';

const OPERATOR: Actor = { actor: 'admin:test', source: null };

interface SseEvent {
  event: string;
  id: string | null;
  data: string;
}

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

describe('the control → node peer channel', () => {
  let h: Harness;
  let seq = 0;
  const enroll = async (region: string) => {
    seq++;
    const token = h.control.nodeEnrollment.issueToken(region, 3600_000, OPERATOR).token;
    const r = await h.request('POST', '/v1/nodes/enroll', {
      body: { token, public_key: generateKeyPair().publicKey, endpoint: `c${seq}.example.test:51820`, exit_addresses: [`203.0.113.${seq}`], pool4: `10.${100 + seq}.0.0/16`, pool6: `fd00:${100 + seq}::/64` },
    });
    assert.equal(r.status, 201, r.text);
    return { id: r.json.node.id as string, credential: r.json.credential as string };
  };
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
    h = await startHarness({ node: false, config: { peerStreamKeepaliveMs: 300, peerLogLimit: 5 } });
  });
  after(() => h.close());

  it('GET /peers is the desired set at a revision; only the own node', async () => {
    const n = await enroll('snap');
    const other = await enroll('snap-other');
    const empty = await h.request('GET', `/v1/nodes/${n.id}/peers`, { token: n.credential });
    assert.equal(empty.status, 200, empty.text);
    assert.deepEqual(empty.json, { revision: 0, peers: [] });
    const a = await paidAccount();
    const s1 = await openSession(a, 'snap');
    const s2 = await openSession(a, 'snap');
    const r = await h.request('GET', `/v1/nodes/${n.id}/peers`, { token: n.credential });
    assert.equal(r.json.revision, 2);
    const byKey = new Map((r.json.peers as { publicKey: string; sessionId: string; allowedIps: string[] }[]).map((p) => [p.publicKey, p]));
    assert.equal(byKey.size, 2);
    assert.equal(byKey.get(s1.publicKey)!.sessionId, s1.id);
    assert.match(byKey.get(s1.publicKey)!.allowedIps[0]!, /^10\.\d+\.0\.\d+\/32$/);
    assert.match(byKey.get(s1.publicKey)!.allowedIps[1]!, /^fd00:.*\/128$/);
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
        st.events.slice(1).map((e) => [e.event, e.id, JSON.parse(e.data)]),
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
});
