/**
 * The far side of the rootless-proxy tests, run with `node` inside the
 * namespace of the WireGuard peer: an HTTP server whose /blob/N is N bytes of
 * pattern(seed 11) (test/support/kernel-peer.ts, so the test knows the sha256
 * without a file) and /echo answers with the request's method, path and
 * fields; a UDP echo on the same port (IPv4 and IPv6: every datagram answered
 * with its own bytes, for SOCKS5 UDP ASSOCIATE); and a DNS responder (RFC 1035)
 * that knows one name. Prints "ready".
 *
 *   node proxy-peer.js HTTP_HOST HTTP_PORT DNS_HOST NAME IPV4 IPV6
 */
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseIPv6 } from '../../src/io/ip-address.js';
import { pattern } from './kernel-peer.js';

export const BLOB_SEED = 11;
const CHUNK = 64 * 1024;

/** The sha256 of /blob/N (computed here, so a test needs no copy of the bytes). */
export function blobSha(n: number): string {
  const h = createHash('sha256');
  for (let off = 0; off < n; off += CHUNK) h.update(pattern(BLOB_SEED, off / CHUNK, Math.min(CHUNK, n - off)));
  return h.digest('hex');
}

/**
 * Answers GET /blob/N with N bytes of pattern(BLOB_SEED) in 64 KiB writes,
 * each after the last drained (or the client went away); returns false,
 * answering nothing, for any other path. The test servers on 127.0.0.1 use it
 * as this script does.
 */
export async function serveBlob(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  const m = /^\/blob\/([0-9]+)$/.exec(req.url ?? '');
  if (!m) return false;
  const n = Number(m[1]);
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
  for (let off = 0; off < n && !res.destroyed; off += CHUNK) {
    if (res.write(pattern(BLOB_SEED, off / CHUNK, Math.min(CHUNK, n - off)))) continue;
    await new Promise<void>((r) => {
      const go = () => {
        res.off('drain', go);
        res.off('close', go);
        r();
      };
      res.on('drain', go);
      res.on('close', go);
    });
  }
  res.end();
  return true;
}

/** The answer to one query: A/AAAA of NAME, NOERROR without records for other types, NXDOMAIN for other names. */
function answer(q: Buffer, name: string, v4: string, v6: string): Buffer | null {
  if (q.length < 17) return null;
  const labels: string[] = [];
  let o = 12;
  while (o < q.length && q[o]! > 0) {
    labels.push(q.toString('latin1', o + 1, o + 1 + q[o]!));
    o += q[o]! + 1;
  }
  const qend = o + 5;
  if (qend > q.length) return null;
  const type = q.readUInt16BE(o + 1);
  const head = Buffer.from(q.subarray(0, qend));
  head.writeUInt16BE(0, 8);
  head.writeUInt16BE(0, 10);
  const known = labels.join('.').toLowerCase() === name;
  head.writeUInt16BE(known ? 0x8180 : 0x8183, 2);
  const data = type === 1 ? Buffer.from(v4.split('.').map(Number)) : type === 28 ? Buffer.from(parseIPv6(v6)!) : null;
  if (!known || !data) {
    head.writeUInt16BE(0, 6);
    return head;
  }
  head.writeUInt16BE(1, 6);
  const rr = Buffer.alloc(12);
  rr.writeUInt16BE(0xc00c, 0);
  rr.writeUInt16BE(type, 2);
  rr.writeUInt16BE(1, 4);
  rr.writeUInt32BE(60, 6);
  rr.writeUInt16BE(data.length, 10);
  return Buffer.concat([head, rr, data]);
}

function main(): void {
  const [httpHost, httpPort, dnsHost, name, v4, v6] = process.argv.slice(2) as [string, string, string, string, string, string];
  const http = createServer(async (req, res) => {
    if (await serveBlob(req, res)) return;
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.rawHeaders, from: req.socket.remoteAddress }));
  });
  const dns = createSocket('udp4');
  dns.on('message', (q, r) => {
    const a = answer(q, name.toLowerCase(), v4, v6);
    if (a) dns.send(a, r.port, r.address);
  });
  const echo = createSocket({ type: httpHost.includes(':') ? 'udp6' : 'udp4' });
  echo.on('message', (m, r) => echo.send(m, r.port, r.address));
  let up = 0;
  const ready = (): void => {
    if (++up === 3) console.log('ready');
  };
  http.listen(Number(httpPort), httpHost, ready);
  echo.bind(Number(httpPort), httpHost, ready);
  dns.bind(53, dnsHost, ready);
}

if (process.argv[1]?.endsWith('proxy-peer.js') && process.argv.length > 2) main();
