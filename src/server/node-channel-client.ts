/**
 * The joined node's end of the control → node channel (issue 16; the
 * server's end is src/control/http/routes/node-peers.ts): the node's peer
 * set as a snapshot, then the changes as Server-Sent Events, reconnecting
 * with backoff and resuming from the last revision it applied.
 *
 * Guarantee: events are handed to the caller one at a time, in revision
 * order, and the revision sent back as Last-Event-ID is that of the last
 * event whose handler returned — so a change is never skipped (the server
 * resends everything after that revision, or a snapshot when it no longer
 * has it) and never applied twice (nothing at or below it is resent). With
 * it goes the event's `changeId` as X-TB-Change-Id, so a control plane whose
 * database did not make that revision (restored from an older backup, or
 * another one) answers with a snapshot instead of its own later changes.
 *
 * Over http or https like the customer CLI (http-request.ts): `ca` trusts
 * the control plane's own CA while still verifying its certificate.
 */
import type { IncomingMessage, ClientRequest } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { NodePeersResponse, PeerChangeEvent } from '../control/http/schemas.js';
import type { PeerSnapshot } from '../control/services/peer-channel.js';
import type { PeerChange } from '../control/store/node-peers.js';
import { apiBaseUrl, send } from './http-request.js';

export type { PeerSnapshot } from '../control/services/peer-channel.js';
export type { PeerChange, PublishedPeer } from '../control/store/node-peers.js';

export interface NodeChannelOptions {
  /** The control plane's API URL (with or without /v1). */
  url: string;
  nodeId: string;
  /** The node credential (tbn_…). */
  credential: string;
  /** PEM of the CA that signed the control plane's certificate (--ca). */
  ca?: Buffer;
  /** Limit for a snapshot request, and for the stream's answer to arrive (default 15 s). */
  timeoutMs?: number;
  /** No byte at all — event or keepalive comment — for this long means a dead link: reconnect (default 45 s, three keepalives). */
  idleTimeoutMs?: number;
  /** Reconnect delays: doubling from `initialMs` up to `maxMs`, each drawn in [½, 1] of that (default 500 ms … 30 s). */
  backoff?: { initialMs: number; maxMs: number };
}

/** What the node holds: a revision and the id of the change that made it (null: revision 0, or a change without one). */
export interface HeldRevision {
  revision: number;
  changeId: string | null;
}

export interface StreamOptions {
  /** What the node already holds (null: nothing, the stream starts with a snapshot; a bare revision: its change id unknown). */
  since?: HeldRevision | number | null;
  /** The whole set at a revision: replace what is applied with it. */
  onSnapshot(snapshot: PeerSnapshot): void | Promise<void>;
  /** One change, to apply on top of revision − 1; `changeId` is to be kept with the revision. */
  onPeer(revision: number, change: PeerChange, changeId: string | null): void | Promise<void>;
  /** The stream is open (answer 200). */
  onConnect?(): void;
  /** The stream broke or ended; the next attempt is in `retryInMs`. */
  onDisconnect?(error: Error, retryInMs: number): void;
  /** Aborting ends `stream()` (it resolves). */
  signal: AbortSignal;
}

/** An answer other than 200. `fatal`: retrying cannot help (credential refused, another node's id, a bad request). */
export class NodeChannelError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'NodeChannelError';
  }

  get fatal(): boolean {
    return this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
  }
}

export class NodeChannelClient {
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly backoff: { initialMs: number; maxMs: number };

  constructor(private readonly o: NodeChannelOptions) {
    this.base = apiBaseUrl(o.url);
    this.timeoutMs = o.timeoutMs ?? 15_000;
    this.idleTimeoutMs = o.idleTimeoutMs ?? 45_000;
    this.backoff = o.backoff ?? { initialMs: 500, maxMs: 30_000 };
  }

  private get path(): string {
    return `${this.base}/v1/nodes/${encodeURIComponent(this.o.nodeId)}/peers`;
  }

  /** GET /v1/nodes/{id}/peers. Network errors reject as they are; an answer other than 200 is a NodeChannelError. */
  async fetchSnapshot(): Promise<PeerSnapshot> {
    const a = await send(this.path, {
      method: 'GET',
      headers: { authorization: `Bearer ${this.o.credential}`, accept: 'application/json' },
      timeoutMs: this.timeoutMs,
      ...(this.o.ca ? { ca: this.o.ca } : {}),
    });
    if (a.status !== 200) throw answerError(a.status, a.text);
    return parseSnapshot(a.text);
  }

