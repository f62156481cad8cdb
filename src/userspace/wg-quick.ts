/**
 * The wg-quick(8) configuration text a userspace tunnel starts from: the
 * [Interface] keys PrivateKey, Address, DNS, MTU and ListenPort, and per
 * [Peer] PublicKey, PresharedKey, Endpoint, AllowedIPs and
 * PersistentKeepalive. Keys that only make sense for a kernel interface
 * (Table, PreUp/PostUp/PreDown/PostDown, SaveConfig, FwMark) are accepted and
 * ignored, as they change nothing without one. Anything else is an error
 * naming the line, so a typo is not silently dropped.
 */
import { isIP } from 'node:net';
import { keyFromBase64 } from '../crypto/wireguard-keys.js';
import { parsePrefix, type Prefix } from '../io/ip-address.js';

export interface WgQuickPeer {
  publicKey: Uint8Array;
  presharedKey: Uint8Array | null;
  /** "host:port" as written (a name is resolved when the tunnel starts). */
  endpoint: string | null;
  allowedIps: Prefix[];
  persistentKeepalive: number;
}

export interface WgQuickConfig {
  privateKey: Uint8Array;
  /** Interface addresses without their prefix length. */
  addresses: string[];
  /** DNS servers (IP literals); search domains in the DNS line are kept apart. */
  dns: string[];
  dnsSearch: string[];
  mtu: number | null;
  listenPort: number | null;
  peers: WgQuickPeer[];
}

/** wg-quick's default MTU when the config has none and no route says better: 1420 (1500 minus 80 of IPv6+UDP+WireGuard). */
export const DEFAULT_TUNNEL_MTU = 1420;

const IGNORED_INTERFACE_KEYS = new Set(['table', 'preup', 'postup', 'predown', 'postdown', 'saveconfig', 'fwmark']);

export class WgQuickError extends Error {
  constructor(line: number, message: string) {
    super(`wg-quick config line ${line}: ${message}`);
    this.name = 'WgQuickError';
  }
}

export function parseWgQuick(text: string): WgQuickConfig {
  if (typeof text !== 'string') throw new TypeError('config must be wg-quick text');
  let section: 'none' | 'interface' | 'peer' = 'none';
  let privateKey: Uint8Array | null = null;
  const addresses: string[] = [];
  const dns: string[] = [];
  const dnsSearch: string[] = [];
  let mtu: number | null = null;
  let listenPort: number | null = null;
  const peers: WgQuickPeer[] = [];
  let peer: WgQuickPeer | null = null;
  let sawInterface = false;

  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const lineNo = n + 1;
    const raw = lines[n]!;
    const hash = raw.indexOf('#');
    const line = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (line === '') continue;
    if (line.startsWith('[')) {
      const name = line.toLowerCase();
      if (name === '[interface]') {
        if (sawInterface) throw new WgQuickError(lineNo, 'a second [Interface] section');
        section = 'interface';
        sawInterface = true;
      } else if (name === '[peer]') {
        section = 'peer';
        peer = { publicKey: new Uint8Array(0), presharedKey: null, endpoint: null, allowedIps: [], persistentKeepalive: 0 };
        peers.push(peer);
      } else throw new WgQuickError(lineNo, `unknown section ${line}`);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) throw new WgQuickError(lineNo, 'expected "Key = Value"');
    const key = line.slice(0, eq).trim().toLowerCase();
    const value = line.slice(eq + 1).trim();
    const list = () => value.split(',').map((s) => s.trim()).filter((s) => s !== '');
    if (section === 'interface') {
      switch (key) {
        case 'privatekey':
          privateKey = keyFromBase64(value);
          if (!privateKey) throw new WgQuickError(lineNo, 'PrivateKey is not a base64 WireGuard key');
          break;
        case 'address':
          for (const a of list()) {
            const addr = a.includes('/') ? a.slice(0, a.indexOf('/')) : a;
            if (isIP(addr) === 0 || (a.includes('/') && !parsePrefix(a))) throw new WgQuickError(lineNo, `bad Address ${a}`);
            addresses.push(addr);
          }
          break;
        case 'dns':
          for (const d of list()) (isIP(d) ? dns : dnsSearch).push(d);
          break;
        case 'mtu':
          mtu = intValue(value, 1280, 65535, lineNo, 'MTU');
          break;
        case 'listenport':
          listenPort = intValue(value, 0, 65535, lineNo, 'ListenPort');
          break;
        default:
          if (!IGNORED_INTERFACE_KEYS.has(key)) throw new WgQuickError(lineNo, `unknown [Interface] key ${line.slice(0, eq).trim()}`);
      }
    } else if (section === 'peer' && peer) {
      switch (key) {
        case 'publickey': {
          const k = keyFromBase64(value);
          if (!k) throw new WgQuickError(lineNo, 'PublicKey is not a base64 WireGuard key');
          peer.publicKey = k;
          break;
        }
        case 'presharedkey':
          peer.presharedKey = keyFromBase64(value);
          if (!peer.presharedKey) throw new WgQuickError(lineNo, 'PresharedKey is not a base64 WireGuard key');
          break;
        case 'endpoint':
          if (!/^(\[[^\]]+\]|[^:\s]+):\d{1,5}$/.test(value)) throw new WgQuickError(lineNo, `bad Endpoint ${value} (host:port or [v6]:port)`);
          peer.endpoint = value;
          break;
        case 'allowedips':
          for (const p of list()) {
            const pre = parsePrefix(p);
            if (!pre) throw new WgQuickError(lineNo, `bad AllowedIPs entry ${p}`);
            peer.allowedIps.push(pre);
          }
          break;
        case 'persistentkeepalive':
          peer.persistentKeepalive = value === 'off' ? 0 : intValue(value, 0, 65535, lineNo, 'PersistentKeepalive');
          break;
        default:
          throw new WgQuickError(lineNo, `unknown [Peer] key ${line.slice(0, eq).trim()}`);
      }
    } else {
      throw new WgQuickError(lineNo, 'a key outside [Interface] or [Peer]');
    }
  }
  if (!privateKey) throw new WgQuickError(0, 'no PrivateKey in [Interface]');
  if (addresses.length === 0) throw new WgQuickError(0, 'no Address in [Interface]');
  for (const p of peers) if (p.publicKey.length !== 32) throw new WgQuickError(0, 'a [Peer] without PublicKey');
  return { privateKey, addresses, dns, dnsSearch, mtu, listenPort, peers };
}

function intValue(v: string, min: number, max: number, line: number, what: string): number {
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new WgQuickError(line, `${what} must be an integer in ${min}..${max}`);
  return Number(v);
}
