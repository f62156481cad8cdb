/**
 * A client of the WireGuard cross-platform UAPI (wireguard.com/xplatform):
 * one request per connection to /var/run/wireguard/IFNAME.sock, `set=1` with
 * key=value lines or `get=1`, answered by key=value lines ending in
 * `errno=N` and an empty line. Keys on this interface are hex, not base64.
 */
import { connect } from 'node:net';
import { keyFromBase64, keyToHex } from '../../crypto/wireguard-keys.js';

export const UAPI_DIR = '/var/run/wireguard';
export const uapiSocketPath = (ifname: string): string => `${UAPI_DIR}/${ifname}.sock`;

/** A base64 key (as wg-quick files and the API write it) in the UAPI's hex; throws for anything but a 32-byte key. */
export function keyHex(base64: string): string {
  const k = keyFromBase64(base64);
  if (!k) throw new TypeError('not a WireGuard key (base64 of 32 bytes)');
  const hex = keyToHex(k);
  k.fill(0);
  return hex;
}

/** Sends one request and returns the answer's lines (without errno and the final empty line). */
export function uapiRequest(socketPath: string, request: string, timeoutMs = 5000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`UAPI ${socketPath}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(request.endsWith('\n\n') ? request : request + '\n'));
    sock.on('data', (d: string) => {
      buf += d;
      const end = buf.indexOf('\n\n');
      if (end < 0) return;
      clearTimeout(timer);
      sock.end();
      const lines = buf.slice(0, end).split('\n');
      const errno = lines.find((l) => l.startsWith('errno='));
      if (errno === undefined) return reject(new Error(`UAPI ${socketPath}: malformed answer`));
      if (errno !== 'errno=0') return reject(new Error(`UAPI ${socketPath}: ${errno}`));
      resolve(lines.filter((l) => !l.startsWith('errno=')));
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`UAPI ${socketPath}: ${e.message}`));
    });
  });
}

export interface UapiPeerState {
  publicKeyHex: string;
  endpoint: string | null;
  lastHandshakeSec: number;
  rxBytes: number;
  txBytes: number;
}

/** The peers of `get=1`. */
export async function uapiPeers(socketPath: string): Promise<UapiPeerState[]> {
  const peers: UapiPeerState[] = [];
  let cur: UapiPeerState | null = null;
  for (const line of await uapiRequest(socketPath, 'get=1\n')) {
    const eq = line.indexOf('=');
    const k = line.slice(0, eq);
    const v = line.slice(eq + 1);
    if (k === 'public_key') {
      cur = { publicKeyHex: v, endpoint: null, lastHandshakeSec: 0, rxBytes: 0, txBytes: 0 };
      peers.push(cur);
    } else if (cur) {
      if (k === 'endpoint') cur.endpoint = v;
      else if (k === 'last_handshake_time_sec') cur.lastHandshakeSec = Number(v);
      else if (k === 'rx_bytes') cur.rxBytes = Number(v);
      else if (k === 'tx_bytes') cur.txBytes = Number(v);
    }
  }
  return peers;
}
