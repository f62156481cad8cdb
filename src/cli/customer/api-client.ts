/**
 * The /v1 API as the CLI calls it: node:http(s) (server/http-request.ts; certificates
 * verified, against `--ca FILE` / TB_CA when given), JSON in and out, the token
 * as a bearer and the machine fingerprint as X-TB-Fingerprint on every
 * request (the server needs it for anonymous tokens; it is a hash, see
 * local-files.ts). An error answer becomes an ApiError carrying the API's own
 * message; a server that cannot be reached becomes a CliError that says so.
 */
import type {
  CreatedSessionViewT,
  IpAttributionResponseT,
  RegionViewT,
  RotatedTokenResponseT,
  SessionViewT,
  UsageResponseT,
} from '../../control/http/schemas.js';
import { ApiError, CliError } from './errors.js';
import { apiBaseUrl as baseUrlOf, send, type HttpAnswer } from '../../server/http-request.js';
import type { TokenSource } from './local-files.js';

export const DEFAULT_API = 'http://127.0.0.1:8080';

export interface AuthResponse {
  token: string;
  account_id: string;
  tier: 'anonymous' | 'paid';
  email?: string;
  checkout_url?: string | null;
}

export interface ApiClientOptions {
  base: string;
  fingerprint: string;
  /** Called when a request needs the token; throws the "no token" error when there is none. */
  token?: () => { token: string; source: TokenSource } | null;
  timeoutMs?: number;
  /** PEM of the CA to trust for an https API (--ca FILE / TB_CA). */
  ca?: Buffer;
}

export class ApiClient {
  readonly base: string;
  /** Where the token of the last authenticated request came from (for error hints). */
  tokenSource: TokenSource | null = null;

  constructor(private readonly opts: ApiClientOptions) {
    this.base = apiBaseUrl(opts.base);
  }

  /** The X-TB-Fingerprint value (what signup binds the token to). */
  get fingerprintValue(): string {
    return this.opts.fingerprint;
  }

  async request<T>(method: string, path: string, o: { body?: unknown; auth?: boolean } = {}): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json', 'x-tb-fingerprint': this.opts.fingerprint };
    if (o.auth) {
      const t = this.opts.token?.() ?? null;
      if (!t) throw new CliError('not signed up: no token', 'run tunnelbyte signup (free, bound to this machine) or tunnelbyte login (paid account), or set TB_KEY');
      headers.authorization = `Bearer ${t.token}`;
      this.tokenSource = t.source;
    }
    if (o.body !== undefined) headers['content-type'] = 'application/json';
    let res: HttpAnswer;
    try {
      res = await send(this.base + path, {
        method,
        headers,
        body: o.body === undefined ? undefined : JSON.stringify(o.body),
        timeoutMs: this.opts.timeoutMs ?? 30_000,
        ...(this.opts.ca ? { ca: this.opts.ca } : {}),
      });
    } catch (e) {
      const reason = networkReason(e);
      if (/CERT|SELF_SIGNED|ERR_TLS|UNABLE_TO_VERIFY|HOSTNAME/i.test(reason)) {
        throw new CliError(`the certificate of ${this.base} is not trusted (${reason})`, 'pass --ca FILE (or set TB_CA) with the PEM of the CA that signed the exit\'s certificate');
      }
      throw new CliError(`cannot reach the tunnelbyte API at ${this.base} (${reason})`, 'check --api / TB_API and that the server is running');
    }
    const text = res.text;
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = undefined;
    }
    const apiMessage = typeof (json as { error?: unknown } | undefined)?.error === 'string' ? (json as { error: string }).error : null;
    // Every path this client asks for is a route of the API, so a 404 that does not come from one of
    // its handlers ("no such session") — the router's bare "not found", or a page that is not the API's
    // JSON — means the base URL points somewhere else.
    if (res.status === 404 && (apiMessage === null || apiMessage === 'not found')) {
      throw new CliError(`${method} ${this.base}${path} answered 404 not found: no tunnelbyte API route there`, BASE_URL_HINT);
    }
    if (json === undefined) throw new CliError(`unexpected answer from ${this.base}${path} (HTTP ${res.status}, not JSON); is --api the tunnelbyte API?`, BASE_URL_HINT);
    if (res.status < 200 || res.status > 299) {
      const msg = apiMessage ?? `HTTP ${res.status}`;
      const retryAfter = res.header('retry-after');
      const ra = Number(retryAfter);
      throw new ApiError(res.status, msg, retryAfter !== null && Number.isFinite(ra) ? ra : null);
    }
    return json as T;
  }

  signup = (fingerprint: string) => this.request<AuthResponse>('POST', '/v1/signup', { body: { fingerprint } });
  login = (email: string, password: string) => this.request<AuthResponse>('POST', '/v1/login', { body: { email, password } });
  upgrade = (email: string, password: string) => this.request<AuthResponse>('POST', '/v1/upgrade', { body: { email, password }, auth: true });
  rotateToken = () => this.request<RotatedTokenResponseT>('POST', '/v1/token/rotate', { auth: true });
  revokeToken = () => this.request<{ revoked: true; token_id: string }>('DELETE', '/v1/token', { auth: true });
  regions = () => this.request<{ regions: RegionViewT[] }>('GET', '/v1/regions');
  usage = () => this.request<UsageResponseT>('GET', '/v1/usage', { auth: true });
  sessions = (all: boolean) => this.request<{ sessions: SessionViewT[] }>('GET', `/v1/sessions${all ? '?state=all' : ''}`, { auth: true });
  session = (id: string) => this.request<SessionViewT>('GET', `/v1/sessions/${encodeURIComponent(id)}`, { auth: true });
  createSession = (region: string, publicKey: string) =>
    this.request<CreatedSessionViewT>('POST', '/v1/sessions', { body: { region, public_key: publicKey }, auth: true });
  closeSession = (id: string) => this.request<SessionViewT>('DELETE', `/v1/sessions/${encodeURIComponent(id)}`, { auth: true });
  ip = (addr: string, at?: string) =>
    this.request<IpAttributionResponseT>('GET', `/v1/ip/${encodeURIComponent(addr)}${at ? `?at=${encodeURIComponent(at)}` : ''}`);
}

const BASE_URL_HINT = '--api / TB_API is the server\'s base URL, http(s)://HOST[:PORT] (…/v1 may be included or left out), e.g. http://exit.example:8080';

/** The API's base URL from `--api` / `TB_API` (server/http-request.ts says which spellings), or a CliError with the fix. */
export function apiBaseUrl(raw: string): string {
  try {
    return baseUrlOf(raw);
  } catch (e) {
    const message = (e as Error).message;
    if (message.startsWith('not a URL')) throw new CliError(message, 'pass --api http://HOST:PORT or set TB_API');
    throw new CliError(message, message.includes('query') ? BASE_URL_HINT : undefined);
  }
}

function networkReason(e: unknown): string {
  const err = e as Error & { code?: string; cause?: { code?: string; message?: string } };
  if (err.name === 'TimeoutError') return 'timed out';
  return err.code ?? err.cause?.code ?? err.cause?.message ?? err.message;
}
