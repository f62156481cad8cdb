/**
 * SOCKS version 5 on the wire (RFC 1928) with username/password
 * authentication (RFC 1929): exact-length parsers over what a client sent so
 * far and encoders of the server's replies. Network input never throws: a
 * parser answers "need more bytes", a parsed value with the bytes it used, or
 * the reply code the server sends before it closes the connection.
 */
import { isIP } from 'node:net';
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from '../io/ip-address.js';
import type { DialTarget } from './proxy-dial.js';

/** RFC 1928 §3: "VER ... X'05'". */
export const SOCKS_VERSION = 0x05;
/** RFC 1929 §2: "The VER field contains the current version of the subnegotiation, which is X'01'". */
export const USERPASS_VERSION = 0x01;

/** RFC 1928 §3 METHOD values. */
export const METHOD_NO_AUTH = 0x00;
export const METHOD_USERPASS = 0x02;
export const METHOD_NONE_ACCEPTABLE = 0xff;

/** RFC 1928 §4 CMD values. */
export const CMD_CONNECT = 0x01;
export const CMD_BIND = 0x02;
export const CMD_UDP_ASSOCIATE = 0x03;

/** RFC 1928 §4 ATYP values. */
export const ATYP_IPV4 = 0x01;
export const ATYP_DOMAIN = 0x03;
export const ATYP_IPV6 = 0x04;

/** RFC 1928 §6 REP values. */
export const Rep = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;
export type RepCode = (typeof Rep)[keyof typeof Rep];

/** The longest client message of each phase: a greeting is 2+255 bytes, RFC 1929's request 3+255+255, a request 4+1+255+2. */
export const MAX_GREETING = 2 + 255;
export const MAX_USERPASS = 3 + 255 + 255;
export const MAX_REQUEST = 4 + 1 + 255 + 2;

/** An address as SOCKS carries it: an IP literal, or a domain name to resolve at the proxy. */
export type SocksAddress = DialTarget;

export type Parsed<T> = { kind: 'more' } | { kind: 'ok'; value: T; used: number } | { kind: 'error'; reason: string };

/** RFC 1928 §3: VER NMETHODS METHODS. */
export function parseGreeting(b: Uint8Array): Parsed<{ methods: number[] }> {
  if (b.length < 1) return { kind: 'more' };
  if (b[0] !== SOCKS_VERSION) return { kind: 'error', reason: `not SOCKS version 5 (first byte ${b[0]})` };
  if (b.length < 2) return { kind: 'more' };
  const n = b[1]!;
  if (n === 0) return { kind: 'error', reason: 'no authentication methods offered' };
  if (b.length < 2 + n) return { kind: 'more' };
  return { kind: 'ok', value: { methods: Array.from(b.subarray(2, 2 + n)) }, used: 2 + n };
}

/** RFC 1929 §2: VER ULEN UNAME PLEN PASSWD. */
export function parseUserPass(b: Uint8Array): Parsed<{ user: Buffer; password: Buffer }> {
  if (b.length < 1) return { kind: 'more' };
  if (b[0] !== USERPASS_VERSION) return { kind: 'error', reason: `not username/password version 1 (first byte ${b[0]})` };
  if (b.length < 2) return { kind: 'more' };
  const ulen = b[1]!;
  if (b.length < 3 + ulen) return { kind: 'more' };
  const plen = b[2 + ulen]!;
  const end = 3 + ulen + plen;
  if (b.length < end) return { kind: 'more' };
  return { kind: 'ok', value: { user: Buffer.from(b.subarray(2, 2 + ulen)), password: Buffer.from(b.subarray(3 + ulen, end)) }, used: end };
}

/** Parses ATYP DST.ADDR DST.PORT at `off`: the address, its port and the offset after it. */
function parseAddress(b: Uint8Array, off: number): Parsed<{ address: SocksAddress; port: number }> | { kind: 'bad-atyp'; atyp: number } {
  if (b.length < off + 1) return { kind: 'more' };
  const atyp = b[off]!;
  let len: number;
  let address: SocksAddress;
  if (atyp === ATYP_IPV4) {
    len = 4;
    if (b.length < off + 1 + len + 2) return { kind: 'more' };
    address = { type: 'ip', host: formatIPv4(b.subarray(off + 1, off + 5)) };
  } else if (atyp === ATYP_IPV6) {
    len = 16;
    if (b.length < off + 1 + len + 2) return { kind: 'more' };
    address = { type: 'ip', host: formatIPv6(b.subarray(off + 1, off + 17)) };
  } else if (atyp === ATYP_DOMAIN) {
    // RFC 1928 §5: "the first octet of the address field contains the number of octets of name that follow, there is no terminating NUL octet".
    if (b.length < off + 2) return { kind: 'more' };
    const n = b[off + 1]!;
    len = 1 + n;
    if (b.length < off + 1 + len + 2) return { kind: 'more' };
    if (n === 0) return { kind: 'error', reason: 'an empty domain name' };
    const name = Buffer.from(b.subarray(off + 2, off + 2 + n)).toString('latin1');
    if (!isHostName(name)) return { kind: 'error', reason: 'a domain name with bytes no host name has' };
    // A client may put an IP literal in the name field (curl --socks5-hostname does for literals).
    address = isIP(name) ? { type: 'ip', host: name } : { type: 'domain', host: name };
  } else {
    return { kind: 'bad-atyp', atyp };
  }
  const p = off + 1 + len;
  return { kind: 'ok', value: { address, port: (b[p]! << 8) | b[p + 1]! }, used: p + 2 };
}

