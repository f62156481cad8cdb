/**
 * One HTTP(S) request with node:http/https, for the API client. Not fetch:
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
