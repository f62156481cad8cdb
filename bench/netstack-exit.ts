/**
 * The netstack exit against the TUN exit (root, network namespaces):
 *
 *   nsI "internet"  203.0.113.1 — iperf3 -s, an HTTP server (/echo: a short answer), a TCP "hold" server,
 *                   gtlsserver (ngtcp2's example QUIC server, Debian's ngtcp2-server) on UDP 4433
 *   nsE "exit"      203.0.113.2 (default route), 198.51.100.1 towards the client; runs one exit at a time:
 *                   `tunnelbyte serve` (TUN + nftables NAT, root) or `tunnelbyte serve --netstack`
 *                   (uid 65534, no capabilities: test/support/unprivileged.ts)
 *   nsC             198.51.100.2: Debian's wireguard-go loaded with the session's config from the exit's API
 *
 * For each exit, in the same run and alternated (the order reversed every
 * other round, so drift on a shared machine reaches both): iperf3 through the
 * exit both ways (client→internet and -R), with the exit process's CPU time
 * per GB (bench/daemons.ts); short HTTP requests, each on a new connection,
 * for `seconds` with 32 at a time (bench/relay-client.ts cps): connections per
 * second through the exit; plain UDP both ways at a fixed offered rate (iperf3 -u -b 500M, 1,200-byte
 * datagrams, QUIC's size): what was delivered and iperf3's loss %; one QUIC download of `quicBytes` with ngtcp2's
 * example client (gtlsclient: QUIC v1, TLS 1.3, one UDP flow through the
 * exit), timed from start to exit and checked for its length; and the exit
 * process's RSS growth over N idle relayed TCP connections, per connection (the TUN exit relays in the kernel:
 * its process hardly grows, the kernel's conntrack and socket memory are not
 * in the figure). Each exit starts on a fresh data directory (signup, session,
 * config into wireguard-go) and is stopped with SIGTERM after its sample.
 * Everything stays inside the namespaces made here; they are removed afterwards.
 * Without gtlsclient and gtlsserver the QUIC rows are left out (and it says so).
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Netns, veth, waitFor } from '../test/support/netns.js';
import { ifname, startInterface } from '../test/support/wg.js';
import { REPO_ROOT } from '../test/support/repo.js';
import { loadSessionConfig, signupAndSession } from '../test/support/exit-net.js';
import { startKernelPeer } from '../test/support/kernel-peer-run.js';
import { dropMode, privateDir, removeDir, unprivilegedArgv, type Drop } from '../test/support/unprivileged.js';
import { cpuSeconds } from './daemons.js';
import type { Row } from './in-process.js';
import { finish, startIperfServer, stopIperfServer } from './processes.js';
import { median } from './stats.js';

const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');
const FAR = join(REPO_ROOT, 'dist/test/support/proxy-peer.js');
const CLIENT = join(REPO_ROOT, 'dist/bench/relay-client.js');
const API = 'http://198.51.100.1:8080';
const CONCURRENCY = 32;
const QUIC_PORT = 4433;
/** The offered rate of the plain UDP runs (iperf3 -u -b): the issue's goal for the netstack exit. */
const UDP_RATE_MBPS = 500;
/** Their datagram payload: QUIC's usual 1,200 bytes, well inside the tunnel's MTU. */
const UDP_LEN = 1200;

type Exit = 'tun' | 'netstack';
const LABEL: Record<Exit, string> = { tun: 'serve (TUN)', netstack: 'serve --netstack' };

interface Transfer {
  mbps: number;
  cpuPerGB: number;
}

/** An iperf3 -u run: delivered Mbit/s (offered × (1 − loss)) and the loss iperf3 reports. */
interface UdpTransfer {
  mbps: number;
  lossPct: number;
}

interface Sample {
  exit: Exit;
  round: number;
  up: Transfer;
  down: Transfer;
  udpUp: UdpTransfer;
  udpDown: UdpTransfer;
  cps: number;
  cpsFailed: number;
  rssPerConnection: number;
  held: number;
  /** QUIC download through the exit (Mbit/s), null without ngtcp2's tools. */
  quicMbps: number | null;
}

interface World {
  inet: Netns;
  exit: Netns;
  client: Netns;
  wg: string;
  drop: Drop;
  /** The directory of the file gtlsserver serves (`quic`), null without ngtcp2's tools. */
  quicDir: string | null;
  quicBytes: number;
}

