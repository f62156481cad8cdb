/**
 * Exit nodes register themselves (the embedded node of `tunnelbyte serve`
 * does so at start; a node on another machine through node-enrollment.ts)
 * and then send heartbeats. Operators drain, revoke or remove them. Registration is keyed by the
 * node's WireGuard public key, so a restarted server with the same key is
 * the same node, keeps its id, its IPv6 pool and its sessions.
 *
 * Address plan of a node's pools: offset 0 is the network address, offset 1
 * the exit's own tunnel address (`interfaceAddresses`), offsets from 2 to
 * the last-but-one of the IPv4 pool are handed to sessions, each session's
 * IPv4 and IPv6 address sharing one offset.
 */
import { randomBytes } from 'node:crypto';
import { invalid, notFound } from '../errors.js';
import { newId } from '../ids.js';
import { addressAt, cidrSize, formatCidr, normalizeIp, parseCidr, type Cidr } from '../ip-address.js';
import type { NodeRecord, NodeState } from '../store/nodes.js';
import { isWireGuardKey } from '../../crypto/wireguard-keys.js';
import { recordAudit, type Actor } from './audit.js';
import type { ServiceContext } from './context.js';
import { REGION_ID_RE } from './regions.js';

export interface NodeRegistrationInput {
  /** The region the node serves; created (free, named after its id) if it does not exist. */
  regionId: string;
  /** The node's WireGuard public key. */
  publicKey: string;
  /** HOST:PORT clients connect to ([v6]:port for IPv6). */
  endpoint: string;
  /** The public addresses the node's traffic leaves from (what /v1/ip attributes). */
  exitAddresses: string[];
  /** IPv4 pool for client addresses, e.g. 10.64.0.0/10. */
  pool4: string;
  /** IPv6 pool (a /64 or larger); null or omitted: keep the node's existing one, or pick a random ULA /64. */
  pool6?: string | null | undefined;
}

export interface NodeRegistration {
  node: NodeRecord;
  /** The exit's own addresses inside the pools, with the pools' prefixes (for the TUN interface). */
  interfaceAddresses: string[];
}

export const FIRST_CLIENT_OFFSET = 2;

/** The largest offset a client may get in this IPv4 pool (the broadcast address stays free). */
export function lastClientOffset(pool4: Cidr): number {
  const size = cidrSize(pool4);
  const max = size - 2n;
  return Number(max > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : max);
}

/** A random unique-local /64 (RFC 4193: fd00::/8, 40-bit global id, subnet 0). */
export function randomUla64(): string {
  const b = randomBytes(5);
  const hex = 'fd' + b.toString('hex');
  return `${hex.slice(0, 4)}:${hex.slice(4, 8)}:${hex.slice(8, 12)}::/64`;
}

function checkPool(text: string, version: 4 | 6): Cidr {
  let c: Cidr;
  try {
    c = parseCidr(text);
  } catch (e) {
    throw invalid((e as Error).message);
  }
  if (c.version !== version) throw invalid(`${text} is not an IPv${version} pool`);
  if (version === 4 && c.prefix > 30) throw invalid(`IPv4 pool ${text} is too small (at most /30)`);
  if (version === 6 && c.prefix > 120) throw invalid(`IPv6 pool ${text} is too small (at most /120)`);
  return c;
}

/** HOST:PORT with an IPv6 host in brackets; HOST may be a name. */
export function checkEndpoint(endpoint: string): void {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(endpoint);
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535) throw invalid(`endpoint ${JSON.stringify(endpoint)} must be HOST:PORT ([IPv6]:PORT)`);
}

export class NodeService {
  constructor(private readonly ctx: ServiceContext) {}