/** Letters, digits, '-', '_', '.' and ':' (an IPv6 literal): what the resolver is ever handed. */
function isHostName(s: string): boolean {
  return /^[A-Za-z0-9._:-]+$/.test(s);
}

export interface SocksRequest {
  cmd: number;
  address: SocksAddress;
  port: number;
}

/**
 * RFC 1928 §4: VER CMD RSV ATYP DST.ADDR DST.PORT. An error carries the REP
 * code to answer with (§6): 07 for a command other than CONNECT and UDP
 * ASSOCIATE, 08 for an unknown address type, 01 otherwise.
 */
export function parseRequest(b: Uint8Array): Parsed<SocksRequest> | { kind: 'reject'; rep: RepCode; reason: string } {
  if (b.length < 1) return { kind: 'more' };
  if (b[0] !== SOCKS_VERSION) return { kind: 'reject', rep: Rep.generalFailure, reason: `not SOCKS version 5 (first byte ${b[0]})` };
  if (b.length < 3) return { kind: 'more' };
  const cmd = b[1]!;
  const a = parseAddress(b, 3);
  if (a.kind === 'more') return a;
  if (cmd !== CMD_CONNECT && cmd !== CMD_UDP_ASSOCIATE) return { kind: 'reject', rep: Rep.commandNotSupported, reason: `command ${cmd} is not supported` };
  if (a.kind === 'bad-atyp') return { kind: 'reject', rep: Rep.addressTypeNotSupported, reason: `address type ${a.atyp} is not supported` };
  if (a.kind === 'error') return { kind: 'reject', rep: Rep.generalFailure, reason: a.reason };
  return { kind: 'ok', value: { cmd, address: a.value.address, port: a.value.port }, used: a.used };
}

/** ATYP ADDR PORT of an IP literal (0.0.0.0:0 for anything else). */
function encodeAddress(host: string, port: number): Buffer {
  const v4 = parseIPv4(host);
  const v6 = v4 ? null : parseIPv6(host);
  const ip = v4 ?? v6 ?? new Uint8Array(4);
  const out = Buffer.alloc(1 + ip.length + 2);
  out[0] = ip.length === 4 ? ATYP_IPV4 : ATYP_IPV6;
  out.set(ip, 1);
  out.writeUInt16BE(v4 || v6 ? port & 0xffff : 0, 1 + ip.length);
  return out;
}

/** RFC 1928 §6: VER REP RSV ATYP BND.ADDR BND.PORT. */
export function encodeReply(rep: RepCode, bindHost = '0.0.0.0', bindPort = 0): Buffer {
  return Buffer.concat([Buffer.from([SOCKS_VERSION, rep, 0x00]), encodeAddress(bindHost, bindPort)]);
}

/** The REP code for a failed connect, from the dialer's error (net.Socket's codes). */
export function repForError(e: unknown): RepCode {
  switch ((e as { code?: unknown } | null)?.code) {
    case 'ECONNREFUSED':
      return Rep.connectionRefused;
    case 'ENETUNREACH':
    case 'EAFNOSUPPORT':
      return Rep.networkUnreachable;
    case 'EHOSTUNREACH':
    case 'ETIMEDOUT':
    case 'ENOTFOUND':
    case 'ENODATA':
      return Rep.hostUnreachable;
    case 'ETTL':
      return Rep.ttlExpired;
    default:
      return Rep.generalFailure;
  }
}

/** RFC 1928 §7: a UDP request header, RSV(2) FRAG ATYP DST.ADDR DST.PORT, then DATA. */
export interface SocksDatagram {
  frag: number;
  address: SocksAddress;
  port: number;
  data: Buffer;
}

/** Parses one relayed datagram; null for anything malformed (dropped, as §7 says of what cannot be relayed). */
export function parseDatagram(b: Uint8Array): SocksDatagram | null {
  if (b.length < 4 || b[0] !== 0 || b[1] !== 0) return null;
  const a = parseAddress(b, 3);
  if (a.kind !== 'ok') return null;
  return { frag: b[2]!, address: a.value.address, port: a.value.port, data: Buffer.from(b.subarray(a.used)) };
}

/** The header the relay puts before a datagram it hands back to the client (§7). */
export function encodeDatagram(fromHost: string, fromPort: number, data: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([0, 0, 0]), encodeAddress(fromHost, fromPort), data]);
}