  /**
   * Follows the stream until `signal` aborts (then resolves). Breaks, ends
   * and unusable answers (5xx, 429, a malformed event, a throwing handler)
   * are retried with backoff from the last applied revision; a fatal answer
   * (401 revoked, 403, 404) rejects with a NodeChannelError.
   */
  async stream(s: StreamOptions): Promise<void> {
    let held: HeldRevision | null = typeof s.since === 'number' ? { revision: s.since, changeId: null } : (s.since ?? null);
    let attempt = 0;
    while (!s.signal.aborted) {
      let error: Error;
      try {
        await this.follow(held, s, (h) => {
          held = h;
        }, () => {
          attempt = 0;
          s.onConnect?.();
        });
        error = new Error('the control plane ended the stream');
      } catch (e) {
        if (e instanceof NodeChannelError && e.fatal) throw e;
        error = e as Error;
      }
      if (s.signal.aborted) break;
      const ceiling = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** Math.min(attempt++, 30));
      const delay = Math.round(ceiling * (0.5 + Math.random() / 2));
      s.onDisconnect?.(error, delay);
      await sleep(delay, s.signal);
    }
  }

  /** One connection: resolves when the server ends it or `signal` aborts; rejects on any failure. */
  private follow(since: HeldRevision | null, s: StreamOptions, applied: (held: HeldRevision) => void, opened: () => void): Promise<void> {
    const u = new URL(`${this.path}/stream`);
    const secure = u.protocol === 'https:';
    const headers: Record<string, string> = { authorization: `Bearer ${this.o.credential}`, accept: 'text/event-stream', 'cache-control': 'no-store' };
    if (since !== null) {
      headers['last-event-id'] = String(since.revision);
      if (since.changeId !== null) headers['x-tb-change-id'] = since.changeId;
    }
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let idle: NodeJS.Timeout | null = null;
      let req: ClientRequest | null = null;
      const finish = (e: Error | null): void => {
        if (settled) return;
        settled = true;
        if (idle) clearTimeout(idle);
        s.signal.removeEventListener('abort', onAbort);
        req?.destroy();
        if (e) reject(e);
        else resolve();
      };
      const onAbort = (): void => finish(null);
      const armIdle = (ms: number, what: string): void => {
        if (idle) clearTimeout(idle);
        idle = setTimeout(() => finish(Object.assign(new Error(`${what} for ${ms} ms`), { name: 'TimeoutError' })), ms);
      };
      s.signal.addEventListener('abort', onAbort);
      armIdle(this.timeoutMs, 'no answer');

      // Events are applied strictly one after another; `chain` is the one in progress.
      let chain = Promise.resolve();
      const parser = new SseParser((e) => {
        chain = chain.then(async () => {
          if (settled) return;
          const revision = e.id === null || !/^\d{1,15}$/.test(e.id) ? NaN : Number(e.id);
          if (!Number.isSafeInteger(revision)) throw new Error(`an event without a revision id (${e.event})`);
          let changeId: string | null;
          if (e.event === 'snapshot') {
            const snap = parseSnapshot(e.data);
            if (snap.revision !== revision) throw new Error(`snapshot ${snap.revision} under id ${revision}`);
            await s.onSnapshot(snap);
            changeId = snap.changeId;
          } else if (e.event === 'peer') {
            const { changeId: id, ...change } = PeerChangeEvent.parse(JSON.parse(e.data));
            changeId = id ?? null;
            await s.onPeer(revision, change as PeerChange, changeId);
          } else return; // an event type this client does not know: skipped, as SSE readers do
          applied({ revision, changeId });
        });
        chain.catch((err: unknown) => finish(err as Error));
      });

      const onResponse = (res: IncomingMessage): void => {
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => finish(answerError(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))));
          res.on('error', (e) => finish(e));
          return;
        }
        opened();
        armIdle(this.idleTimeoutMs, 'no data or keepalive');
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          armIdle(this.idleTimeoutMs, 'no data or keepalive');
          parser.push(chunk);
        });
        // The server ended the stream: finish once every event already received is applied.
        res.on('end', () => void chain.then(() => finish(null), () => undefined));
        res.on('error', (e) => finish(e));
      };
      req = (secure ? httpsRequest : httpRequest)(u, { method: 'GET', headers, ...(secure && this.o.ca ? { ca: this.o.ca } : {}) }, onResponse);
      req.on('error', (e) => finish(e));
      req.end();
    });
  }
}

function parseSnapshot(text: string): PeerSnapshot {
  const s = NodePeersResponse.parse(JSON.parse(text));
  return { ...s, changeId: s.changeId ?? null } as PeerSnapshot; // none from a control plane of an earlier release
}

function answerError(status: number, text: string): NodeChannelError {
  let message = text.slice(0, 200);
  try {
    const j = JSON.parse(text) as { error?: unknown };
    if (typeof j.error === 'string') message = j.error;
  } catch {
    // not JSON (a proxy's page): its start is the message
  }
  return new NodeChannelError(status, `HTTP ${status}: ${message}`);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

export interface SseEvent {
  event: string;
  id: string | null;
  data: string;
}

/**
 * The event-stream format (WHATWG HTML §9.2.6): lines end in CRLF, LF or CR;
 * a blank line dispatches the event gathered so far; `:` starts a comment;
 * `field: value` with one optional space after the colon; `data` lines are
 * joined with LF.
 */
export class SseParser {
  private buf = '';
  private event = '';
  private id: string | null = null;
  private data: string[] = [];
  private afterCr = false;

  constructor(private readonly dispatch: (e: SseEvent) => void) {}

  push(chunk: string): void {
    let text = chunk;
    if (this.afterCr && text.startsWith('\n')) text = text.slice(1); // the LF of a CRLF split across chunks
    this.afterCr = false;
    this.buf += text;
    let start = 0;
    for (let i = 0; i < this.buf.length; i++) {
      const c = this.buf[i];
      if (c !== '\n' && c !== '\r') continue;
      this.line(this.buf.slice(start, i));
      if (c === '\r') {
        if (i + 1 < this.buf.length) {
          if (this.buf[i + 1] === '\n') i++;
        } else this.afterCr = true;
      }
      start = i + 1;
    }
    this.buf = this.buf.slice(start);
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length > 0) this.dispatch({ event: this.event || 'message', id: this.id, data: this.data.join('\n') });
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.id = value;
  }
}
