/**
 * End-to-end throughput against wireguard-go (root only). Two network
 * namespaces joined by a veth, a WireGuard daemon in each, same keys and
 * addresses, and iperf3 through the tunnel in both directions (then UDP at a
 * fixed offered rate). The setups:
 *
 *   pair    both ends the same implementation: tunnelbyte-wg ↔ tunnelbyte-wg
 *           against wg-go-anchor ↔ wg-go-anchor (the reference);
 *   server  the anchor's client, either server: wg-go-anchor → tunnelbyte-wg
 *           against wg-go-anchor → wg-go-anchor (the pair run above);
 *   and as second rows the same against Debian's wireguard-go 0.0.20220316
 *   (Debian pair; Debian client → tunnelbyte-wg server).
 *
 * Every round runs every setup once, the order reversed every other round,
 * so drift on a shared machine reaches all of them; figures are medians over
 * rounds. Each daemon's CPU time (bench/daemons.ts) over each iperf3 run is
 * divided by the bytes iperf3 moved: CPU seconds per GB, per daemon. All
 * traffic stays inside the namespaces made here; they are removed afterwards.
 */
import { Netns, veth } from '../test/support/netns.js';
import { configure, genKeys, ifname, keyDir, waitPing } from '../test/support/wg.js';
import { anchorMissing, cpuSeconds, startDaemon, type Daemon } from './daemons.js';
import type { Row } from './in-process.js';
import { startIperfServer, stopIperfServer } from './processes.js';
import { median } from './stats.js';

export interface Setup {
  id: string;
  mode: 'pair' | 'server';
  client: Daemon;
  server: Daemon;
  /** The setup this one is compared with (same run). */
  reference?: string;
}

interface Transfer {
  mbps: number;
  bytes: number;
  clientCpuPerGB: number;
  serverCpuPerGB: number;
}

interface Sample {
  setup: string;
  round: number;
  up: Transfer;
  down: Transfer;
  udp: Transfer & { lossPct: number };
}

/** The setups, given whether the anchor is there. */
export function e2eSetups(withAnchor: boolean): Setup[] {
  const anchor: Setup[] = [
    { id: 'pair wg-go-anchor', mode: 'pair', client: 'wg-go-anchor', server: 'wg-go-anchor' },
    { id: 'pair tunnelbyte-wg', mode: 'pair', client: 'tunnelbyte-wg', server: 'tunnelbyte-wg', reference: 'pair wg-go-anchor' },
    { id: 'server tunnelbyte-wg, wg-go-anchor client', mode: 'server', client: 'wg-go-anchor', server: 'tunnelbyte-wg', reference: 'pair wg-go-anchor' },
  ];
  const debian: Setup[] = [
    { id: 'pair wg-go-debian', mode: 'pair', client: 'wg-go-debian', server: 'wg-go-debian' },
    { id: 'server tunnelbyte-wg, wg-go-debian client', mode: 'server', client: 'wg-go-debian', server: 'tunnelbyte-wg', reference: 'pair wg-go-debian' },
  ];
  return [...(withAnchor ? anchor : []), ...debian];
}

/** One iperf3 run from `client` to the server's tunnel address, with both daemons' CPU time around it. */
async function iperf(client: Netns, server: Netns, pids: { client: number; server: number }, args: string[], seconds: number): Promise<Transfer & { lossPct: number }> {
  const srv = await startIperfServer(server, '192.0.2.1', true);
  try {
    const c0 = cpuSeconds(pids.client);
    const s0 = cpuSeconds(pids.server);
    const out = JSON.parse(client.run('iperf3', ['-c', '192.0.2.1', '-t', String(seconds), '-J', ...args], { timeoutMs: (seconds + 30) * 1000 }));
    const sum = args.includes('-u') ? out.end.sum : out.end.sum_received;
    const bytes = Number(sum.bytes);
    return {
      mbps: sum.bits_per_second / 1e6,
      bytes,
      clientCpuPerGB: (cpuSeconds(pids.client) - c0) / (bytes / 1e9),
      serverCpuPerGB: (cpuSeconds(pids.server) - s0) / (bytes / 1e9),
      lossPct: args.includes('-u') ? Number(out.end.sum.lost_percent) : 0,
    };
  } finally {
    await stopIperfServer(srv);
  }
}

