/**
 * Which sessions should be WireGuard peers of a node right now — the one rule
 * both the in-process node agent (node-agent.ts) and the channel to joined
 * nodes (peer-channel.ts) follow: sessions of the node that are active and
 * not past their expiry, whose account exists and has quota left this
 * period. A session of an account out of quota stays active (it is
 * "suspended") and comes back when a new period starts or the tier changes.
 * Draining a node does not change its peers; closing, expiring, removing the
 * node or disabling the account ends the sessions and so removes them.
 */
import type { Account } from '../store/accounts.js';
import type { ServiceContext } from './context.js';
import { sessionAllowedIps } from './sessions.js';
import type { UsageService } from './usage.js';

export interface DesiredPeer {
  publicKey: string;
  sessionId: string;
  accountId: string;
  /** The session's host routes (10.64.0.2/32, fd…::2/128). */
  allowedIps: string[];
}

export interface DesiredPeers {
  /** By public key. */
  peers: Map<string, DesiredPeer>;
  /** Active sessions kept off because their account's quota is used up. */
  suspended: string[];
}

export function desiredPeers(ctx: ServiceContext, usage: UsageService, nodeId: string): DesiredPeers {
  const { store, clock } = ctx;
  const now = clock.wallMs();
  const peers = new Map<string, DesiredPeer>();
  const suspended: string[] = [];
  const accounts = new Map<string, { account: Account | null; exhausted: boolean }>();
  for (const s of store.sessions.listActiveByNode(nodeId)) {
    if (s.expiresAt <= now) continue; // expireDue ends it at its next pass; it is no peer from now on
    let a = accounts.get(s.accountId);
    if (!a) {
      const account = store.accounts.get(s.accountId);
      a = { account, exhausted: account ? usage.isQuotaExhausted(account) : true };
      accounts.set(s.accountId, a);
    }
    if (a.exhausted) {
      suspended.push(s.id);
      continue;
    }
    peers.set(s.clientPublicKey, { publicKey: s.clientPublicKey, sessionId: s.id, accountId: s.accountId, allowedIps: sessionAllowedIps(s) });
  }
  return { peers, suspended };
}
