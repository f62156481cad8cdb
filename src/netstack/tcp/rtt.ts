/**
 * The retransmission timeout (RFC 6298): SRTT and RTTVAR from samples taken
 * on segments that were not retransmitted (Karn's algorithm, §3), exponential
 * backoff on expiry (§5.5). Milliseconds throughout.
 */
/** §2.1: before any sample, RTO = 1 s. */
export const INITIAL_RTO = 1000;
/** §2.4 allows a minimum below 1 s; Linux uses 200 ms, which keeps recovery from stalling on a fast link. */
export const MIN_RTO = 200;
/** §2.5: a maximum of at least 60 s. */
export const MAX_RTO = 60_000;
/** Clock granularity G of §2.2-2.3: the stack is ticked with millisecond resolution. */
const G = 1;

export class RttEstimator {
  srtt = 0;
  rttvar = 0;
  private base = INITIAL_RTO;
  private backoffs = 0;
  hasSample = false;

  constructor(private readonly minRto = MIN_RTO) {}

  /** The current RTO including backoff. */
  rto(): number {
    return Math.min(MAX_RTO, this.base * 2 ** this.backoffs);
  }

  /** A round-trip measurement R (§2.2, §2.3). Also ends any backoff (§5.7 allows resetting once a sample arrives). */
  sample(r: number): void {
    if (r < 0) return;
    if (!this.hasSample) {
      this.srtt = r;
      this.rttvar = r / 2;
      this.hasSample = true;
    } else {
      // alpha = 1/8, beta = 1/4 (§2.3), RTTVAR first with the old SRTT.
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    this.base = Math.max(this.minRto, this.srtt + Math.max(G, 4 * this.rttvar));
    this.backoffs = 0;
  }

  /** §5.5: the timer expired; double the RTO (bounded by MAX_RTO). */
  backoff(): void {
    if (this.rto() < MAX_RTO) this.backoffs++;
  }

  get backoffCount(): number {
    return this.backoffs;
  }
}
