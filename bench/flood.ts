/**
 * Handshake flood against an exit (root only; `npm run bench -- --flood`).
 *
 *   C  198.51.100.2  the anchor wireguard-go client: iperf3 downloads through the tunnel
 *   F  198.51.101.2  the flooder (bench/handshake-flooder.cc, compiled here with g++):
 *                    handshake initiations with a VALID mac1 for the server's public key,
 *                    which every customer knows, at 0 / 4k / 12k / max per second from
 *                    one address, then 12k and max spread over 64 (198.51.101.10-73),
 *                    which a per-source share does not stop
 *   L  198.51.102.2  during each flood, a new legitimate client (its own key, just added
 *                    as a peer) pings the exit: the time until that ping is answered is
 *                    the time its handshake took, cookie exchange included
 *   S  198.51.100.1, 198.51.101.1, 198.51.102.1: the server — tunnelbyte-wg or the
 *                    anchor wireguard-go, same keys, same run, alternated per round
 *
 * Per level: the flood starts, after 1 s iperf3 -R runs for `seconds` and the new
 * client's ping starts (answered within 10 s or counted as failed),
 * then the flood stops. Recorded: the exit's download rate, the rate the flooder
 * reached, the handshake time, the server daemon's CPU share and the datagrams the
 * kernel dropped at the server's full UDP socket (Udp RcvbufErrors of the server's
 * namespace). The flooder is bounded in count and time (and by alarm() in itself);
 * all traffic stays in the namespaces made here, removed afterwards.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Netns, veth } from '../test/support/netns.js';
import { configure, genKeys, ifname, keyDir, waitPing } from '../test/support/wg.js';
import { anchorMissing, cpuSeconds, startDaemon, type Daemon } from './daemons.js';
import type { Row } from './in-process.js';
import { finish, sleep, startIperfServer } from './processes.js';
import { median } from './stats.js';

/** A flood level: initiations per second (-1: no flood, 0: as fast as the flooder can) from `sources` addresses. */
interface Level {
  rate: number;
  sources: number;
}
/** Many addresses: each stays under a per-source share, together they fill the handshake queue. */
const MANY_SOURCES = 64;
const FLOOD_LEVELS: Level[] = [
  { rate: -1, sources: 1 },
  { rate: 4000, sources: 1 },
  { rate: 12000, sources: 1 },
  { rate: 0, sources: 1 },
  { rate: 12000, sources: MANY_SOURCES },
  { rate: 0, sources: MANY_SOURCES },
];
/** The smoke run (inside `npm test`) keeps two levels and a shorter wait for the new client. */
const SMOKE_LEVELS: Level[] = [
  { rate: -1, sources: 1 },
  { rate: 12000, sources: MANY_SOURCES },
];
const MAX_PER_LEVEL = 5_000_000;

const label = (l: Level) => (l.rate < 0 ? 'no flood' : l.rate === 0 ? 'max' : `${l.rate / 1000}k/s`) + (l.sources > 1 ? ` from ${l.sources} addresses` : '');

