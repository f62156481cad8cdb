/** Regions: an id clients ask for, a display name, and whether only the paid tier may use it. */
import type { Db } from './database.js';

export interface Region {
  id: string;
  name: string;
  paidOnly: boolean;
  createdAt: number;
}

export interface RegionWithNodes extends Region {
  /** Nodes in state active whose last heartbeat is at or after the cutoff given to the query. */
  activeNodes: number;
}

interface RegionRow {
  id: string;
  name: string;
  paid_only: 0 | 1;
  created_at: number;
}

const fromRow = (r: RegionRow): Region => ({ id: r.id, name: r.name, paidOnly: r.paid_only === 1, createdAt: r.created_at });

export type RegionRepository = ReturnType<typeof regionRepository>;

export function regionRepository(db: Db) {
  const upsert = db.prepare(
    `INSERT INTO regions (id, name, paid_only, created_at) VALUES (@id, @name, @paidOnly, @now)
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, paid_only = excluded.paid_only`,
  );
  const insertIfMissing = db.prepare(
    `INSERT INTO regions (id, name, paid_only, created_at) VALUES (?, ?, 0, ?) ON CONFLICT (id) DO NOTHING`,
  );
  const byId = db.prepare(`SELECT * FROM regions WHERE id = ?`);
  const withNodes = db.prepare(
    `SELECT r.*, (SELECT COUNT(*) FROM nodes n WHERE n.region_id = r.id AND n.last_heartbeat_at >= ? AND n.state = 'active') AS active_nodes
     FROM regions r ORDER BY r.id`,
  );
  return {
    /** Creates the region or replaces its name and paid-only flag. */
    upsert(r: { id: string; name: string; paidOnly: boolean; now: number }): Region {
      upsert.run({ id: r.id, name: r.name, paidOnly: r.paidOnly ? 1 : 0, now: r.now });
      return fromRow(byId.get(r.id) as RegionRow);
    },
    /** Creates a free region named after its id unless it exists. */
    ensure(id: string, now: number): void {
      insertIfMissing.run(id, id, now);
    },
    get(id: string): Region | null {
      const r = byId.get(id) as RegionRow | undefined;
      return r ? fromRow(r) : null;
    },
    listWithActiveNodes(heartbeatCutoff: number): RegionWithNodes[] {
      return (withNodes.all(heartbeatCutoff) as (RegionRow & { active_nodes: number })[]).map((r) => ({
        ...fromRow(r),
        activeNodes: r.active_nodes,
      }));
    },
  };
}
