/**
 * Sessions: a client's WireGuard peer on an exit node. Creating one checks
 * the caller's tier (region, session count, quota), picks the least loaded
 * active node of the region, allocates the lowest free address offset of
 * that node inside one IMMEDIATE transaction (so concurrent requests, or
 * another process, cannot take the same address; a unique index backs this
 * up), and renders the wg-quick config. The peer is installed through the
 * node's data plane at once (PeerSync), and removed the same way on close.
 */
import { conflict, forbidden, invalid, notFound, unavailable } from '../errors.js';
import { newId } from '../ids.js';
import { addressAt, cidrSize, hostRoute, parseCidr } from '../ip-address.js';
import type { Account } from '../store/accounts.js';
import type { NodeRecord } from '../store/nodes.js';
import type { Region } from '../store/regions.js';
import type { CloseReason, SessionRecord } from '../store/sessions.js';
import { generateKeyPair, isWireGuardKey } from '../../crypto/wireguard-keys.js';
import type { ServiceContext } from './context.js';
import { FIRST_CLIENT_OFFSET, lastClientOffset } from './nodes.js';
import type { UsageService } from './usage.js';
import { renderWgQuickConfig } from './wg-quick-config.js';
import { recordAudit, SYSTEM, type Actor } from './audit.js';

/** What clients route through the exit: everything. */
export const CLIENT_ALLOWED_IPS = ['0.0.0.0/0', '::/0'];

/** A session as clients see it: `suspended` is an active session whose peer is off because the quota is used up. */
export type SessionStatus = 'active' | 'suspended' | 'closed' | 'expired';

export interface SessionDetails {
  session: SessionRecord;
  status: SessionStatus;
  node: NodeRecord;
  region: Region;
  /** The client's addresses as host routes (10.64.0.2/32, fd…::2/128). */
  addresses: string[];
  dns: string[];
  allowedIps: string[];
  persistentKeepalive: number;
}

export interface CreatedSession extends SessionDetails {
  /** The client's private key when the server generated the pair (returned once, never stored). */
  privateKey: string | null;
  /** The complete wg-quick configuration. */
  config: string;
}