  /** Registers (or re-registers) a node and records a heartbeat with its exit addresses. */
  register(input: NodeRegistrationInput): NodeRegistration {
    if (!REGION_ID_RE.test(input.regionId)) throw invalid(`bad region id ${JSON.stringify(input.regionId)}`);
    if (!isWireGuardKey(input.publicKey)) throw invalid('node public key is not a WireGuard key');
    checkEndpoint(input.endpoint);
    const pool4 = checkPool(input.pool4, 4);
    const { store, clock } = this.ctx;
    const node = store.transaction(() => {
      const now = clock.wallMs();
      store.regions.ensure(input.regionId, now);
      const existing = store.nodes.getByPublicKey(input.publicKey);
      const pool6 = formatCidr(checkPool(input.pool6 ?? existing?.pool6 ?? randomUla64(), 6));
      const fields = { regionId: input.regionId, endpoint: input.endpoint, pool4: formatCidr(pool4), pool6, now };
      const id = existing?.id ?? newId('nod');
      if (existing) store.nodes.update({ id, ...fields });
      else store.nodes.insert({ id, publicKey: input.publicKey, ...fields });
      this.recordExitAddresses(id, input.exitAddresses, now);
      return store.nodes.get(id)!;
    });
    return { node, interfaceAddresses: interfaceAddresses(node) };
  }

  /** The node is alive and leaves the internet from these addresses now. */
  heartbeat(nodeId: string, exitAddresses: string[]): void {
    const { store, clock } = this.ctx;
    store.transaction(() => {
      const now = clock.wallMs();
      store.nodes.heartbeat(nodeId, now);
      this.recordExitAddresses(nodeId, exitAddresses, now);
    });
  }

  get(nodeId: string): NodeRecord | null {
    return this.ctx.store.nodes.get(nodeId);
  }

  list(): NodeRecord[] {
    return this.ctx.store.nodes.list();
  }

  /** No new sessions on this node; its existing ones stay until they close or expire. */
  drain(nodeId: string, by: Actor): NodeRecord {
    return this.changeState(nodeId, 'draining', by);
  }

  /**
   * Refuses the node's credential from the next request on (the hash is
   * cleared in the same write) and places no new sessions on it.
   */
  revoke(nodeId: string, by: Actor): NodeRecord {
    return this.changeState(nodeId, 'revoked', by);
  }

  /** Takes the node out of the fleet: credential refused, its active sessions closed (reason admin). */
  remove(nodeId: string, by: Actor): { node: NodeRecord; closedSessionIds: string[] } {
    const { store, clock } = this.ctx;
    const closed = store.transaction(() => {
      const now = clock.wallMs();
      const ids = store.sessions.listActiveByNode(nodeId).filter((s) => store.sessions.end(s.id, 'closed', 'admin', now)).map((s) => s.id);
      this.changeState(nodeId, 'removed', by, { closed_sessions: ids }); // an unknown node throws: the transaction undoes nothing
      return ids;
    });
    if (closed.length > 0) this.ctx.peers.nodeChanged(nodeId);
    return { node: store.nodes.get(nodeId)!, closedSessionIds: closed };
  }

  private changeState(nodeId: string, state: NodeState, by: Actor, detail: Record<string, unknown> = {}): NodeRecord {
    const { store } = this.ctx;
    return store.transaction(() => {
      const node = store.nodes.get(nodeId);
      if (!node) throw notFound(`no node ${nodeId}`);
      if (node.state === 'removed' && state !== 'removed') throw invalid(`node ${nodeId} was removed`);
      store.nodes.setState(nodeId, state);
      if (state === 'revoked' || state === 'removed') store.nodes.setCredential(nodeId, null);
      recordAudit(this.ctx, by, `admin.node.${state}`, { subject: nodeId, detail: { from: node.state, ...detail } });
      return store.nodes.get(nodeId)!;
    });
  }

  private recordExitAddresses(nodeId: string, addresses: string[], now: number): void {
    for (const a of addresses) {
      const canon = normalizeIp(a);
      if (!canon) throw invalid(`exit address ${JSON.stringify(a)} is not an IP address`);
      this.ctx.store.nodes.sawExitAddress(nodeId, canon, now, this.ctx.config.nodeStaleAfterMs);
    }
  }
}

/** The exit's own tunnel addresses: offset 1 of each pool, with the pool's prefix. */
export function interfaceAddresses(node: Pick<NodeRecord, 'pool4' | 'pool6'>): string[] {
  const out: string[] = [];
  const p4 = parseCidr(node.pool4);
  out.push(`${addressAt(p4, 1)}/${p4.prefix}`);
  if (node.pool6) {
    const p6 = parseCidr(node.pool6);
    out.push(`${addressAt(p6, 1)}/${p6.prefix}`);
  }
  return out;
}
