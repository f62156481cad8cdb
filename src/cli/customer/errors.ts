/**
 * The customer CLI's two failure kinds: ApiError (the API answered with an
 * error: its status, its `{"error"}` message, Retry-After) and CliError
 * (something the person can act on locally). Both become one line on stderr,
 * an optional hint line, and exit status 1.
 */
import { defaultControlConfig } from '../../control/config.js';

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly retryAfterSeconds: number | null,
  ) {
    super(message);
  }
}

export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** "45 s", "12 min", "3 h 5 min", "4 d 2 h". */
export function humanDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 120) return `${m} min`;
  const h = Math.floor(s / 3600);
  if (h < 48) return `${h} h ${Math.round((s % 3600) / 60)} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** What the paid tier allows on a server with the default limits (docs/contract.md §5). */
export function paidTierSummary(): string {
  const p = defaultControlConfig().tiers.paid;
  const quota = p.quotaBytes === null ? 'no data cap' : `${p.quotaBytes} bytes a month`;
  return `the paid tier allows ${p.maxSessions} active sessions, every region and ${quota} (server defaults): tunnelbyte upgrade`;
}

/** The lines printed for a failure: the message, then hints a person can act on. */
export function describeError(e: ApiError | CliError, ctx: { tokenSource?: 'TB_KEY' | 'file' | null; now?: number } = {}): string[] {
  const lines = [`tunnelbyte: ${e.message}`];
  if (e instanceof CliError) {
    if (e.hint) lines.push(e.hint);
    return lines;
  }
  if (e.status === 429 && e.retryAfterSeconds !== null) {
    const at = new Date((ctx.now ?? Date.now()) + e.retryAfterSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    lines.push(`retry in ${humanDuration(e.retryAfterSeconds)} (after ${at})`);
  } else if (e.status === 401) {
    if (ctx.tokenSource === 'TB_KEY') lines.push('the token comes from TB_KEY; unset it to use the cached one, or set a valid one');
    else if (/anonymous token/.test(e.message)) lines.push('anonymous tokens work only on the machine that signed up; on another machine run tunnelbyte signup, or tunnelbyte login with a paid account');
    else if (/bearer token/.test(e.message)) lines.push('run tunnelbyte signup (free, this machine) or tunnelbyte login (paid account)');
  } else if (e.status === 403) {
    if (/login is for paid/.test(e.message)) lines.push('finish the payment first: tunnelbyte upgrade --wait');
    else if (/anonymous tier|for paid accounts/.test(e.message)) lines.push(paidTierSummary());
  } else if (e.status === 503 && e.retryAfterSeconds !== null) {
    lines.push(`retry in ${humanDuration(e.retryAfterSeconds)}`);
  }
  return lines;
}
