/**
 * Regions and the nodes that serve them. A region is active (listed by
 * GET /v1/regions, usable for sessions) while at least one of its nodes has
 * sent a heartbeat within `nodeStaleAfterMs`.
 */
import { invalid } from '../errors.js';
import type { Region, RegionWithNodes } from '../store/regions.js';
import type { ServiceContext } from './context.js';

/** Region ids are short lower-case slugs: `local`, `eu-west`, `nyc1`. */
export const REGION_ID_RE = /^[a-z0-9][a-z0-9-]{0,31}$/;

export class RegionService {
  constructor(private readonly ctx: ServiceContext) {}

  /** Creates the region, or updates the name and paid-only flag of an existing one. */
  add(id: string, opts: { name?: string | undefined; paidOnly?: boolean | undefined } = {}): Region {
    if (!REGION_ID_RE.test(id)) throw invalid('region id must be 1-32 characters of a-z, 0-9 and -, starting with a letter or digit');
    const name = (opts.name ?? id).trim();
    if (name.length === 0 || name.length > 64) throw invalid('region name must be 1-64 characters');
    return this.ctx.store.regions.upsert({ id, name, paidOnly: opts.paidOnly ?? false, now: this.ctx.clock.wallMs() });
  }

  get(id: string): Region | null {
    return this.ctx.store.regions.get(id);
  }

  /** Every region with its count of active nodes (operators). */
  listAll(): RegionWithNodes[] {
    return this.ctx.store.regions.listWithActiveNodes(this.heartbeatCutoff());
  }

  /** The regions clients can use now. */
  listActive(): RegionWithNodes[] {
    return this.listAll().filter((r) => r.activeNodes > 0);
  }

  heartbeatCutoff(): number {
    return this.ctx.clock.wallMs() - this.ctx.config.nodeStaleAfterMs;
  }
}
