/**
 * A small SOCKS5 UDP ASSOCIATE client (RFC 1928 §4, §6, §7), run with `node`
 * where the proxy listens (curl cannot speak UDP through SOCKS). It greets with
 * "no authentication", asks UDP ASSOCIATE, then for each target sends one
 * datagram through the relay with the §7 header (ATYP 01, 04 or 03 — an IP
 * literal or a domain name the proxy resolves) and waits for the answer.
 * It keeps the association's TCP connection open until every target answered
 * (the association ends with it) and prints one JSON line:
 *   [{ target, from: {host, port}, data (base64) } | { target, error }]
 *
 *   node socks5-udp-client.js PROXY_HOST PROXY_PORT JSON_TARGETS
 *   JSON_TARGETS: [{ "host": "192.0.2.1" | "2001:db8::1" | "name.test", "port": 8000, "data": base64 }]
 *
 * Written from the RFC, not from src/userspace/socks5-wire.ts, so the proxy's
 * encoder and parser are checked against an independent reading.
 */
import { createSocket } from 'node:dgram';
import { connect, isIPv4, isIPv6, type Socket } from 'node:net';

interface Target {
  host: string;
  port: number;
  data: string;
}

/** ATYP + DST.ADDR + DST.PORT (§4/§5). */
function address(host: string, port: number): Buffer {
  const p = Buffer.from([port >> 8, port & 0xff]);
  if (isIPv4(host)) return Buffer.concat([Buffer.from([1]), Buffer.from(host.split('.').map(Number)), p]);
  if (isIPv6(host)) {
    const [head = '', tail = ''] = host.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = host.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
    const b = Buffer.alloc(16);
    groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
    return Buffer.concat([Buffer.from([4]), b, p]);
  }
  return Buffer.concat([Buffer.from([3, host.length]), Buffer.from(host, 'latin1'), p]);
}

/** The TCP connection's bytes as they arrive, read `n` at a time. */
class Reader {
  private buf = Buffer.alloc(0);
  private waiting: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private failed: Error | null = null;

  constructor(s: Socket) {
    s.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.settle();
    });
    const end = (e?: Error): void => {
      this.failed = e ?? new Error('the proxy closed the connection');
      this.settle();
    };
    s.on('error', end);
    s.on('end', () => end());
  }

  /** Exactly `n` bytes. */
  read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiting = { n, resolve, reject };
      this.settle();
    });
  }

  private settle(): void {
    const w = this.waiting;
    if (!w) return;
    if (this.buf.length >= w.n) {
      this.waiting = null;
      const out = this.buf.subarray(0, w.n);
      this.buf = this.buf.subarray(w.n);
      w.resolve(out);
    } else if (this.failed) {
      this.waiting = null;
      w.reject(this.failed);
    }
  }
}

/** The relay's reply header (§6): VER REP RSV ATYP BND.ADDR BND.PORT; returns the relay's address. */
async function readReply(s: Reader): Promise<{ host: string; port: number }> {
  const head = await s.read(4);
  if (head[0] !== 5 || head[1] !== 0) throw new Error(`UDP ASSOCIATE refused: REP ${head[1]}`);
  const len = head[3] === 1 ? 4 : head[3] === 4 ? 16 : (await s.read(1))[0]!;
  const addr = await s.read(len + 2);
  const raw = addr.subarray(0, len);
  const host = head[3] === 1 ? [...raw].join('.') : head[3] === 4 ? [...Array(8).keys()].map((i) => raw.readUInt16BE(i * 2).toString(16)).join(':') : raw.toString('latin1');
  return { host, port: addr.readUInt16BE(len) };
}

/** Splits a relayed datagram (§7) into its source and data. */
function unwrap(b: Buffer): { host: string; port: number; data: Buffer } | null {
  if (b.length < 10 || b[0] !== 0 || b[1] !== 0 || b[2] !== 0) return null;
  const len = b[3] === 1 ? 4 : b[3] === 4 ? 16 : null;
  if (len === null || b.length < 4 + len + 2) return null;
  const raw = b.subarray(4, 4 + len);
  const host = len === 4 ? [...raw].join('.') : [...Array(8).keys()].map((i) => raw.readUInt16BE(i * 2).toString(16)).join(':');
  return { host, port: b.readUInt16BE(4 + len), data: Buffer.from(b.subarray(4 + len + 2)) };
}

async function main(): Promise<void> {
  const [proxyHost, proxyPort, json] = process.argv.slice(2) as [string, string, string];
  const targets = JSON.parse(json) as Target[];
  const tcp = connect({ host: proxyHost, port: Number(proxyPort) });
  await new Promise((r, j) => tcp.once('connect', r).once('error', j));
  const reader = new Reader(tcp);
  tcp.write(Buffer.from([5, 1, 0]));
  const method = await reader.read(2);
  if (method[0] !== 5 || method[1] !== 0) throw new Error(`no acceptable method: ${method.toString('hex')}`);
  const udp = createSocket(isIPv6(proxyHost) ? 'udp6' : 'udp4');
  await new Promise<void>((r) => udp.bind(0, proxyHost, r));
  // DST.ADDR/DST.PORT: where our datagrams will come from (§7: the relay only takes them from there).
  tcp.write(Buffer.concat([Buffer.from([5, 3, 0]), address(proxyHost, udp.address().port)]));
  const relay = await readReply(reader);
  const results: unknown[] = [];
  for (const t of targets) {
    const data = Buffer.from(t.data, 'base64');
    const datagram = Buffer.concat([Buffer.from([0, 0, 0]), address(t.host, t.port), data]);
    // Three tries, 3 s each: UDP may be lost; the first datagram to a name waits for its lookup.
    let got: ReturnType<typeof unwrap> = null;
    for (let attempt = 0; attempt < 3 && !got; attempt++) {
      got = await new Promise((resolve) => {
        const timer = setTimeout(() => {
          udp.removeListener('message', onMessage);
          resolve(null);
        }, 3000);
        const onMessage = (m: Buffer): void => {
          const u = unwrap(m);
          if (!u) return;
          clearTimeout(timer);
          udp.removeListener('message', onMessage);
          resolve(u);
        };
        udp.on('message', onMessage);
        udp.send(datagram, relay.port, relay.host);
      });
    }
    results.push(got ? { target: t.host, from: { host: got.host, port: got.port }, data: got.data.toString('base64') } : { target: t.host, error: 'no answer' });
  }
  console.log(JSON.stringify(results));
  udp.close();
  tcp.destroy();
}

if (process.argv[1]?.endsWith('socks5-udp-client.js') && process.argv.length > 2) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