async function runOnce(setup: Setup, round: number, seconds: number, udpRate: string): Promise<Sample> {
  const s = Netns.create('S');
  const c = Netns.create('C');
  const keys = keyDir();
  try {
    veth(s, ['198.51.100.1/24'], c, ['198.51.100.2/24']);
    const S = ifname('wgS');
    const C = ifname('wgC');
    const ks = genKeys();
    const kc = genKeys();
    const pids = { server: startDaemon(s, setup.server, S), client: startDaemon(c, setup.client, C) };
    configure(s, S, { privFile: keys.write('s', ks.priv), port: 51820, addrs: ['192.0.2.1/24'] });
    configure(c, C, { privFile: keys.write('c', kc.priv), addrs: ['192.0.2.2/24'] });
    s.run('wg', ['set', S, 'peer', kc.pub, 'allowed-ips', '192.0.2.2/32']);
    c.run('wg', ['set', C, 'peer', ks.pub, 'allowed-ips', '192.0.2.1/32', 'endpoint', '198.51.100.1:51820']);
    await waitPing(c, '192.0.2.1');
    const up = await iperf(c, s, pids, [], seconds);
    const down = await iperf(c, s, pids, ['-R'], seconds);
    const udp = await iperf(c, s, pids, ['-u', '-b', udpRate, '-l', '1300'], seconds);
    return { setup: setup.id, round, up, down, udp };
  } finally {
    keys.cleanup();
    s.destroy();
    c.destroy();
  }
}

export interface EndToEnd {
  rows: Row[];
  anchor: string;
  samples: Sample[];
}

export async function benchEndToEnd(opts: { rounds: number; seconds: number; udpRate: string }): Promise<EndToEnd> {
  const missing = anchorMissing();
  if (missing) console.error(`\n!! e2e: ${missing}\n!! e2e: only Debian's wireguard-go is compared; the reference rows are missing from this run.\n`);
  const setups = e2eSetups(!missing);
  const samples: Sample[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    for (const setup of round % 2 ? setups : [...setups].reverse()) {
      const smp = await runOnce(setup, round, opts.seconds, opts.udpRate);
      samples.push(smp);
      const f = (t: Transfer) => `${t.mbps.toFixed(0)} Mbit/s (CPU s/GB client ${t.clientCpuPerGB.toFixed(1)}, server ${t.serverCpuPerGB.toFixed(1)})`;
      console.error(`  e2e round ${round} ${setup.id}: up ${f(smp.up)}, down ${f(smp.down)}, UDP ${smp.udp.mbps.toFixed(0)} Mbit/s loss ${smp.udp.lossPct.toFixed(2)}%`);
    }
  }
  const med = (id: string, pick: (s: Sample) => number) => median(samples.filter((x) => x.setup === id).map(pick));
  const rows: Row[] = [];
  for (const setup of setups) {
    const name = `e2e ${setup.id}`;
    for (const [dir, label] of [['up', 'TCP client→server'], ['down', 'TCP server→client']] as const) {
      const mbps = med(setup.id, (x) => x[dir].mbps);
      const ref = setup.reference ? med(setup.reference, (x) => x[dir].mbps) : 0;
      rows.push({ name: `${name}: ${label}`, value: mbps, unit: 'Mbit/s', note: setup.reference ? `${(mbps / ref).toFixed(2)}× ${setup.reference}` : `median of ${opts.rounds}` });
      rows.push({ name: `${name}: ${label}, ${setup.client} client CPU`, value: med(setup.id, (x) => x[dir].clientCpuPerGB), unit: 's/GB' });
      rows.push({ name: `${name}: ${label}, ${setup.server} server CPU`, value: med(setup.id, (x) => x[dir].serverCpuPerGB), unit: 's/GB' });
    }
    rows.push({ name: `${name}: UDP ${opts.udpRate}bit/s offered`, value: med(setup.id, (x) => x.udp.mbps), unit: 'Mbit/s', note: `${med(setup.id, (x) => x.udp.lossPct).toFixed(2)}% loss` });
  }
  return { rows, anchor: missing ?? 'wireguard-go 0.0.20250522', samples };
}
