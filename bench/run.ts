/**
 * `npm run bench`: in-process figures (bench/in-process.ts), memory per idle
 * peer in a fresh process, and GET /v1/usage under 64 connections against the
 * API in a child process (bench/api-usage.ts); printed as a table and written
 * to bench/results/latest.json, and the CLI's start-up time as the single
 * executable (when built) and under node (bench/startup.ts). `--smoke` runs everything briefly (the test
 * suite does, so the benchmark cannot rot). As root, in network namespaces,
 * a tunnel download through `tunnelbyte serve` alone and under an API flood
 * (bench/api-flood.ts; skipped with a note otherwise), and `--e2e` adds the end-to-end comparison with wireguard-go (bench/e2e.ts).
 * `--flood` adds the handshake flood against tunnelbyte-wg and wireguard-go
 * as exits (bench/flood.ts). `--rounds N` and `--seconds S` change the rounds
 * (3) and the seconds per iperf3 run (5) of both. `--fuzz` runs the datagram
 * and UAPI fuzzers longer than the suite does (bench/fuzz.ts; `--fuzz-count N`). `--netstack` adds the
 * userspace TCP/IP stack's flow through wireguard-go to Linux TCP (bench/netstack.ts). `--proxy`
 * adds downloads through `tunnelbyte proxy` (SOCKS5, HTTP, CONNECT) from wireguard-go's side (bench/proxy.ts).
 * `--fleet` adds `tunnelbyte control` under 1,000 nodes' heartbeats and usage reports (bench/fleet.ts;
 * `--fleet-nodes N`, `--fleet-sessions N`, `--fleet-seconds S`); no root needed. `--fleet-e2e` (root) adds
 * the time from a session created through the API to a joined node answering its handshake (bench/fleet-e2e.ts).
 * `--netstack-loss` runs that flow again at 1 % and at 5 % loss both ways (nftables on the namespace's
 * loopback), with the sender's timeouts, RACK losses and tail loss probes (bench/netstack.ts).
 * `--netstack-exit` compares `serve --netstack` with the TUN exit in the same run: iperf3 TCP and UDP (-u at 500 Mbit/s) both ways,
 * connections per second, a QUIC download (ngtcp2's example client and server) and memory per relayed
 * connection through each (bench/netstack-exit.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { benchAead, benchAllowedIps, benchDataPath, benchHandshakes, benchIdlePeerMemory, benchX25519, type Row } from './in-process.js';
import { benchApiUsage } from './api-usage.js';
import { benchStartup } from './startup.js';
import { nativeBackend, nobleBackend, nodeBackend } from '../src/crypto/backend.js';

const smoke = process.argv.includes('--smoke');
const e2e = process.argv.includes('--e2e');
const floodMany = process.argv.includes('--flood-many');
const flood = process.argv.includes('--flood') || floodMany;
const fuzz = process.argv.includes('--fuzz');
const netstack = process.argv.includes('--netstack');
const netstackLoss = process.argv.includes('--netstack-loss');
const proxy = process.argv.includes('--proxy');
const fleet = process.argv.includes('--fleet');
const fleetE2e = process.argv.includes('--fleet-e2e');
const netstackExit = process.argv.includes('--netstack-exit');
function numberArg(flag: string, fallback: number): number {
  const i = process.argv.indexOf(flag);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!(v > 0)) throw new Error(`${flag} needs a positive number`);
  return v;
}
const rounds = numberArg('--rounds', smoke ? 1 : 3);
const seconds = numberArg('--seconds', smoke ? 1 : 5);
const details: Record<string, unknown> = {};
const scale = smoke ? 0.02 : 1;

const rows: Row[] = [
  ...benchX25519(scale),
  ...benchAead(scale),
  ...(nativeBackend ? benchDataPath(scale, nativeBackend) : []),
  ...benchDataPath(scale, nodeBackend),
  ...benchDataPath(scale, { ...nobleBackend, x25519: nodeBackend.x25519 }),
  ...benchHandshakes(scale),
  ...benchAllowedIps(scale),
  ...benchIdlePeerMemory(scale),
  ...(await benchApiUsage(scale)),
  ...(await benchStartup(scale)),
];
if (process.getuid?.() === 0) {
  const { benchApiFlood } = await import('./api-flood.js');
  const r = await benchApiFlood({ rounds, seconds });
  rows.push(...r.rows);
  details.apiFlood = { rounds, seconds, samples: r.samples };
} else {
  console.error('api-flood: skipped, it needs root (network namespaces): run `sudo npm run bench` for the tunnel-under-API-flood figure');
}
if ((e2e || flood) && process.getuid?.() !== 0) throw new Error('--e2e and --flood need root (they create network namespaces)');
if (e2e) {
  const { benchEndToEnd } = await import('./e2e.js');
  const r = await benchEndToEnd({ rounds, seconds, udpRate: '200M' });
  rows.push(...r.rows);
  details.e2e = { reference: r.anchor, rounds, seconds, samples: r.samples };
}

if (flood) {
  const { benchHandshakeFlood } = await import('./flood.js');
  const r = await benchHandshakeFlood({ rounds, seconds, smoke, manyOnly: floodMany });
  rows.push(...r.rows);
  details.flood = { reference: r.reference, rounds, seconds, samples: r.samples };
}

if (netstack) {
  // bench/netstack.ts: one TCP flow netstack ⇄ wireguard-go ⇄ Linux, both ways, and memory per idle connection (root).
  if (process.getuid?.() !== 0) throw new Error('--netstack needs root (it creates a network namespace)');
  const { benchNetstack } = await import('./netstack.js');
  const r = await benchNetstack({ rounds, seconds, idleConnections: smoke ? 50 : 500 });
  rows.push(...r.rows);
  details.netstack = { rounds, seconds, samples: r.samples };
}

if (netstackLoss) {
  // bench/netstack.ts with loss: the same flow at 1 % and 5 % loss both ways (root: namespace and nftables in it).
  if (process.getuid?.() !== 0) throw new Error('--netstack-loss needs root (it creates a network namespace)');
  const { benchNetstack } = await import('./netstack.js');
  const samples: Record<string, Record<string, number[]>> = {};
  for (const lossPercent of [1, 5]) {
    const r = await benchNetstack({ rounds, seconds, idleConnections: 0, lossPercent });
    rows.push(...r.rows);
    samples[`${lossPercent}%`] = r.samples;
  }
  details.netstackLoss = { rounds, seconds, samples };
}

if (proxy) {
  // bench/proxy.ts: curl through `tunnelbyte proxy` (unprivileged) and its tunnel to wireguard-go (root for the namespace).
  if (process.getuid?.() !== 0) throw new Error('--proxy needs root (it creates a network namespace)');
  const { benchProxy } = await import('./proxy.js');
  const r = await benchProxy({ rounds, bytes: smoke ? 1 << 20 : 64 << 20 });
  rows.push(...r.rows);
  details.proxy = { rounds, samples: r.samples };
}

if (fleet) {
  // bench/fleet.ts: `tunnelbyte control` (its own process, SQLite on disk) under 1,000 enrolled nodes' heartbeats and usage reports.
  const { benchFleet } = await import('./fleet.js');
  const nodes = numberArg('--fleet-nodes', smoke ? 50 : 1000);
  const r = await benchFleet({ nodes, sessions: numberArg('--fleet-sessions', 2 * nodes), seconds: numberArg('--fleet-seconds', smoke ? 6 : 30), saturationSeconds: smoke ? 2 : 10 });
  rows.push(...r.rows);
  details.fleet = r.samples;
}

if (fleetE2e) {
  // bench/fleet-e2e.ts: session created through the API → handshake answered by a joined node (namespaces: root).
  if (process.getuid?.() !== 0) throw new Error('--fleet-e2e needs root (it creates network namespaces)');
  const { benchFleetEndToEnd } = await import('./fleet-e2e.js');
  const r = await benchFleetEndToEnd({ sequential: smoke ? 10 : 100, parallelCount: smoke ? 16 : 200, parallel: 8 });
  rows.push(...r.rows);
  details.fleetE2e = r.samples;
}

if (netstackExit) {
  // bench/netstack-exit.ts: wireguard-go client → serve (TUN) and serve --netstack (uid 65534) → iperf3 and HTTP in an internet namespace.
  if (process.getuid?.() !== 0) throw new Error('--netstack-exit needs root (it creates network namespaces and runs the TUN exit)');
  const { benchNetstackExit } = await import('./netstack-exit.js');
  const r = await benchNetstackExit({ rounds, seconds, idleConnections: smoke ? 50 : 500, quicBytes: smoke ? 4 << 20 : 64 << 20 });
  rows.push(...r.rows);
  details.netstackExit = { rounds, seconds, samples: r.samples };
}

if (fuzz) {
  const { benchFuzz } = await import('./fuzz.js');
  const r = benchFuzz({ count: numberArg('--fuzz-count', smoke ? 20_000 : 5_000_000), seeds: smoke ? 2 : 4, smoke });
  rows.push(...r.rows);
  details.fuzz = r.samples;
}

const fmt = (v: number) => (!Number.isFinite(v) ? 'none' : v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2));
const width = Math.max(...rows.map((r) => r.name.length));
console.log(`${'benchmark'.padEnd(width)}  value`);
for (const r of rows) console.log(`${r.name.padEnd(width)}  ${fmt(r.value)} ${r.unit}${r.note ? `  (${r.note})` : ''}`);

if (!smoke) {
  const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const report = { date: new Date().toISOString(), command: process.argv.slice(2).join(' '), node: process.version, cpus: (await import('node:os')).cpus()[0]?.model, rows, details };
  writeFileSync(dir + 'latest.json', JSON.stringify(report, null, 2) + '\n');
  console.log(`\nwritten: bench/results/latest.json`);
}