/** Starts one exit on a fresh data directory in the exit namespace; resolves once its API answers. */
async function startExit(w: World, kind: Exit, dir: string): Promise<{ proc: ChildProcess; log: () => string }> {
  const common = ['serve', '--data', join(dir, 'state'), '--endpoint', '198.51.100.1', '--sync-interval', '5', '--anonymous-quota', 'unlimited', '--log-level', 'warn'];
  const [cmd, args] = kind === 'netstack' ? unprivilegedArgv(w.drop, process.execPath, [TB, ...common, '--netstack']) : [process.execPath, [TB, ...common, '--tun', ifname('tbb')]];
  const proc = w.exit.spawn(cmd, args, { env: { PATH: process.env.PATH, HOME: dir, XDG_CACHE_HOME: join(dir, 'cache') } });
  let log = '';
  proc.stdout!.on('data', (d) => (log += d));
  proc.stderr!.on('data', (d) => (log += d));
  await waitFor(`${LABEL[kind]} API up`, () => proc.exitCode !== null || w.exit.try('curl', ['-sf', 'http://127.0.0.1:8080/v1/health']).status === 0, 60_000);
  if (proc.exitCode !== null) throw new Error(`${LABEL[kind]} exited ${proc.exitCode}: ${log.slice(-2000)}`);
  return { proc, log: () => log };
}

/** One iperf3 run from the client to the internet through the exit; Mbit/s and the exit's CPU seconds per GB. */
async function iperf(w: World, exitPid: number, args: string[], seconds: number): Promise<Transfer> {
  const srv = await startIperfServer(w.inet, '203.0.113.1', true);
  try {
    const c0 = cpuSeconds(exitPid);
    const out = JSON.parse(w.client.run('iperf3', ['-c', '203.0.113.1', '-t', String(seconds), '-J', ...args], { timeoutMs: (seconds + 60) * 1000 }));
    const sum = out.end.sum_received;
    return { mbps: sum.bits_per_second / 1e6, cpuPerGB: (cpuSeconds(exitPid) - c0) / (Number(sum.bytes) / 1e9) };
  } finally {
    await stopIperfServer(srv);
  }
}

/** One iperf3 -u run at UDP_RATE_MBPS from the client to the internet through the exit (with -R: back). */
async function iperfUdp(w: World, args: string[], seconds: number): Promise<UdpTransfer> {
  const srv = await startIperfServer(w.inet, '203.0.113.1', true);
  try {
    const out = JSON.parse(w.client.run('iperf3', ['-c', '203.0.113.1', '-u', '-b', `${UDP_RATE_MBPS}M`, '-l', String(UDP_LEN), '-t', String(seconds), '-J', ...args], { timeoutMs: (seconds + 60) * 1000 }));
    // end.sum: the sender's rate and the receiver's count of lost datagrams (iperf3 carries it back either way).
    const sum = out.end.sum as { bits_per_second: number; lost_percent: number };
    return { mbps: (sum.bits_per_second / 1e6) * (1 - sum.lost_percent / 100), lossPct: sum.lost_percent };
  } finally {
    await stopIperfServer(srv);
  }
}

const rssBytes = (pid: number): number => Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

