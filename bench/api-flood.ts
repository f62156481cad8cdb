/**
 * A tunnel download through `tunnelbyte serve` alone, under an API flood
 * against the same `serve`, and under the same flood against an API served
 * by another process (root only; part of `npm run bench` as root).
 *
 *   I  203.0.113.1    "the internet": the iperf3 server
 *   E  203.0.113.2    the exit, `tunnelbyte serve` with NAT (API on :8080 of every address);
 *      198.51.100.1   towards the client, 198.51.101.1 towards the attacker
 *   C  198.51.100.2   the client: wireguard-go (the anchor, else Debian's) with the config the
 *                     API gave it; iperf3 -R from 203.0.113.1 through the tunnel
 *   A  198.51.101.2   the attacker: autocannon, 32 connections, GET /v1/usage with a wrong
 *                     token, capped at FLOOD_MAX_RATE requests/s and `seconds` + 2 s
 *
 * The third condition floods the API of bench/api-server.ts, a second process in E
 * (reached on E's loopback, the only address it listens on), while the tunnel runs
 * through `serve`: what the flood costs the tunnel when the two do not share a
 * process — the bound the data plane should meet (issue 15). Conditions alternate
 * per round; medians. Traffic stays in the namespaces made here.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Netns, veth, waitFor } from '../test/support/netns.js';
import { loadSessionConfig, signupAndSession } from '../test/support/exit-net.js';
import { ifname } from '../test/support/wg.js';
import { anchorMissing, cpuSeconds, startDaemon, type Daemon } from './daemons.js';
import type { Row } from './in-process.js';
import { finish, sleep, startIperfServer } from './processes.js';
import { median } from './stats.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');
const AUTOCANNON = join(REPO_ROOT, 'node_modules/autocannon/autocannon.js');
const FLOOD_MAX_RATE = 20_000;
const CONDITIONS = ['alone', 'API flood on serve', 'API flood on another process'] as const;
type Condition = (typeof CONDITIONS)[number];

interface Sample {
  condition: Condition;
  round: number;
  downMbps: number;
  floodRequestsPerSecond: number;
  floodStatuses: Record<string, number>;
  serveCpuPct: number;
}

/** bench/api-server.ts in `ns`: a second API process; resolves with its loopback URL. */
async function startOtherApi(ns: Netns): Promise<{ url: string; child: ChildProcess }> {
  const child = ns.spawn(process.execPath, [fileURLToPath(new URL('./api-server.js', import.meta.url))], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`api-flood: second API process exited (${code})`)));
    createInterface({ input: child.stdout! }).once('line', resolve);
  });
  return { url: (JSON.parse(line) as { url: string }).url, child };
}

/** autocannon from `ns`: wrong tokens against GET /v1/usage, bounded in time and rate. */
function startApiFlood(ns: Netns, url: string, seconds: number): Promise<{ code: number | null; stdout: string }> {
  const args = [AUTOCANNON, '-j', '-c', '32', '-d', String(seconds), '-R', String(FLOOD_MAX_RATE), '-H', 'authorization=Bearer tb_wrong_token_from_the_api_flood', '-H', 'x-tb-fingerprint=bench-flood', `${url}/v1/usage`];
  return finish(ns.spawn(process.execPath, args), (seconds + 20) * 1000);
}

