/**
 * The control plane's one closed set of domain errors. Services throw these;
 * the HTTP layer maps each kind to its status (http/error-middleware.ts) and
 * the admin CLI prints the message. Anything else is a bug and becomes a 500
 * whose message is never shown to the client.
 */
export type ControlErrorKind =
  | 'invalid' // 400: bad input (bad region, malformed IP or key, wrong types, unknown fields)
  | 'unauthorized' // 401: missing or invalid token, wrong machine
  | 'forbidden' // 403: above the caller's tier
  | 'not_found' // 404
  | 'conflict' // 409: e.g. an email that another account uses
  | 'too_large' // 413: request body over the limit
  | 'rate_limited' // 429 with Retry-After: request caps
  | 'quota_exhausted' // 429 with Retry-After: data quota of the period used up
  | 'unavailable'; // 503: no active node in the region, billing not configured

export class ControlError extends Error {
  override readonly name = 'ControlError';
  constructor(
    readonly kind: ControlErrorKind,
    message: string,
    /** For rate_limited / quota_exhausted / unavailable: seconds until a retry can succeed. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export const invalid = (msg: string): ControlError => new ControlError('invalid', msg);
export const unauthorized = (msg: string): ControlError => new ControlError('unauthorized', msg);
export const forbidden = (msg: string): ControlError => new ControlError('forbidden', msg);
export const notFound = (msg: string): ControlError => new ControlError('not_found', msg);
export const conflict = (msg: string): ControlError => new ControlError('conflict', msg);
export const unavailable = (msg: string): ControlError => new ControlError('unavailable', msg);
