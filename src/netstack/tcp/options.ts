/**
 * Per-connection limits and timer settings, with the defaults a host like
 * Linux uses where an RFC leaves the choice open. All times in milliseconds.
 */
export interface TcpOptions {
  /** Send buffer bound in bytes (what write() accepts before backpressure). */
  sendBuffer: number;
  /** Receive buffer bound in bytes: the largest window advertised. */
  receiveBuffer: number;
  /** RFC 9293 §3.8.6.3: ACK at least every second full segment, and within this delay (Linux: 40 ms; the RFC's bound is 500 ms). */
  delayedAckMs: number;
  /** RFC 6298 §2.4 minimum RTO. */
  minRtoMs: number;
  /** SYN retransmissions before an active open fails with ETIMEDOUT (Linux tcp_syn_retries = 6). */
  synRetries: number;
  /** SYN-ACK retransmissions before a half-open connection is dropped (Linux tcp_synack_retries = 5). */
  synAckRetries: number;
  /** Retransmissions of data before the connection fails (RFC 9293 §3.8.3 R2; Linux tcp_retries2 = 15). */
  dataRetries: number;
  /** Maximum segment lifetime; TIME-WAIT lasts 2 MSL (RFC 9293 §3.4.2). Linux waits 60 s in all. */
  mslMs: number;
  /** How long FIN-WAIT-2 waits for the peer's FIN after the application closed (Linux tcp_fin_timeout). */
  finWait2Ms: number;
  /** Keepalive (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6): idle time before the first probe (default 2 h). */
  keepAliveIdleMs: number;
  keepAliveIntervalMs: number;
  keepAliveProbes: number;
}

export const DEFAULT_TCP_OPTIONS: TcpOptions = {
  sendBuffer: 1 << 20,
  receiveBuffer: 1 << 20,
  delayedAckMs: 40,
  minRtoMs: 200,
  synRetries: 6,
  synAckRetries: 5,
  dataRetries: 15,
  mslMs: 30_000,
  finWait2Ms: 60_000,
  keepAliveIdleMs: 7_200_000,
  keepAliveIntervalMs: 75_000,
  keepAliveProbes: 9,
};

/** The smallest window-scale shift that lets a window of `bytes` be advertised (RFC 7323 §2.2). */
export function wscaleFor(bytes: number): number {
  let s = 0;
  while (s < 14 && 65535 * 2 ** s < bytes) s++;
  return s;
}