export async function benchApiFlood(opts: { rounds: number; seconds: number }): Promise<{ rows: Row[]; samples: Sample[] }> {
  const client: Daemon = anchorMissing() ? 'wg-go-debian' : 'wg-go-anchor';
  const i = Netns.create('I');
  const e = Netns.create('E');
  const c = Netns.create('C');
  const a = Netns.create('A');
  const dir = mkdtempSync(join(tmpdir(), 'tb-bench-apiflood-'));
  let serve: ChildProcess | null = null;
  let other: ChildProcess | null = null;
  const samples: Sample[] = [];
  try {
    veth(i, ['203.0.113.1/24'], e, ['203.0.113.2/24']);
    e.run('ip', ['route', 'add', 'default', 'via', '203.0.113.1']);
    veth(e, ['198.51.100.1/24'], c, ['198.51.100.2/24']);
    veth(e, ['198.51.101.1/24'], a, ['198.51.101.2/24']);
    await startIperfServer(i, '203.0.113.1', false); // one run at a time, a second apart
    const tun = ifname('tbx');
    serve = e.spawn(process.execPath, [TB, 'serve', '--data', dir, '--endpoint', '198.51.100.1', '--tun', tun, '--anonymous-quota', 'unlimited', '--log-level', 'error']);
    let serveLog = '';
    serve.stdout!.on('data', (d) => (serveLog = (serveLog + d).slice(-4000)));
    serve.stderr!.on('data', (d) => (serveLog = (serveLog + d).slice(-4000)));
    await waitFor('serve API', () => {
      if (serve!.exitCode !== null) throw new Error(`tunnelbyte serve exited: ${serveLog}`);
      return e.try('curl', ['-sf', 'http://127.0.0.1:8080/v1/health']).status === 0;
    }, 30_000, 200);
    const servePid = serve.pid!; // `ip netns exec` execs node: the child's PID is serve's own
    const wgIf = ifname('wgc');
    startDaemon(c, client, wgIf);
    const { session } = signupAndSession(c, 'http://198.51.100.1:8080', `bench-api-flood-${process.pid}`);
    loadSessionConfig(c, wgIf, session, { endpoint: '198.51.100.1:51820', routes: ['203.0.113.0/24'] });
    await waitFor('tunnel through serve', () => c.try('ping', ['-c', '1', '-W', '1', '203.0.113.1']).status === 0, 20_000, 200);
    const second = await startOtherApi(e);
    other = second.child;

    for (let round = 1; round <= opts.rounds; round++) {
      for (const condition of round % 2 ? CONDITIONS : [...CONDITIONS].reverse()) {
        const flood =
          condition === 'alone' ? null : condition === 'API flood on serve' ? startApiFlood(a, 'http://198.51.101.1:8080', opts.seconds + 2) : startApiFlood(e, second.url, opts.seconds + 2);
        if (flood) await sleep(1000);
        const cpu0 = cpuSeconds(servePid);
        const t0 = performance.now();
        const dl = await finish(c.spawn('iperf3', ['-c', '203.0.113.1', '-R', '-t', String(opts.seconds), '-J', '--connect-timeout', '5000']), (opts.seconds + 30) * 1000);
        const cpuPct = (100 * (cpuSeconds(servePid) - cpu0)) / ((performance.now() - t0) / 1000);
        const fl = flood ? await flood : null;
        let downMbps = 0;
        try {
          const j = JSON.parse(dl.stdout);
          downMbps = j.error ? 0 : j.end.sum_received.bits_per_second / 1e6;
        } catch {
          downMbps = 0; // iperf3 could not connect through the tunnel
        }
        const ac = fl ? (JSON.parse(fl.stdout) as { requests: { average: number }; statusCodeStats?: Record<string, { count: number }> }) : null;
        const statuses: Record<string, number> = {};
        for (const [code, v] of Object.entries(ac?.statusCodeStats ?? {})) statuses[code] = v.count;
        const smp: Sample = { condition, round, downMbps, floodRequestsPerSecond: ac?.requests.average ?? 0, floodStatuses: statuses, serveCpuPct: cpuPct };
        samples.push(smp);
        console.error(`  api-flood round ${round} ${condition}: down ${downMbps.toFixed(0)} Mbit/s, flood ${Math.round(smp.floodRequestsPerSecond)} requests/s ${JSON.stringify(statuses)}, serve CPU ${cpuPct.toFixed(0)}%`);
        await sleep(1000);
      }
    }
  } finally {
    other?.stdin?.end();
    serve?.kill('SIGTERM');
    if (serve) await Promise.race([new Promise((r) => serve!.once('exit', r)), sleep(5000)]);
    for (const ns of [a, c, e, i]) ns.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  const rows: Row[] = [];
  const alone = median(samples.filter((x) => x.condition === 'alone').map((x) => x.downMbps));
  for (const condition of CONDITIONS) {
    const of = samples.filter((x) => x.condition === condition);
    const mbps = median(of.map((x) => x.downMbps));
    const rps = median(of.map((x) => x.floodRequestsPerSecond));
    const codes = [...new Set(of.flatMap((x) => Object.keys(x.floodStatuses)))].sort().join('/');
    rows.push({
      name: `tunnel download through serve, ${condition}`,
      value: mbps,
      unit: 'Mbit/s',
      note: `${condition === 'alone' ? '' : `${(mbps / alone).toFixed(2)}× alone; flood ${Math.round(rps).toLocaleString('en-US')} wrong-token requests/s answered ${codes}; `}serve CPU ${median(of.map((x) => x.serveCpuPct)).toFixed(0)}%`,
    });
  }
  return { rows, samples };
}
