/**
 * The cross-platform userspace API (wireguard.com/xplatform), as wireguard-go
 * speaks it on /var/run/wireguard/IFNAME.sock: `get=1` and `set=1`
 * operations of key=value lines ending with an empty line, answered with
 * `errno=N`. Error numbers are wireguard-go's (ipc/uapi.go): negative errno
 * values, e.g. -22 (EINVAL) for a bad key or value.
 *
 * This file is the protocol only — it reads and writes text and applies it
 * to a UapiTarget; the socket lives in server/wg-daemon.ts.
 */
import { keyFromHex, keyToHex } from '../crypto/wireguard-keys.js';
import { decodeEndpoint, encodeEndpoint, formatEndpoint, parseEndpoint } from '../io/endpoint.js';
import { formatPrefix, parsePrefix } from '../io/ip-address.js';
import type { Device, Peer } from './device.js';

export const UAPI_EIO = -5;
export const UAPI_EPROTO = -71;
export const UAPI_EINVAL = -22;
export const UAPI_EADDRINUSE = -98;
export const UAPI_UNKNOWN = -55;

/** What a UAPI session configures: the device plus the parts owned by its runtime (socket, fwmark). */
export interface UapiTarget {
  readonly device: Device;
  listenPort(): number;
  /** Rebinds the UDP socket; throws UapiError(EADDRINUSE) if the port is taken. */
  setListenPort(port: number): void;
  fwmark(): number;
  setFwmark(mark: number): void;
  /** Whether the interface is up (keepalives are only sent then). */
  isUp(): boolean;
}

export class UapiError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
  }
}

function parseKey(value: string, what: string): Uint8Array {
  const k = keyFromHex(value);
  if (!k) throw new UapiError(UAPI_EINVAL, `failed to set ${what}: invalid key`);
  return k;
}

function parseUint(value: string, max: number, what: string): number {
  if (!/^\d{1,10}$/.test(value) || Number(value) > max) throw new UapiError(UAPI_EINVAL, `failed to parse ${what}: ${value}`);
  return Number(value);
}

/** The reply to `get=1` (without the final errno line). */
export function uapiGet(t: UapiTarget): string {
  const dev = t.device;
  const lines: string[] = [];
  const sk = dev.privateKey();
  if (sk) lines.push(`private_key=${keyToHex(sk)}`);
  sk?.fill(0);
  if (t.listenPort() !== 0) lines.push(`listen_port=${t.listenPort()}`);
  if (t.fwmark() !== 0) lines.push(`fwmark=${t.fwmark()}`);
  for (const peer of dev.peers()) {
    lines.push(`public_key=${keyToHex(peer.publicKey)}`);
    lines.push(`preshared_key=${keyToHex(peer.keys.presharedKey)}`);
    lines.push('protocol_version=1');
    const ep = peer.hasEndpoint() ? decodeEndpoint(peer.endpoint) : null;
    if (ep) lines.push(`endpoint=${formatEndpoint(ep)}`);
    const ms = peer.lastHandshakeWallMs;
    lines.push(`last_handshake_time_sec=${Math.floor(ms / 1000)}`);
    lines.push(`last_handshake_time_nsec=${Math.round((ms % 1000) * 1e6)}`);
    lines.push(`tx_bytes=${peer.txBytes}`);
    lines.push(`rx_bytes=${peer.rxBytes}`);
    lines.push(`persistent_keepalive_interval=${peer.timers.persistentKeepaliveInterval / 1000}`);
    for (const p of dev.allowedIps.entriesOf(peer)) lines.push(`allowed_ip=${formatPrefix(p.family, p.address, p.cidr)}`);
  }
  return lines.length ? lines.join('\n') + '\n' : '';
}

/**
 * Applies the lines of one `set=1` operation, in order, as wireguard-go
 * does (a failing line stops the operation; earlier lines stay applied).
 */
