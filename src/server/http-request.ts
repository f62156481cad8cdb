/**
 * One HTTP(S) request with node:http/https, for the clients of the /v1 API
 * (the customer CLI, a joined exit node talking to its control plane). Not fetch:
 * Node 20's fetch cannot be given a CA for one request, and `--ca FILE` /
 * `TB_CA` must trust an exit's own certificate authority (a self-signed
 * certificate) while still verifying it — never turning verification off.
 * Without a CA the system's trust store is used, as with fetch.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface HttpAnswer {
  status: number;
  header(name: string): string | null;
  text: string;
}

export interface HttpOptions {
  method: string;
  headers: Record<string, string>;
  body?: string;
  timeoutMs: number;
  /** PEM of the certificate authorities to trust instead of the system's. */
  ca?: Buffer;
}

/**
 * The API's base URL as an operator writes it: http or https, any path
 * prefix (a reverse proxy may mount the API below one), without a trailing
 * slash and without a trailing `/v1` — the API document gives the base URL
 * as `https://HOST/v1` while every request path starts with `/v1`, so both
 * spellings must reach the same routes. A malformed one is a RangeError.
 */
export function apiBaseUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new RangeError(`not a URL: ${raw}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new RangeError(`the API URL must be http or https: ${raw}`);
  if (u.search || u.hash) throw new RangeError(`the API URL takes no query or fragment: ${raw}`);
  return u.origin + u.pathname.replace(/\/+$/, '').replace(/\/v1$/, '').replace(/\/+$/, '');
}

/** Errors carry Node's `code` (ECONNREFUSED, DEPTH_ZERO_SELF_SIGNED_CERT, …) or name TimeoutError. */
export function send(url: string, o: HttpOptions): Promise<HttpAnswer> {
  const u = new URL(url);
  const secure = u.protocol === 'https:';
  return new Promise<HttpAnswer>((resolve, reject) => {
    const headers = { ...o.headers, ...(o.body !== undefined ? { 'content-length': String(Buffer.byteLength(o.body)) } : {}) };
    const options = { method: o.method, headers, ...(secure && o.ca ? { ca: o.ca } : {}) };
    const req = (secure ? httpsRequest : httpRequest)(u, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode ?? 0,
          header: (name) => {
            const v = res.headers[name.toLowerCase()];
            return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
          },
          text,
        });
      });
      res.on('error', reject);
    });
    req.setTimeout(o.timeoutMs, () => {
      const e = new Error('timed out');
      e.name = 'TimeoutError';
      req.destroy(e);
    });
    req.on('error', reject);
    req.end(o.body);
  });
}
