/**
 * The parts of an HTTP proxy's input that Node's HTTP parser leaves to the
 * proxy (RFC 9112 §3.2 request targets, RFC 9110 §7.6.1 hop-by-hop fields,
 * RFC 9110 §11.7.1 Proxy-Authorization): pure functions that answer null for
 * anything malformed, never throw.
 */
import { isIP } from 'node:net';
import type { DialTarget } from './proxy-dial.js';

export interface ProxyTarget {
  target: DialTarget;
  port: number;
}

function hostTarget(host: string): DialTarget | null {
  if (host.startsWith('[') && host.endsWith(']')) {
    const v6 = host.slice(1, -1);
    return isIP(v6) === 6 ? { type: 'ip', host: v6 } : null;
  }
  if (isIP(host) === 4) return { type: 'ip', host };
  // RFC 1123 §2.1 host names: labels of letters, digits and hyphens (and '_', which real zones carry).
  if (host.length === 0 || host.length > 253 || !/^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$/.test(host) || host.includes('..')) return null;
  return { type: 'domain', host: host.replace(/\.$/, '') };
}

function portOf(s: string): number | null {
  if (!/^[0-9]{1,5}$/.test(s)) return null;
  const p = Number(s);
  return p >= 1 && p <= 65535 ? p : null;
}

/** RFC 9112 §3.2.3 authority-form (CONNECT's target): host ":" port, an IPv6 host in brackets. */
export function parseAuthority(s: string): ProxyTarget | null {
  const colon = s.lastIndexOf(':');
  if (colon <= 0) return null;
  const port = portOf(s.slice(colon + 1));
  const target = hostTarget(s.slice(0, colon));
  return port !== null && target ? { target, port } : null;
}

/** RFC 9112 §3.2.2 absolute-form: an http URI (a proxy gets no https URI: those come as CONNECT). */
export function parseAbsoluteUri(s: string): (ProxyTarget & { path: string; hostHeader: string }) | null {
  if (!/^http:\/\//i.test(s)) return null;
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return null;
  }
  if (u.username || u.password) return null;
  const port = u.port === '' ? 80 : portOf(u.port);
  const target = hostTarget(u.hostname);
  if (port === null || !target) return null;
  return { target, port, path: `${u.pathname}${u.search}`, hostHeader: u.host };
}

/** RFC 9110 §7.6.1: fields that belong to one connection, not to the message a proxy forwards. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/**
 * The end-to-end fields of a message, from Node's rawHeaders (name, value, name, value...):
 * hop-by-hop fields dropped, and every field the Connection header names ("a proxy or gateway
 * MUST ... remove any header or trailer field(s) ... listed in the Connection header field").
 */
export function endToEndHeaders(raw: readonly string[]): [string, string][] {
  const named = new Set<string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const n = raw[i]!.toLowerCase();
    if (n === 'connection' || n === 'proxy-connection') {
      for (const t of raw[i + 1]!.split(',')) named.add(t.trim().toLowerCase());
    }
  }
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const n = raw[i]!.toLowerCase();
    if (!HOP_BY_HOP.has(n) && !named.has(n)) out.push([raw[i]!, raw[i + 1]!]);
  }
  return out;
}

/** RFC 7617 Basic credentials of a Proxy-Authorization value; null if it is not one. */
export function parseBasicCredentials(value: string | undefined): { user: string; password: string } | null {
  if (!value) return null;
  const m = /^Basic[ ]+([A-Za-z0-9+/]+=*)[ ]*$/i.exec(value);
  if (!m) return null;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return null;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}
