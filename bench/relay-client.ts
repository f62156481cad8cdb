/**
 * The client's side of the exit benchmarks (bench/netstack-exit.ts), run with
 * `node` inside the client's namespace so its connections go through the
 * WireGuard tunnel to the exit:
 *
 *   cps HOST PORT SECONDS CONCURRENCY   short HTTP requests, each on a new TCP connection
 *                                       (GET /echo, Connection: close), CONCURRENCY at a time
 *                                       for SECONDS; prints {ok, failed, seconds}
 *   hold HOST PORT N                    opens N TCP connections (16 connecting at a time) and keeps them open, idle;
 *                                       prints {held, failed} once all are up or failed, then
 *                                       waits until its stdin ends (the benchmark closes it)
 */
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';

const out = (o: unknown): void => console.log(JSON.stringify(o));
const HOLD_IN_FLIGHT = 16;

/** One GET on its own connection; true when a whole 200 answer came. */
function once(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host, port, path: '/echo', agent: false, headers: { connection: 'close' }, timeout: 10_000 }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode === 200));
      res.once('error', () => resolve(false));
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
    req.end();
  });
}

async function cps(host: string, port: number, seconds: number, concurrency: number): Promise<void> {
  let ok = 0;
  let failed = 0;
  const start = performance.now();
  const until = start + seconds * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < until) {
      if (await once(host, port)) ok++;
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  out({ ok, failed, seconds: (performance.now() - start) / 1000 });
}

/** One TCP connection, kept open; resolves true once connected, false when it failed. */
function openOne(host: string, port: number, socks: Socket[]): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.setTimeout(30_000, () => s.destroy());
    s.once('connect', () => {
      s.setTimeout(0);
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('close', () => resolve(false));
    socks.push(s);
  });
}

async function hold(host: string, port: number, n: number): Promise<void> {
  // At most HOLD_IN_FLIGHT connects at a time: an exit may bound the SYNs it holds per client (a browser opens a few at once, not hundreds).
  const socks: Socket[] = [];
  let held = 0;
  let next = 0;
  const opener = async (): Promise<void> => {
    while (next < n) {
      next++;
      if (await openOne(host, port, socks)) held++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(HOLD_IN_FLIGHT, n) }, opener));
  out({ held, failed: n - held });
  process.stdin.resume();
  process.stdin.once('end', () => {
    for (const s of socks) s.destroy();
    process.exit(0);
  });
}

const [mode, host, port, a, b] = process.argv.slice(2);
if (mode === 'cps') await cps(host!, Number(port), Number(a), Number(b));
else if (mode === 'hold') await hold(host!, Number(port), Number(a));
else if (mode !== undefined) throw new Error(`unknown mode ${mode}`);
