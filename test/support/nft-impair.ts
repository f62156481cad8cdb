/**
 * Loss and duplication in the kernel, for namespaces whose kernel has no
 * sch_netem (`tc qdisc add … netem` answers "Specified qdisc kind is unknown"
 * on this machine's kernel, which has no modules at all): an nftables netdev
 * table on the namespace's loopback, where a userspace WireGuard peer and the
 * tunnel's UDP socket exchange their datagrams.
 *
 *   loss:        udp … numgen random mod 100 < N drop              (nft(8) "NUMGEN EXPRESSION")
 *   duplication: udp … numgen random mod 100 < N dup to "lo"        (nft(8) "DUP STATEMENT", netdev family)
 *
 * Every packet on lo passes the ingress hook once; a duplicate is marked
 * before it is cloned, so the copy that comes back through lo is let through
 * instead of being duplicated again. Only UDP to or from `port` is touched.
 * Reordering and delay have no such statement (nftables holds no packets):
 * the tests keep test/support/impaired-bind.ts for those.
 */
import type { Netns } from './netns.js';

export interface KernelImpairment {
  /** Percent of datagrams dropped, 0..100. */
  lossPercent?: number;
  /** Percent of datagrams sent twice, 0..100. */
  duplicatePercent?: number;
  /** Which datagrams: toward `port` ("to"), from it ("from"), or both ways (default). */
  direction?: 'to' | 'from' | 'both';
}

const TABLE = 'tbimpair';
const MARK = '0x7462';

/** Replaces the namespace's impairment table (null removes it). Throws when nft rejects the rules. */
export function impairKernelLink(ns: Netns, port: number, imp: KernelImpairment | null): void {
  ns.try('nft', ['delete', 'table', 'netdev', TABLE]);
  if (!imp) return;
  const dir = imp.direction ?? 'both';
  const matches = [...(dir !== 'from' ? [`udp dport ${port}`] : []), ...(dir !== 'to' ? [`udp sport ${port}`] : [])];
  const rules = [`meta mark ${MARK} accept`];
  for (const m of matches) {
    if (imp.lossPercent) rules.push(`${m} numgen random mod 100 < ${imp.lossPercent} counter drop`);
    if (imp.duplicatePercent) rules.push(`${m} numgen random mod 100 < ${imp.duplicatePercent} meta mark set ${MARK} dup to "lo" counter`);
  }
  const text = [`table netdev ${TABLE} {`, '  chain ingress {', '    type filter hook ingress device "lo" priority 0; policy accept;', ...rules.map((r) => `    ${r}`), '  }', '}', ''].join('\n');
  ns.run('nft', ['-f', '-'], { input: text });
}

/** Packets the impairment rules dropped and duplicated so far. */
export function kernelImpairmentCounts(ns: Netns): { dropped: number; duplicated: number } {
  const r = ns.try('nft', ['list', 'table', 'netdev', TABLE]);
  let dropped = 0;
  let duplicated = 0;
  for (const line of r.stdout.split('\n')) {
    const m = /counter packets (\d+)/.exec(line);
    if (!m) continue;
    if (line.includes(' drop')) dropped += Number(m[1]);
    else if (line.includes('dup to')) duplicated += Number(m[1]);
  }
  return { dropped, duplicated };
}