export class SessionService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly usage: UsageService,
  ) {}

  /**
   * Opens a session in `regionId` for the account. Errors, in the order they
   * are checked: 400 bad key or unknown region, 403 paid-only region, 429
   * quota used up, 403 session limit, 503 no active node (or its address pool
   * is full), 400 the key of an exit, 409 key used by an active session (of
   * any account, on any node).
   */
  create(account: Account, input: { regionId: string; publicKey?: string | undefined }, by: Actor = SYSTEM): CreatedSession {
    const { store, config, clock } = this.ctx;
    if (input.publicKey !== undefined && !isWireGuardKey(input.publicKey)) {
      throw invalid('public_key is not a WireGuard public key (base64 of 32 bytes)');
    }
    const keys = input.publicKey === undefined ? generateKeyPair() : null;
    const clientPublicKey = input.publicKey ?? keys!.publicKey;
    const created = store.transaction(() => {
      const fresh = store.accounts.get(account.id) ?? account;
      const limits = config.tiers[fresh.tier];
      const region = store.regions.get(input.regionId);
      if (!region) throw invalid(`unknown region ${JSON.stringify(input.regionId)}`);
      if (region.paidOnly && !limits.paidRegions) throw forbidden(`region ${region.id} is for paid accounts`);
      this.usage.assertQuotaLeft(fresh); // before the session limit: "wait until <date>" is the useful answer
      const active = store.sessions.countActiveByAccount(fresh.id);
      if (active >= limits.maxSessions) {
        throw forbidden(`session limit of the ${fresh.tier} tier reached (${limits.maxSessions} active); close one first`);
      }
      const now = clock.wallMs();
      const nodes = store.nodes.activeInRegion(region.id, now - config.nodeStaleAfterMs);
      if (nodes.length === 0) throw unavailable(`no active node in region ${region.id}; try another region`);
      // A key the exits cannot take as a peer would fail at every sync instead of here (issue 15).
      if (store.nodes.getByPublicKey(clientPublicKey)) throw invalid("public_key is an exit's own public key; use the client's key");
      if (store.sessions.isKeyActive(clientPublicKey)) {
        throw conflict('public_key is already used by an active session; close it or use another key');
      }
      for (const node of nodes) {
        const pool4 = parseCidr(node.pool4);
        const pool6 = node.pool6 ? parseCidr(node.pool6) : null;
        let max = lastClientOffset(pool4);
        if (pool6 && cidrSize(pool6) - 1n < BigInt(max)) max = Number(cidrSize(pool6) - 1n);
        const offset = store.sessions.lowestFreeOffset(node.id, FIRST_CLIENT_OFFSET, max);
        if (offset === null) continue; // this node's pool is full: the next least loaded one
        const session = store.sessions.insert({
          id: newId('ses'),
          accountId: fresh.id,
          nodeId: node.id,
          regionId: region.id,
          clientPublicKey,
          addressOffset: offset,
          ipv4: addressAt(pool4, offset),
          ipv6: pool6 ? addressAt(pool6, offset) : null,
          now,
          expiresAt: now + config.sessionIdleTtlMs,
        });
        recordAudit(this.ctx, by, 'session.create', { accountId: fresh.id, subject: session.id, detail: { node: node.id, region: region.id, public_key: clientPublicKey } });
        return { session, node, region };
      }
      throw unavailable(`no free addresses on the nodes of region ${region.id}; try another region`);
    });
    this.ctx.peers.nodeChanged(created.node.id);
    const details = this.details(created.session, created.node, created.region, 'active');
    return {
      ...details,
      privateKey: keys?.privateKey ?? null,
      config: renderWgQuickConfig({
        sessionId: created.session.id,
        regionId: created.region.id,
        privateKey: keys?.privateKey ?? null,
        clientPublicKey,
        addresses: details.addresses,
        dns: details.dns,
        exitPublicKey: created.node.publicKey,
        endpoint: created.node.endpoint,
        allowedIps: details.allowedIps,
        persistentKeepalive: details.persistentKeepalive,
      }),
    };
  }

  /** The account's sessions, newest first (ended ones too unless activeOnly). */
  list(account: Account, opts: { activeOnly?: boolean } = {}): SessionDetails[] {
    const suspended = this.usage.isQuotaExhausted(account);
    return this.ctx.store.sessions
      .listByAccount(account.id, { activeOnly: opts.activeOnly ?? false })
      .map((s) => this.withStatus(s, suspended));
  }

  /** One of the account's sessions; 404 for any other id, including other accounts' sessions. */
  get(account: Account, sessionId: string): SessionDetails {
    const s = this.ctx.store.sessions.get(sessionId);
    if (!s || s.accountId !== account.id) throw notFound('no such session');
    return this.withStatus(s, this.usage.isQuotaExhausted(account));
  }

  /** Closes one of the account's sessions; its peer is removed at once. Closing an ended session is a no-op. */
  close(account: Account, sessionId: string, by: Actor = SYSTEM): SessionDetails {
    const s = this.ctx.store.sessions.get(sessionId);
    if (!s || s.accountId !== account.id) throw notFound('no such session');
    return this.end(s, 'client', by);
  }

  // ----- operators and the exit server -----

  /** Closes any session (tunnelbyte admin). A running server removes the peer at its next sync. */
  adminClose(sessionId: string, by: Actor = SYSTEM): SessionDetails {
    const s = this.ctx.store.sessions.get(sessionId);
    if (!s) throw notFound(`no session ${sessionId}`);
    return this.end(s, 'admin', by);
  }

  /** Every session (active ones only unless `all`), newest first. */
  adminList(opts: { all?: boolean } = {}): SessionDetails[] {
    return this.ctx.store.sessions.list({ activeOnly: !opts.all }).map((s) => {
      const account = this.ctx.store.accounts.get(s.accountId);
      return this.withStatus(s, account ? this.usage.isQuotaExhausted(account) : false);
    });
  }

  /** Active sessions of a node, e.g. to re-install its peers when the server starts. */
  listActiveOnNode(nodeId: string): SessionRecord[] {
    return this.ctx.store.sessions.listActiveByNode(nodeId);
  }

  /** Marks every active session past its expiry as expired; returns their ids (their nodes are reconciled). */
  expireDue(): string[] {
    const { store, clock, peers } = this.ctx;
    const nodes = new Set<string>();
    const expired = store.transaction(() => {
      const now = clock.wallMs();
      const out: string[] = [];
      for (const id of store.sessions.idsDueForExpiry(now)) {
        const s = store.sessions.get(id)!;
        if (store.sessions.end(id, 'expired', 'expired', now)) {
          recordAudit(this.ctx, SYSTEM, 'session.expire', { accountId: s.accountId, subject: id });
          out.push(id);
          nodes.add(s.nodeId);
        }
      }
      return out;
    });
    for (const n of nodes) peers.nodeChanged(n);
    return expired;
  }

  private end(s: SessionRecord, reason: CloseReason, by: Actor): SessionDetails {
    const ended = this.ctx.store.transaction(() => {
      const done = this.ctx.store.sessions.end(s.id, 'closed', reason, this.ctx.clock.wallMs());
      if (done) recordAudit(this.ctx, by, reason === 'admin' ? 'admin.session.close' : 'session.close', { accountId: s.accountId, subject: s.id });
      return done;
    });
    if (ended) this.ctx.peers.nodeChanged(s.nodeId);
    return this.withStatus(this.ctx.store.sessions.get(s.id)!, false);
  }

  private withStatus(s: SessionRecord, quotaExhausted: boolean): SessionDetails {
    const node = this.ctx.store.nodes.get(s.nodeId)!;
    const region = this.ctx.store.regions.get(s.regionId)!;
    const status: SessionStatus = s.state === 'active' ? (quotaExhausted ? 'suspended' : 'active') : s.state;
    return this.details(s, node, region, status);
  }

  private details(s: SessionRecord, node: NodeRecord, region: Region, status: SessionStatus): SessionDetails {
    return {
      session: s,
      status,
      node,
      region,
      addresses: sessionAllowedIps(s),
      dns: this.ctx.config.dns,
      allowedIps: CLIENT_ALLOWED_IPS,
      persistentKeepalive: this.ctx.config.persistentKeepaliveSeconds,
    };
  }
}

/** The host routes of a session's addresses: its peer's allowed IPs on the exit. */
export function sessionAllowedIps(s: Pick<SessionRecord, 'ipv4' | 'ipv6'>): string[] {
  return s.ipv6 ? [hostRoute(s.ipv4), hostRoute(s.ipv6)] : [hostRoute(s.ipv4)];
}