/** Compiles the flooder (g++, no library beyond libc) next to the compiled benchmark. */
export function buildFlooder(): string {
  const src = fileURLToPath(new URL('../../bench/handshake-flooder.cc', import.meta.url));
  const dir = fileURLToPath(new URL('./bin/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const out = dir + 'handshake-flooder';
  execFileSync('g++', ['-O2', '-std=c++17', '-o', out, src]);
  return out;
}

/** Datagrams the kernel dropped for want of receive buffer in `ns` (Udp: RcvbufErrors, /proc/net/snmp). */
export function rcvbufErrors(ns: Netns): number {
  const lines = ns.run('cat', ['/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Udp:'));
  const keys = lines[0]!.split(/\s+/);
  const vals = lines[1]!.split(/\s+/);
  return Number(vals[keys.indexOf('RcvbufErrors')]);
}

interface LevelSample {
  server: Daemon;
  round: number;
  rate: number;
  sources: number;
  floodPerSecond: number;
  downMbps: number;
  handshakeS: number | null;
  serverCpuPct: number;
  socketDrops: number;
}

interface Exit {
  s: Netns;
  c: Netns;
  f: Netns;
  l: Netns;
  S: string;
  serverPid: number;
  serverPubHex: string;
  serverPub: string;
  keys: ReturnType<typeof keyDir>;
  client: Daemon;
  newClients: number;
}

function setUp(server: Daemon, client: Daemon): Exit {
  const s = Netns.create('S');
  const c = Netns.create('C');
  const f = Netns.create('F');
  const l = Netns.create('L');
  const keys = keyDir();
  veth(s, ['198.51.100.1/24'], c, ['198.51.100.2/24']);
  // The flooder's addresses: .2, and .10 onwards for the many-address levels.
  veth(s, ['198.51.101.1/24'], f, ['198.51.101.2/24', ...Array.from({ length: MANY_SOURCES }, (_, i) => `198.51.101.${10 + i}/24`)]);
  veth(s, ['198.51.102.1/24'], l, ['198.51.102.2/24']);
  const S = ifname('wgS');
  const C = ifname('wgC');
  const ks = genKeys();
  const kc = genKeys();
  const serverPid = startDaemon(s, server, S);
  startDaemon(c, client, C);
  configure(s, S, { privFile: keys.write('s', ks.priv), port: 51820, addrs: ['192.0.2.1/24'] });
  configure(c, C, { privFile: keys.write('c', kc.priv), addrs: ['192.0.2.2/24'] });
  s.run('wg', ['set', S, 'peer', kc.pub, 'allowed-ips', '192.0.2.2/32']);
  c.run('wg', ['set', C, 'peer', ks.pub, 'allowed-ips', '192.0.2.1/32', 'endpoint', '198.51.100.1:51820']);
  return { s, c, f, l, S, serverPid, serverPub: ks.pub, serverPubHex: Buffer.from(ks.pub, 'base64').toString('hex'), keys, client, newClients: 0 };
}

function tearDown(x: Exit): void {
  x.keys.cleanup();
  for (const ns of [x.s, x.c, x.f, x.l]) ns.destroy();
}

/** A new client in L, its key just added on the server; resolves with seconds until its first ping is answered, or null. */
async function newClientHandshake(x: Exit, timeoutS: number): Promise<number | null> {
  const n = x.newClients++;
  const L = ifname('wgL');
  const k = genKeys();
  const addr = `192.0.2.${10 + n}`;
  startDaemon(x.l, x.client, L);
  configure(x.l, L, { privFile: x.keys.write(`l${n}`, k.priv), addrs: [`${addr}/24`] });
  x.s.run('wg', ['set', x.S, 'peer', k.pub, 'allowed-ips', `${addr}/32`]);
  x.l.run('wg', ['set', L, 'peer', x.serverPub, 'allowed-ips', '192.0.2.1/32', 'endpoint', '198.51.102.1:51820']);
  const t0 = performance.now();
  const ping = await finish(x.l.spawn('ping', ['-n', '-c', '1', '-W', String(timeoutS), '192.0.2.1']), (timeoutS + 5) * 1000);
  const s = (performance.now() - t0) / 1000;
  x.l.try('ip', ['link', 'del', L]);
  x.s.try('wg', ['set', x.S, 'peer', k.pub, 'remove']);
  return ping.code === 0 ? s : null;
}

async function level(x: Exit, server: Daemon, round: number, { rate, sources }: Level, seconds: number, handshakeTimeoutS: number, flooder: string): Promise<LevelSample> {
  await waitPing(x.c, '192.0.2.1', 20_000);
  const iperfSrv = await startIperfServer(x.s, '192.0.2.1', true);
  const floodSeconds = 1 + Math.max(seconds, handshakeTimeoutS) + 2;
  const drops0 = rcvbufErrors(x.s);
  const cpu0 = cpuSeconds(x.serverPid);
  const t0 = performance.now();
  // `ip netns exec` execs the flooder, so the child's PID is the flooder's own (SIGTERM makes it print its count).
  const from = sources > 1 ? [String(sources), '198.51.101.10'] : [];
  const floodChild = rate < 0 ? null : x.f.spawn(flooder, ['flood', '198.51.101.1', '51820', x.serverPubHex, String(rate), String(floodSeconds), String(MAX_PER_LEVEL), ...from]);
  const flood = floodChild ? finish(floodChild, (floodSeconds + 10) * 1000) : null;
  await sleep(1000);
  const download = finish(x.c.spawn('iperf3', ['-c', '192.0.2.1', '-R', '-t', String(seconds), '-J', '--connect-timeout', '5000']), (seconds + 30) * 1000);
  await sleep(500);
  const handshakeS = await newClientHandshake(x, handshakeTimeoutS);
  const dl = await download;
  floodChild?.kill('SIGTERM');
  const fl = flood ? await flood : null;
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(x.serverPid) - cpu0;
  const drops = rcvbufErrors(x.s) - drops0;
  iperfSrv.kill();
  let downMbps = 0;
  try {
    const j = JSON.parse(dl.stdout);
    downMbps = j.error ? 0 : j.end.sum_received.bits_per_second / 1e6;
  } catch {
    downMbps = 0; // iperf3 could not even connect through the tunnel
  }
  const sent = fl ? (JSON.parse(fl.stdout.trim().split('\n').pop() || '{}') as { sent?: number; seconds?: number }) : null;
  return {
    server,
    round,
    rate,
    sources,
    floodPerSecond: sent?.sent && sent.seconds ? sent.sent / sent.seconds : 0,
    downMbps,
    handshakeS,
    serverCpuPct: (100 * cpu) / wall,
    socketDrops: drops,
  };
}

export interface Flood {
  rows: Row[];
  samples: LevelSample[];
  reference: string;
}

/** The many-address levels alone (`--flood-many`): the floods a per-source share does not stop. */
const MANY_LEVELS: Level[] = FLOOD_LEVELS.filter((l) => l.sources > 1);

export async function benchHandshakeFlood(opts: { rounds: number; seconds: number; smoke: boolean; manyOnly?: boolean }): Promise<Flood> {
  const levels = opts.smoke ? SMOKE_LEVELS : opts.manyOnly ? MANY_LEVELS : FLOOD_LEVELS;
  const handshakeTimeoutS = opts.smoke ? 6 : 10;
  const missing = anchorMissing();
  if (missing) console.error(`\n!! flood: ${missing}\n!! flood: Debian's wireguard-go stands in as the reference server and client.\n`);
  const ref: Daemon = missing ? 'wg-go-debian' : 'wg-go-anchor';
  const flooder = buildFlooder();
  const servers: Daemon[] = ['tunnelbyte-wg', ref];
  const samples: LevelSample[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    for (const server of round % 2 ? servers : [...servers].reverse()) {
      const x = setUp(server, ref);
      try {
        for (const l of levels) {
          const smp = await level(x, server, round, l, opts.seconds, handshakeTimeoutS, flooder);
          samples.push(smp);
          console.error(
            `  flood round ${round} ${server} ${label(l)}: down ${smp.downMbps.toFixed(0)} Mbit/s, flood ${Math.round(smp.floodPerSecond)}/s, ` +
              `new client ${smp.handshakeS === null ? `no handshake in ${handshakeTimeoutS} s` : `${smp.handshakeS.toFixed(2)} s`}, server CPU ${smp.serverCpuPct.toFixed(0)}%, socket drops ${smp.socketDrops}`,
          );
          await sleep(1000);
        }
      } finally {
        tearDown(x);
      }
    }
  }
  const rows: Row[] = [];
  for (const l of levels) {
    for (const server of servers) {
      const of = samples.filter((x) => x.server === server && x.rate === l.rate && x.sources === l.sources);
      const hs = of.map((x) => x.handshakeS ?? Infinity);
      const ok = hs.filter(Number.isFinite).length;
      const name = `flood ${label(l)}, ${server} server`;
      rows.push({
        name: `${name}: exit download`,
        value: median(of.map((x) => x.downMbps)),
        unit: 'Mbit/s',
        note: `range ${Math.round(Math.min(...of.map((x) => x.downMbps)))}–${Math.round(Math.max(...of.map((x) => x.downMbps)))}; ${l.rate < 0 ? '' : `flood reached ${Math.round(median(of.map((x) => x.floodPerSecond))).toLocaleString('en-US')}/s; `}server CPU ${median(of.map((x) => x.serverCpuPct)).toFixed(0)}%; ${Math.round(median(of.map((x) => x.socketDrops))).toLocaleString('en-US')} datagrams dropped at the socket`,
      });
      rows.push({ name: `${name}: new client's handshake`, value: median(hs), unit: 's', note: `${ok} of ${of.length} within ${handshakeTimeoutS} s` });
    }
  }
  return { rows, samples, reference: ref };
}
