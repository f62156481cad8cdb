/**
 * How large a connection's byte ring grows (send buffer and reassembly
 * buffer alike): rings start empty (an idle connection holds none), then
 * double from 1 KiB until `need` fits, never past the connection's `limit`
 * (the per-connection buffer bound).
 */
export function ringCapacity(current: number, need: number, limit: number): number {
  let cap = Math.max(current, 1024);
  while (cap < need) cap *= 2;
  return Math.min(cap, limit);
}
