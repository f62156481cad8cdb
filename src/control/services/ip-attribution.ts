/**
 * IP attribution (GET /v1/ip/{addr}): was this address an exit address of
 * this service at a time (now, or `?at=`), and of which region and node.
 * Answers come only from the nodes' exit-address history; nothing about any
 * user is stored or returned.
 */
import { invalid } from '../errors.js';
import { normalizeIp } from '../ip-address.js';
import type { ServiceContext } from './context.js';

export interface Attribution {
  address: string;
  at: number;
  exit: boolean;
  regionId: string | null;
  nodeId: string | null;
  firstSeenAt: number | null;
  lastSeenAt: number | null;
}

/** Parses an ISO 8601 date or date-time (`2025-01-31`, `2025-01-31T12:00:00Z`, with offset); null when malformed. */
export function parseIsoTime(s: string): number | null {
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/i.test(s)) return null;
  const ms = Date.parse(s.length === 10 ? `${s}T00:00:00Z` : s);
  return Number.isNaN(ms) ? null : ms;
}

export class IpAttributionService {
  constructor(private readonly ctx: ServiceContext) {}

  lookup(addressText: string, atText?: string): Attribution {
    const address = normalizeIp(addressText);
    if (!address) throw invalid(`malformed IP address ${JSON.stringify(addressText)}`);
    let at = this.ctx.clock.wallMs();
    if (atText !== undefined) {
      const t = parseIsoTime(atText);
      if (t === null) throw invalid('at must be an ISO 8601 time, e.g. 2025-01-31T12:00:00Z');
      at = t;
    }
    const [hit] = this.ctx.store.nodes.exitAddressAt(address, at, this.ctx.config.nodeStaleAfterMs);
    return {
      address,
      at,
      exit: hit !== undefined,
      regionId: hit?.regionId ?? null,
      nodeId: hit?.nodeId ?? null,
      firstSeenAt: hit?.firstSeenAt ?? null,
      lastSeenAt: hit?.lastSeenAt ?? null,
    };
  }
}