export function uapiSet(t: UapiTarget, lines: Iterable<string>): void {
  const dev = t.device;
  let peer: Peer | null = null;
  let dummy = false; // a peer section that is ignored (our own key, or update_only for an unknown peer)
  let created = false;
  const keepaliveOn: Peer[] = [];
  let pkaBefore = 0;

  const endPeer = () => {
    if (peer && !dummy && pkaBefore === 0 && peer.timers.persistentKeepaliveInterval > 0) keepaliveOn.push(peer);
    peer = null;
    dummy = false;
    created = false;
  };

  for (const line of lines) {
    const eq = line.indexOf('=');
    if (eq <= 0) throw new UapiError(UAPI_EPROTO, `failed to parse line ${JSON.stringify(line)}`);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);

    if (key === 'public_key') {
      endPeer();
      const pk = parseKey(value, 'peer public key');
      const ownKey = dev.publicKey();
      const own = ownKey !== null && Buffer.compare(ownKey, pk) === 0;
      if (own) {
        dummy = true; // wireguard-go ignores a peer with the device's own key
        peer = null;
        continue;
      }
      const existing = dev.peer(pk);
      created = !existing;
      peer = existing ?? dev.addPeer(pk);
      pkaBefore = created ? 0 : peer.timers.persistentKeepaliveInterval;
      continue;
    }

    if (peer === null && !dummy) {
      // Device section.
      switch (key) {
        case 'private_key': {
          const sk = parseKey(value, 'private_key');
          dev.setPrivateKey(sk.every((b) => b === 0) ? null : sk);
          break;
        }
        case 'listen_port':
          t.setListenPort(parseUint(value, 65535, 'listen_port'));
          break;
        case 'fwmark':
          t.setFwmark(parseUint(value, 0xffffffff, 'fwmark'));
          break;
        case 'replace_peers':
          if (value !== 'true') throw new UapiError(UAPI_EINVAL, `failed to set replace_peers, invalid value: ${value}`);
          dev.removeAllPeers();
          break;
        default:
          throw new UapiError(UAPI_EINVAL, `invalid UAPI device key: ${key}`);
      }
      continue;
    }

    // Peer section.
    switch (key) {
      case 'update_only':
        if (value !== 'true') throw new UapiError(UAPI_EINVAL, `failed to set update only, invalid value: ${value}`);
        if (created && peer) {
          dev.removePeer(peer.publicKey);
          peer = null;
          dummy = true;
        }
        break;
      case 'remove':
        if (value !== 'true') throw new UapiError(UAPI_EINVAL, `failed to set remove, invalid value: ${value}`);
        if (peer) dev.removePeer(peer.publicKey);
        peer = null;
        dummy = true;
        break;
      case 'preshared_key': {
        const psk = parseKey(value, 'preshared_key');
        peer?.setPresharedKey(psk);
        break;
      }
      case 'endpoint': {
        const ep = parseEndpoint(value);
        if (!ep) throw new UapiError(UAPI_EINVAL, `failed to set endpoint ${value}`);
        if (peer) encodeEndpoint(ep, peer.endpoint);
        break;
      }
      case 'persistent_keepalive_interval': {
        const secs = parseUint(value, 65535, 'persistent_keepalive_interval');
        if (peer) dev.setPersistentKeepalive(peer, secs);
        break;
      }
      case 'replace_allowed_ips':
        if (value !== 'true') throw new UapiError(UAPI_EINVAL, `failed to replace allowedips, invalid value: ${value}`);
        if (peer) dev.allowedIps.removeValue(peer);
        break;
      case 'allowed_ip': {
        const remove = value.startsWith('-');
        const p = parsePrefix(remove ? value.slice(1) : value);
        if (!p) throw new UapiError(UAPI_EINVAL, `failed to set allowed ip: ${value}`);
        if (!peer) break;
        if (remove) dev.allowedIps.remove(p.family, p.address, p.cidr, peer);
        else dev.allowedIps.insert(p.family, p.address, p.cidr, peer);
        break;
      }
      case 'protocol_version':
        if (value !== '1') throw new UapiError(UAPI_EINVAL, `invalid protocol version: ${value}`);
        break;
      default:
        throw new UapiError(UAPI_EINVAL, `invalid UAPI peer key: ${key}`);
    }
  }
  endPeer();
  if (t.isUp()) for (const p of keepaliveOn) dev.sendKeepalive(p);
}

