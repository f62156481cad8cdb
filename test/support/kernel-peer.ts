/**
 * The kernel's side of the netstack interop tests: a small program run with
 * `node` inside a network namespace, speaking Linux TCP/UDP on the addresses
 * of a wireguard-go interface. Every mode prints "ready" once listening, and
 * its result (a sha256, a byte count) as one JSON line on stdout.
 *
 *   sink HOST PORT                 accept once, read to the end, print {sha, bytes}, reply the sha, end
 *   source HOST PORT BYTES SEED    accept once, send BYTES of pattern(SEED), end; print {sha} of what it read after
 *   reset HOST PORT                accept once, after the first bytes reset the connection (RST)
 *   upload HOST PORT BYTES SEED    connect, send BYTES of pattern(SEED), half-close, print {reply} read back
 *   udp-echo HOST PORT             answer every datagram with the same bytes
 *   discard HOST PORT              (benchmarks) accept once, count bytes to the end, print {bytes}, reply the count, end
 *   blast HOST PORT SECONDS        (benchmarks) accept once, send zeros for SECONDS, end, print {bytes}
 *   hold HOST PORT                 (benchmarks) accept every connection and keep it open, idle
 */
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { connect, createServer, type Socket } from 'node:net';

/** Deterministic bytes: chunk i of a stream is a function of (seed, i), so both ends can hash without storing. */
export function pattern(seed: number, offset: number, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  let x = (seed ^ Math.imul(offset | 0, 0x9e3779b1)) >>> 0 || 1;
  for (let i = 0; i < len; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
    if (i + 1 < len) b[i + 1] = (x >>> 8) & 0xff;
    if (i + 2 < len) b[i + 2] = (x >>> 16) & 0xff;
    if (i + 3 < len) b[i + 3] = x >>> 24;
  }
  return b;
}

const CHUNK = 64 * 1024;

/** Writes `bytes` of pattern(seed) with backpressure; returns their sha256. */
export async function sendPattern(s: NodeJS.WritableStream, bytes: number, seed: number): Promise<string> {
  const h = createHash('sha256');
  for (let off = 0; off < bytes; off += CHUNK) {
    const chunk = pattern(seed, off / CHUNK, Math.min(CHUNK, bytes - off));
    h.update(chunk);
    if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
  }
  return h.digest('hex');
}

/** Reads a stream to its end: sha256 and length. */
export function hashStream(s: NodeJS.ReadableStream): Promise<{ sha: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let bytes = 0;
    s.on('data', (d: Buffer) => {
      h.update(d);
      bytes += d.length;
    });
    s.on('end', () => resolve({ sha: h.digest('hex'), bytes }));
    s.on('error', reject);
  });
}

function once(host: string, port: number, onConn: (s: Socket) => void): void {
  const srv = createServer({ allowHalfOpen: true }, (s) => {
    srv.close();
    onConn(s);
  });
  srv.listen(port, host, () => console.log('ready'));
}

async function main(): Promise<void> {
  const [mode, host, portS, bytesS, seedS] = process.argv.slice(2);
  const port = Number(portS);
  const out = (o: unknown) => console.log(JSON.stringify(o));
  switch (mode) {
    case 'sink':
      once(host!, port, async (s) => {
        const r = await hashStream(s);
        out(r);
        s.end(r.sha);
      });
      break;
    case 'source':
      once(host!, port, async (s) => {
        const after = hashStream(s);
        await sendPattern(s, Number(bytesS), Number(seedS));
        s.end();
        out(await after);
      });
      break;
    case 'reset':
      once(host!, port, (s) => {
        s.once('data', () => {
          s.resetAndDestroy();
          out({ reset: true });
        });
      });
      break;
    case 'upload': {
      const s = connect({ host: host!, port, allowHalfOpen: true });
      const reply: Buffer[] = [];
      s.on('data', (d: Buffer) => reply.push(d));
      s.on('end', () => out({ reply: Buffer.concat(reply).toString() }));
      s.on('error', (e) => out({ error: (e as NodeJS.ErrnoException).code }));
      s.once('connect', async () => {
        out({ sent: await sendPattern(s, Number(bytesS), Number(seedS)) });
        s.end();
      });
      console.log('ready');
      break;
    }
    case 'udp-echo': {
      const u = createSocket(host!.includes(':') ? 'udp6' : 'udp4');
      u.on('message', (m, r) => u.send(m, r.port, r.address));
      u.bind(port, host, () => console.log('ready'));
      break;
    }
    case 'discard':
      once(host!, port, (s) => {
        let bytes = 0;
        s.on('data', (d: Buffer) => (bytes += d.length));
        s.on('end', () => {
          out({ bytes });
          s.end(String(bytes));
        });
      });
      break;
    case 'blast':
      once(host!, port, async (s) => {
        const zeros = Buffer.alloc(CHUNK);
        const until = Date.now() + Number(bytesS) * 1000;
        let bytes = 0;
        while (Date.now() < until) {
          bytes += zeros.length;
          if (!s.write(zeros)) await new Promise((r) => s.once('drain', r));
        }
        s.end();
        out({ bytes });
      });
      break;
    case 'hold': {
      const held: Socket[] = [];
      createServer((s) => held.push(s)).listen({ port, host: host!, backlog: 4096 }, () => console.log('ready'));
      break;
    }
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!) && process.argv[2]) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
