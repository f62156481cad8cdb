/**
 * A stub resolver (RFC 1035 §4) that asks the config's DNS servers through
 * the tunnel over UDP: A and AAAA queries in parallel, each with a random ID
 * and source port (RFC 5452 §9), retried on the next server after a timeout,
 * answers accepted only from the server asked, with the ID and question
 * matching. Only what a client needs: no caching beyond the call, no EDNS,
 * CNAME chains followed inside one answer.
 */
import { randomInt } from 'node:crypto';
import { isIP } from 'node:net';
import { formatIPv4, formatIPv6 } from '../io/ip-address.js';

const TYPE_A = 1;
const TYPE_CNAME = 5;
const TYPE_AAAA = 28;
const CLASS_IN = 1;

export interface DnsTransport {
  /** Sends `query` to server:53 from a fresh UDP socket; resolves with the first reply from that server, or null after `timeoutMs`. */
  exchange(server: string, query: Uint8Array, timeoutMs: number): Promise<Buffer | null>;
}

export class DnsError extends Error {
  constructor(readonly code: 'ENOTFOUND' | 'ETIMEOUT' | 'ESERVFAIL' | 'EBADNAME' | 'ENODNS', name: string) {
    super(`${code === 'ENOTFOUND' ? 'getaddrinfo ENOTFOUND' : `queryA ${code}`} ${name}`);
    this.name = 'DnsError';
  }
}

/** Builds a recursive query for `name` of `type` (RFC 1035 §4.1). */
export function buildQuery(id: number, name: string, type: number): Uint8Array {
  const labels = name.replace(/\.$/, '').split('.');
  const len = 12 + labels.reduce((n, l) => n + 1 + Buffer.byteLength(l), 0) + 1 + 4;
  const q = Buffer.alloc(len);
  q.writeUInt16BE(id, 0);
  q.writeUInt16BE(0x0100, 2); // RD
  q.writeUInt16BE(1, 4); // QDCOUNT
  let o = 12;
  for (const l of labels) {
    const b = Buffer.from(l);
    if (b.length === 0 || b.length > 63) throw new DnsError('EBADNAME', name);
    q[o++] = b.length;
    b.copy(q, o);
    o += b.length;
  }
  q[o++] = 0;
  q.writeUInt16BE(type, o);
  q.writeUInt16BE(CLASS_IN, o + 2);
  return q;
}

/** Reads a (possibly compressed, §4.1.4) name at `off`; returns it and the offset after it in the original place. */
function readName(m: Buffer, off: number): { name: string; next: number } | null {
  const labels: string[] = [];
  let next = -1;
  for (let hops = 0; hops < 64; hops++) {
    if (off >= m.length) return null;
    const len = m[off]!;
    if (len === 0) {
      if (next < 0) next = off + 1;
      return { name: labels.join('.').toLowerCase(), next };
    }
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= m.length) return null;
      if (next < 0) next = off + 2;
      off = ((len & 0x3f) << 8) | m[off + 1]!;
      continue;
    }
    if (off + 1 + len > m.length) return null;
    labels.push(m.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
  }
  return null;
}

/** Addresses of `type` for `name` in a response to query `id`; null if the message is not that response. */
export function parseAnswer(m: Buffer, id: number, name: string, type: number): { rcode: number; addresses: string[] } | null {
  if (m.length < 12 || m.readUInt16BE(0) !== id || (m[2]! & 0x80) === 0) return null;
  const rcode = m[3]! & 0x0f;
  const qd = m.readUInt16BE(4);
  const an = m.readUInt16BE(6);
  let off = 12;
  const want = name.replace(/\.$/, '').toLowerCase();
  for (let i = 0; i < qd; i++) {
    const q = readName(m, off);
    if (!q || q.next + 4 > m.length) return null;
    if (i === 0 && (q.name !== want || m.readUInt16BE(q.next) !== type)) return null;
    off = q.next + 4;
  }
  const names = new Set([want]);
  const addresses: string[] = [];
  for (let i = 0; i < an; i++) {
    const r = readName(m, off);
    if (!r || r.next + 10 > m.length) return null;
    const rtype = m.readUInt16BE(r.next);
    const rdlen = m.readUInt16BE(r.next + 8);
    const rd = r.next + 10;
    if (rd + rdlen > m.length) return null;
    if (names.has(r.name)) {
      if (rtype === TYPE_CNAME) {
        const target = readName(m, rd);
        if (target) names.add(target.name);
      } else if (rtype === type && type === TYPE_A && rdlen === 4) addresses.push(formatIPv4(m.subarray(rd, rd + 4)));
      else if (rtype === type && type === TYPE_AAAA && rdlen === 16) addresses.push(formatIPv6(m.subarray(rd, rd + 16)));
    }
    off = rd + rdlen;
  }
  return { rcode, addresses };
}

/** IPv4 then IPv6 addresses of `name`, asked of `servers` in turn (2 s per try, 2 rounds). */
export async function resolveName(transport: DnsTransport, servers: string[], name: string, timeoutMs = 2000): Promise<string[]> {
  if (isIP(name)) return [name];
  if (servers.length === 0) throw new DnsError('ENODNS', name);
  if (name.length > 253 || !/^[A-Za-z0-9_.-]+$/.test(name)) throw new DnsError('EBADNAME', name);
  const one = async (type: number): Promise<string[] | 'nxdomain'> => {
    for (let round = 0; round < 2; round++) {
      for (const server of servers) {
        const id = randomInt(0x10000);
        const reply = await transport.exchange(server, buildQuery(id, name, type), timeoutMs);
        if (!reply) continue;
        const r = parseAnswer(reply, id, name, type);
        if (!r) continue;
        if (r.rcode === 3) return 'nxdomain';
        if (r.rcode === 0) return r.addresses;
      }
    }
    throw new DnsError('ETIMEOUT', name);
  };
  const [a, aaaa] = await Promise.allSettled([one(TYPE_A), one(TYPE_AAAA)]);
  const out: string[] = [];
  for (const r of [a, aaaa]) if (r.status === 'fulfilled' && r.value !== 'nxdomain') out.push(...r.value);
  if (out.length > 0) return out;
  if (a.status === 'rejected' && aaaa.status === 'rejected') throw a.reason;
  throw new DnsError('ENOTFOUND', name);
}