async function runOnce(w: World, kind: Exit, round: number, o: { seconds: number; idleConnections: number }): Promise<Sample> {
  const dir = privateDir(kind === 'netstack' ? w.drop : 'none', 'tb-bench-nsexit-');
  let exit: { proc: ChildProcess; log: () => string } | null = null;
  try {
    exit = await startExit(w, kind, dir);
    const pid = exit.proc.pid!;
    const { session } = signupAndSession(w.client, API, `fp-bench-${kind}-${round}-${process.pid}`);
    loadSessionConfig(w.client, w.wg, session, { endpoint: '198.51.100.1:51820', routes: ['203.0.113.0/24'] });
    await waitFor('the tunnel through the exit', () => w.client.try('curl', ['-sf', '--max-time', '3', 'http://203.0.113.1:8000/echo']).status === 0, 30_000, 250);

    // Memory per relayed idle connection first, on the fresh process (before the flows leave freed heap that new
    // connections would reuse unseen): the exit's RSS before and after N connections through it are up and settled.
    const port = 9100 + round;
    const holder = await startKernelPeer(w.inet, 'hold', '203.0.113.1', port);
    await new Promise((r) => setTimeout(r, 1000));
    const rss0 = rssBytes(pid);
    const client = w.client.spawn(process.execPath, [CLIENT, 'hold', '203.0.113.1', String(port), String(o.idleConnections)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let holdOut = '';
    client.stdout!.on('data', (d) => (holdOut += d));
    const held = await waitFor('the idle connections up', () => {
      const line = holdOut.split('\n').find((l) => l.startsWith('{'));
      return line ? (JSON.parse(line) as { held: number; failed: number }) : null;
    }, 120_000, 100);
    await new Promise((r) => setTimeout(r, 2000));
    const rss1 = rssBytes(pid);
    client.stdin!.end();
    holder.proc.kill();

    const up = await iperf(w, pid, [], o.seconds);
    const down = await iperf(w, pid, ['-R'], o.seconds);
    const udpUp = await iperfUdp(w, [], o.seconds);
    const udpDown = await iperfUdp(w, ['-R'], o.seconds);

    const c = await finish(w.client.spawn(process.execPath, [CLIENT, 'cps', '203.0.113.1', '8000', String(o.seconds), String(CONCURRENCY)]), (o.seconds + 60) * 1000);
    const cpsResult = JSON.parse(c.stdout.trim().split('\n').pop()!) as { ok: number; failed: number; seconds: number };
    const quicMbps = w.quicDir ? await quicDownload(w, w.quicDir, `${kind}-${round}`) : null;

    return {
      exit: kind,
      round,
      up,
      down,
      udpUp,
      udpDown,
      cps: cpsResult.ok / cpsResult.seconds,
      cpsFailed: cpsResult.failed,
      rssPerConnection: held!.held > 0 ? (rss1 - rss0) / held!.held : NaN,
      held: held!.held,
      quicMbps,
    };
  } finally {
    if (exit) {
      exit.proc.kill('SIGTERM');
      await finish(exit.proc, 20_000);
    }
    removeDir(dir);
  }
}

/** gtlsclient in the client namespace downloads /quic through the exit: Mbit/s from its start to its exit; throws unless every byte arrived. */
async function quicDownload(w: World, quicDir: string, tag: string): Promise<number> {
  const out = join(quicDir, `dl-${tag}`);
  mkdirSync(out);
  const t0 = process.hrtime.bigint();
  const r = await finish(
    w.client.spawn('gtlsclient', ['--quiet', '--timeout=20s', '--exit-on-all-streams-close', `--download=${out}`, '203.0.113.1', String(QUIC_PORT), `https://203.0.113.1:${QUIC_PORT}/quic`]),
    120_000,
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  let got = 0;
  try {
    got = statSync(join(out, 'quic')).size;
  } catch {
    // nothing saved
  }
  if (got !== w.quicBytes) throw new Error(`QUIC download through the exit (${tag}): ${got} of ${w.quicBytes} bytes (gtlsclient exit ${r.code})`);
  return (w.quicBytes * 8) / seconds / 1e6;
}

/** gtlsserver in the internet namespace serving `quicBytes` random bytes as /quic, with a self-signed key made by openssl; null when a tool is missing. */
async function startQuicServer(inet: Netns, quicBytes: number): Promise<string | null> {
  for (const tool of ['gtlsclient', 'gtlsserver', 'openssl']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
      console.error(`  !! netstack-exit: ${tool} is missing (apt-get install ngtcp2-client ngtcp2-server openssl): no QUIC rows`);
      return null;
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'tb-bench-quic-'));
  inet.onDestroy(() => removeDir(dir));
  const htdocs = join(dir, 'htdocs');
  mkdirSync(htdocs);
  const key = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=quic.bench.test'], { encoding: 'utf8' });
  if (key.status !== 0) throw new Error(`openssl: ${key.stderr}`);
  const chunk = randomBytes(1 << 20);
  const body = Buffer.alloc(quicBytes);
  for (let o = 0; o < quicBytes; o += chunk.length) chunk.copy(body, o, 0, Math.min(chunk.length, quicBytes - o));
  writeFileSync(join(htdocs, 'quic'), body);
  inet.spawn('gtlsserver', ['--quiet', `--htdocs=${htdocs}`, '203.0.113.1', String(QUIC_PORT), join(dir, 'key.pem'), join(dir, 'cert.pem')]);
  await waitFor('gtlsserver on UDP 4433', () => inet.run('ss', ['-Huln', `sport = :${QUIC_PORT}`]).includes(`:${QUIC_PORT}`), 20_000, 50);
  return dir;
}

export async function benchNetstackExit(opts: { rounds: number; seconds: number; idleConnections: number; quicBytes: number }): Promise<{ rows: Row[]; samples: Sample[] }> {
  const inet = Netns.create('bI');
  const exit = Netns.create('bE');
  const client = Netns.create('bC');
  try {
    veth(inet, ['203.0.113.1/24'], exit, ['203.0.113.2/24']);
    exit.run('ip', ['route', 'add', 'default', 'via', '203.0.113.1']);
    veth(exit, ['198.51.100.1/24'], client, ['198.51.100.2/24']);
    const far = inet.spawn(process.execPath, [FAR, '0.0.0.0', '8000', '203.0.113.1', 'web.bench.test', '203.0.113.1', '2001:db8::1']);
    let farOut = '';
    far.stdout!.on('data', (d) => (farOut += d));
    await waitFor('the internet HTTP server', () => farOut.includes('ready'), 20_000, 20);
    const wg = ifname('wgb');
    startInterface(client, 'wireguard-go', wg);
    const quicDir = await startQuicServer(inet, opts.quicBytes);
    const w: World = { inet, exit, client, wg, drop: dropMode(), quicDir, quicBytes: opts.quicBytes };

    const samples: Sample[] = [];
    const order: Exit[] = ['tun', 'netstack'];
    for (let round = 1; round <= opts.rounds; round++) {
      for (const kind of round % 2 ? order : [...order].reverse()) {
        const s = await runOnce(w, kind, round, opts);
        samples.push(s);
        console.error(
          `  netstack-exit round ${round} ${LABEL[kind]}: up ${s.up.mbps.toFixed(0)} Mbit/s (exit CPU ${s.up.cpuPerGB.toFixed(1)} s/GB), down ${s.down.mbps.toFixed(0)} Mbit/s (${s.down.cpuPerGB.toFixed(1)} s/GB), UDP at ${UDP_RATE_MBPS} Mbit/s up ${s.udpUp.mbps.toFixed(0)} (${s.udpUp.lossPct.toFixed(1)} % lost), down ${s.udpDown.mbps.toFixed(0)} (${s.udpDown.lossPct.toFixed(1)} % lost), ${s.cps.toFixed(0)} connections/s (${s.cpsFailed} failed), ${(s.rssPerConnection / 1024).toFixed(1)} KiB RSS per idle connection (${s.held} held)${s.quicMbps === null ? '' : `, QUIC download ${s.quicMbps.toFixed(0)} Mbit/s`}`,
        );
      }
    }
    const med = (kind: Exit, pick: (s: Sample) => number) => median(samples.filter((s) => s.exit === kind).map(pick));
    const ratio = (pick: (s: Sample) => number) => `${(med('netstack', pick) / med('tun', pick)).toFixed(2)}× the TUN exit`;
    const rows: Row[] = [];
    for (const kind of order) {
      const name = `exit ${LABEL[kind]}`;
      const vs = (pick: (s: Sample) => number) => (kind === 'netstack' ? ratio(pick) : `median of ${opts.rounds}`);
      rows.push({ name: `${name}: TCP client→internet (iperf3)`, value: med(kind, (s) => s.up.mbps), unit: 'Mbit/s', note: vs((s) => s.up.mbps) });
      rows.push({ name: `${name}: TCP internet→client (iperf3 -R)`, value: med(kind, (s) => s.down.mbps), unit: 'Mbit/s', note: vs((s) => s.down.mbps) });
      rows.push({ name: `${name}: exit CPU, TCP client→internet`, value: med(kind, (s) => s.up.cpuPerGB), unit: 's/GB' });
      rows.push({ name: `${name}: exit CPU, TCP internet→client`, value: med(kind, (s) => s.down.cpuPerGB), unit: 's/GB' });
      const udp = `${UDP_RATE_MBPS} Mbit/s offered, ${UDP_LEN}-byte datagrams`;
      rows.push({ name: `${name}: UDP client→internet (iperf3 -u), delivered`, value: med(kind, (s) => s.udpUp.mbps), unit: 'Mbit/s', note: `${udp}; ${vs((s) => s.udpUp.mbps)}` });
      rows.push({ name: `${name}: UDP client→internet (iperf3 -u), lost`, value: med(kind, (s) => s.udpUp.lossPct), unit: '%', note: udp });
      rows.push({ name: `${name}: UDP internet→client (iperf3 -u -R), delivered`, value: med(kind, (s) => s.udpDown.mbps), unit: 'Mbit/s', note: `${udp}; ${vs((s) => s.udpDown.mbps)}` });
      rows.push({ name: `${name}: UDP internet→client (iperf3 -u -R), lost`, value: med(kind, (s) => s.udpDown.lossPct), unit: '%', note: udp });
      rows.push({ name: `${name}: HTTP requests, a new connection each`, value: med(kind, (s) => s.cps), unit: 'connections/s', note: `${CONCURRENCY} at a time; ${vs((s) => s.cps)}` });
      rows.push({ name: `${name}: exit RSS per idle relayed TCP connection`, value: med(kind, (s) => s.rssPerConnection), unit: 'bytes', note: `${opts.idleConnections} connections` });
      if (w.quicDir) {
        rows.push({ name: `${name}: QUIC download (ngtcp2 gtlsclient ← gtlsserver)`, value: med(kind, (s) => s.quicMbps!), unit: 'Mbit/s', note: `${(opts.quicBytes / (1 << 20)).toFixed(0)} MiB, start to exit; ${vs((s) => s.quicMbps!)}` });
      }
    }
    return { rows, samples };
  } finally {
    for (const ns of [client, exit, inet]) ns.destroy();
  }
}
