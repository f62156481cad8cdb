/**
 * The /v1 wire format: zod schemas of every request and response. Requests
 * are validated with them (unknown fields are a 400: a typo must not be
 * silently ignored); responses are typed by them, and the OpenAPI document
 * at /v1/openapi.json is generated from both.
 */
import { z } from 'zod';
import { isWireGuardKey } from '../../crypto/wireguard-keys.js';

// ----- requests -----

/** A machine fingerprint: what the CLI derives from the machine id (a hash), sent as text. */
export const Fingerprint = z
  .string()
  .min(8, 'must be at least 8 characters')
  .max(256, 'must be at most 256 characters')
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');

export const SignupRequest = z.strictObject({
  fingerprint: Fingerprint.describe('The machine fingerprint the token will be bound to (send it again as X-TB-Fingerprint).'),
});

export const Email = z.email('must be an email address').max(254);

export const LoginRequest = z.strictObject({
  email: Email,
  password: z.string().min(1).max(1024),
});

export const UpgradeRequest = z.strictObject({
  email: Email,
  password: z.string().min(8, 'must be at least 8 characters').max(1024),
});

export const WireGuardKey = z.string().refine(isWireGuardKey, 'must be a WireGuard key (base64 of 32 bytes)');

export const CreateSessionRequest = z.strictObject({
  region: z.string().min(1).max(64).describe('Region id from GET /v1/regions.'),
  public_key: WireGuardKey.optional().describe(
    'The client public key. Without it the server generates the key pair and the config carries the private key.',
  ),
});

export const IpQuery = z.object({
  at: z.string().optional().describe('ISO 8601 time to ask about (default: now).'),
});

export const SessionListQuery = z.object({
  state: z.enum(['active', 'all']).optional().describe('active (default): sessions not ended; all: ended ones too.'),
});

export const EnrollNodeRequest = z.strictObject({
  token: z.string().min(1).max(128).describe('The one-time enrollment token (tbe_...) from `tunnelbyte admin node token`.'),
  public_key: WireGuardKey.describe("The node's WireGuard public key."),
  endpoint: z.string().min(1).max(300).describe('HOST:PORT clients connect to ([IPv6]:PORT).'),
  exit_addresses: z.array(z.string().max(64)).max(64).describe('Addresses the node\'s traffic leaves from (what /v1/ip attributes).'),
  pool4: z.string().max(64).describe('IPv4 pool for client addresses (at most /30).'),
  pool6: z.string().max(64).optional().describe('IPv6 pool; default: a random ULA /64 (kept on re-enrollment).'),
});

export const NodeHeartbeatRequest = z.strictObject({
  exit_addresses: z.array(z.string().max(64)).max(64).describe('The addresses the node\'s traffic leaves from now.'),
});

const ByteCount = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const NodeUsageRequest = z.strictObject({
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).describe('Increases with each new report; a retry repeats it.'),
  sessions: z
    .array(
      z.strictObject({
        id: z.string().max(64).describe('A session placed on this node.'),
        rx_bytes: ByteCount.describe('Bytes the client received through the node since the session began there (cumulative).'),
        tx_bytes: ByteCount.describe('Bytes the client sent (cumulative).'),
        last_handshake_at: z.iso.datetime().nullable().describe('The latest handshake with the client.'),
      }),
    )
    .max(100_000),
});

// ----- responses -----

export const ErrorResponse = z.object({ error: z.string() });
export const HealthResponse = z.object({ ok: z.literal(true) });

export const RegionView = z.object({
  id: z.string(),
  name: z.string(),
  paid_only: z.boolean(),
  nodes: z.number().int().describe('Active nodes.'),
});
export const RegionsResponse = z.object({ regions: z.array(RegionView) });

export const IpAttributionResponse = z.object({
  address: z.string(),
  at: z.string().describe('The time asked about (ISO 8601).'),
  exit: z.boolean().describe('Was the address an exit address of this service at that time?'),
  region: z.string().nullable(),
  node: z.string().nullable(),
  first_seen: z.string().nullable().describe('Start of the interval during which the node used the address.'),
  last_seen: z.string().nullable(),
});

export const Tier = z.enum(['anonymous', 'paid']);

export const SignupResponse = z.object({
  token: z.string(),
  account_id: z.string(),
  tier: Tier,
});

export const LoginResponse = SignupResponse.extend({ email: z.string() });

export const RevokedTokenResponse = z.object({ revoked: z.literal(true), token_id: z.string() });

export const RotatedTokenResponse = SignupResponse.extend({
  token_id: z.string(),
  revoked_token_id: z.string().describe('The token this request carried; refused from now on.'),
});
export type RotatedTokenResponseT = z.infer<typeof RotatedTokenResponse>;

export const UpgradeResponse = z.object({
  token: z.string().describe('A new token; it works from any machine once the account is paid.'),
  account_id: z.string(),
  tier: Tier,
  email: z.string(),
  checkout_url: z.string().nullable().describe('Stripe Checkout page to pay at; null when the account is already paid.'),
});

