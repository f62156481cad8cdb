/**
 * Domain objects → the JSON of the /v1 API (snake_case, ISO 8601 times).
 * Used by the routes and by `tunnelbyte admin --json`, so both print the
 * same shapes.
 */
import type { NodeRecord } from '../store/nodes.js';
import type { RegionWithNodes } from '../store/regions.js';
import { interfaceAddresses } from '../services/nodes.js';
import type { Attribution } from '../services/ip-attribution.js';
import type { CreatedSession, SessionDetails } from '../services/sessions.js';
import type { UsageReport } from '../services/usage.js';
import type { CreatedSessionViewT, IpAttributionResponseT, NodeViewT, RegionViewT, SessionViewT, UsageResponseT } from './schemas.js';

/** Epoch milliseconds as ISO 8601 UTC text. */
const iso = (ms: number): string => new Date(ms).toISOString();
const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

export function regionView(r: RegionWithNodes): RegionViewT {
  return { id: r.id, name: r.name, paid_only: r.paidOnly, nodes: r.activeNodes };
}

/** A node as the node itself (and the operator) sees it; never its credential hash. */
export function nodeView(n: NodeRecord): NodeViewT {
  return {
    id: n.id,
    region: n.regionId,
    state: n.state,
    public_key: n.publicKey,
    endpoint: n.endpoint,
    pool4: n.pool4,
    pool6: n.pool6,
    interface_addresses: interfaceAddresses(n),
    last_heartbeat_at: iso(n.lastHeartbeatAt),
  };
}

export function sessionView(d: SessionDetails): SessionViewT {
  const s = d.session;
  return {
    id: s.id,
    state: d.status,
    region: s.regionId,
    node: s.nodeId,
    created_at: iso(s.createdAt),
    expires_at: iso(s.expiresAt),
    closed_at: isoOrNull(s.closedAt),
    close_reason: s.closeReason,
    last_handshake_at: isoOrNull(s.lastHandshakeAt),
    rx_bytes: s.rxBytes,
    tx_bytes: s.txBytes,
    client: { public_key: s.clientPublicKey, addresses: d.addresses },
    exit: {
      public_key: d.node.publicKey,
      endpoint: d.node.endpoint,
      allowed_ips: d.allowedIps,
      persistent_keepalive: d.persistentKeepalive,
    },
    dns: d.dns,
  };
}

export function createdSessionView(c: CreatedSession): CreatedSessionViewT {
  return { ...sessionView(c), private_key: c.privateKey, config: c.config };
}

export function usageView(u: UsageReport): UsageResponseT {
  return {
    account_id: u.account.id,
    tier: u.account.tier,
    period: { id: u.period.id, start: iso(u.period.startMs), end: iso(u.period.endMs) },
    bytes: { rx: u.rxBytes, tx: u.txBytes, total: u.totalBytes },
    quota_bytes: u.quotaBytes,
    quota_exhausted: u.quotaExhausted,
    sessions: { active: u.activeSessions, limit: u.limits.maxSessions },
    regions: u.limits.paidRegions ? 'all' : 'free',
    requests_per_minute: u.limits.requestsPerMinute,
  };
}

export function attributionView(a: Attribution): IpAttributionResponseT {
  return {
    address: a.address,
    at: iso(a.at),
    exit: a.exit,
    region: a.regionId,
    node: a.nodeId,
    first_seen: isoOrNull(a.firstSeenAt),
    last_seen: isoOrNull(a.lastSeenAt),
  };
}