/**
 * How much of one `set=1` operation is held before its terminating empty
 * line. The lines are applied only once the operation is complete, so an
 * operation that never ends would otherwise grow the daemon without bound
 * (issue 15: RSS 60 → 264 MB for 43 MB sent, never released). The defaults
 * leave room for `wg setconf` of hundreds of thousands of allowed IPs
 * (130,560 IPv4 prefixes are ~3 MB in 130,600 lines).
 */
export interface UapiLimits {
  /** Lines of one pending set operation. */
  maxSetLines: number;
  /** Characters of one pending set operation (newlines included). */
  maxSetBytes: number;
}

export const DEFAULT_UAPI_LIMITS: UapiLimits = { maxSetLines: 1 << 20, maxSetBytes: 32 << 20 };

/**
 * A UAPI conversation over a byte stream: feed it chunks, it returns reply
 * text. Several operations may follow each other on one connection.
 */
export class UapiSession {
  private buffer = '';
  private op: 'get' | 'set' | null = null;
  private setLines: string[] = [];
  private setBytes = 0;
  /** Set after a protocol error: the connection should be closed once the reply is written. */
  closed = false;

  constructor(
    private readonly target: UapiTarget,
    private readonly onError: (err: UapiError) => void = () => {},
    private readonly limits: UapiLimits = DEFAULT_UAPI_LIMITS,
  ) {}

  /** Consumes input; returns any replies completed by it. */
  feed(chunk: string): string {
    if (this.closed) return '';
    this.buffer += chunk;
    let out = '';
    for (;;) {
      const nl = this.buffer.indexOf('\n');
      if (nl < 0) break;
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      out += this.line(line);
      if (this.closed) {
        this.buffer = '';
        return out;
      }
    }
    // Bound the pending line: 130k allowed IPs come as many short lines, never one huge one.
    if (this.buffer.length > 4096) {
      this.closed = true;
      out += this.reply(new UapiError(UAPI_EPROTO, 'line too long'));
    }
    return out;
  }

  private line(line: string): string {
    if (this.op === null) {
      if (line === '') return '';
      if (line === 'get=1') {
        this.op = 'get';
        return '';
      }
      if (line === 'set=1') {
        this.op = 'set';
        this.setLines = [];
        this.setBytes = 0;
        return '';
      }
      // wireguard-go closes the connection without a reply.
      this.closed = true;
      this.onError(new UapiError(UAPI_EINVAL, `invalid UAPI operation: ${line}`));
      return '';
    }
    if (this.op === 'get') {
      if (line !== '') {
        this.op = null;
        return this.reply(new UapiError(UAPI_EINVAL, 'invalid UAPI get request'));
      }
      this.op = null;
      return uapiGet(this.target) + 'errno=0\n\n';
    }
    if (line !== '') {
      this.setLines.push(line);
      this.setBytes += line.length + 1;
      if (this.setLines.length > this.limits.maxSetLines || this.setBytes > this.limits.maxSetBytes) {
        // Nothing of it is applied; the connection is closed after the reply, like a line that is too long.
        this.setLines = [];
        this.op = null;
        this.closed = true;
        return this.reply(
          new UapiError(UAPI_EPROTO, `set operation too large (over ${this.limits.maxSetLines} lines or ${this.limits.maxSetBytes} bytes without its ending empty line)`),
        );
      }
      return '';
    }
    this.op = null;
    const lines = this.setLines;
    this.setLines = [];
    this.setBytes = 0;
    try {
      uapiSet(this.target, lines);
      return 'errno=0\n\n';
    } catch (e) {
      const err = e instanceof UapiError ? e : new UapiError(UAPI_UNKNOWN, `other UAPI error: ${(e as Error).message}`);
      return this.reply(err);
    }
  }

  private reply(err: UapiError): string {
    this.onError(err);
    return `errno=${err.errno}\n\n`;
  }
}
