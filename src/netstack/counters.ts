/**
 * Why the stack drops a packet: one closed set of reasons (STYLE.md §5),
 * each counted. Network input never throws; it lands in one of these.
 */
export const STACK_DROP_REASONS = [
  'malformed-ip',
  'bad-checksum',
  'fragment',
  'not-for-us',
  'unsupported-protocol',
  'malformed-icmp',
  'malformed-udp',
  'malformed-tcp',
  'icmp-rate-limited',
  'udp-no-socket',
  'udp-queue-full',
  'tcp-no-connection',
  'tcp-backlog-full',
  'tcp-out-of-window',
  'tcp-reassembly-full',
  'tcp-syn-held',
  'output-full',
] as const;

export type DropReason = (typeof STACK_DROP_REASONS)[number];

export type DropCounters = Record<DropReason, number>;

export function newDropCounters(): DropCounters {
  return Object.fromEntries(STACK_DROP_REASONS.map((r) => [r, 0])) as DropCounters;
}