export const SessionView = z.object({
  id: z.string(),
  state: z.enum(['active', 'suspended', 'closed', 'expired']).describe('suspended: active, but the peer is off because the quota is used up.'),
  region: z.string(),
  node: z.string(),
  created_at: z.string(),
  expires_at: z.string().describe('Slides forward with each handshake: an idle session expires.'),
  closed_at: z.string().nullable(),
  close_reason: z.enum(['client', 'admin', 'expired', 'tier']).nullable(),
  last_handshake_at: z.string().nullable(),
  rx_bytes: z.number().int().describe('Bytes the client received through the exit.'),
  tx_bytes: z.number().int().describe('Bytes the client sent through the exit.'),
  client: z.object({ public_key: z.string(), addresses: z.array(z.string()) }),
  exit: z.object({
    public_key: z.string(),
    endpoint: z.string(),
    allowed_ips: z.array(z.string()),
    persistent_keepalive: z.number().int(),
  }),
  dns: z.array(z.string()),
});

export const CreatedSessionView = SessionView.extend({
  private_key: z.string().nullable().describe('The generated client private key (only when no public_key was sent; shown once).'),
  config: z.string().describe('A complete wg-quick configuration.'),
});

export const SessionsResponse = z.object({ sessions: z.array(SessionView) });

export const UsageResponse = z.object({
  account_id: z.string(),
  tier: Tier,
  period: z.object({ id: z.string(), start: z.string(), end: z.string() }),
  bytes: z.object({ rx: z.number().int(), tx: z.number().int(), total: z.number().int() }),
  quota_bytes: z.number().int().nullable().describe('null: no cap.'),
  quota_exhausted: z.boolean(),
  sessions: z.object({ active: z.number().int(), limit: z.number().int() }),
  regions: z.enum(['free', 'all']),
  requests_per_minute: z.number().int(),
});

export const WebhookResponse = z.object({
  received: z.literal(true),
  duplicate: z.boolean(),
});

export const BillingPageResponse = z.object({ ok: z.boolean(), message: z.string() });

export const NodeView = z.object({
  id: z.string(),
  region: z.string(),
  state: z.enum(['active', 'draining', 'revoked', 'removed']).describe('active: takes new sessions; draining: keeps its sessions, takes none.'),
  public_key: z.string(),
  endpoint: z.string(),
  pool4: z.string(),
  pool6: z.string().nullable(),
  interface_addresses: z.array(z.string()).describe("The node's own addresses inside its pools, with their prefixes (for its TUN)."),
  last_heartbeat_at: z.string(),
});

export const EnrollNodeResponse = z.object({
  node: NodeView,
  credential: z.string().describe('The node credential (tbn_...): shown once; the node keeps it 0600 and sends it as a bearer token.'),
});

export const NodeUsageResponse = z.object({
  acked_seq: z.number().int().describe('Applied up to this sequence: the node may forget counters reported up to here.'),
  applied: z.boolean().describe('false: a retry of a report already applied (nothing counted twice).'),
});

const WgKey = z.string().describe('A WireGuard key, base64 of 32 bytes.');

export const ChannelPeer = z.object({
  publicKey: WgKey.describe("The client's WireGuard public key."),
  allowedIps: z.array(z.string()).describe("The session's host routes (10.64.x.y/32, fd…/128): the peer's allowed IPs on the node."),
  sessionId: z.string(),
  presharedKey: WgKey.optional().describe('The pre-shared key of the peer, when it has one.'),
});

/** A peer change's random id (store/node-peers.ts, migration 6): 16 lowercase hex digits. */
export const CHANGE_ID = /^[0-9a-f]{16}$/;

// Optional when read: a control plane of an earlier release sends none (its nodes then resume by revision alone).
const ChangeIdField = z
  .string()
  .regex(CHANGE_ID)
  .nullable()
  .optional()
  .describe('The random id of the change that made this revision (null: revision 0, or a change logged before change ids): sent back with the revision (X-TB-Change-Id) when resuming, so a revision of another database is not taken for this one.');

export const NodePeersResponse = z.object({
  revision: z.number().int().nonnegative().describe('The revision of this set: the number of the last change applied (0: none yet).'),
  changeId: ChangeIdField,
  peers: z.array(ChannelPeer),
});

export const PeerChangeEvent = z.union([
  z.object({ op: z.literal('add'), peer: ChannelPeer, changeId: ChangeIdField }),
  z.object({ op: z.literal('remove'), publicKey: WgKey, changeId: ChangeIdField }),
]);

export const PeerStreamQuery = z.strictObject({
  since: z.string().regex(/^\d{1,15}$/, 'must be a non-negative integer').optional().describe('Resume after this revision (the Last-Event-ID header wins when both are given).'),
});

export type RegionViewT = z.infer<typeof RegionView>;
export type SessionViewT = z.infer<typeof SessionView>;
export type CreatedSessionViewT = z.infer<typeof CreatedSessionView>;
export type UsageResponseT = z.infer<typeof UsageResponse>;
export type IpAttributionResponseT = z.infer<typeof IpAttributionResponse>;
export type NodeViewT = z.infer<typeof NodeView>;
