/**
 * `npm run bench -- --fleet`: the control plane under a fleet's reports
 * (issue 16). `tunnelbyte control` runs as its own process on a fresh data
 * directory (real SQLite on disk, WAL). The benchmark then
 *
 * 1. issues one enrollment token per node on that database, as `tunnelbyte
 *    admin node token` does (1,000 spawned CLIs would measure node's start-up),
 *    and enrolls every node over HTTP (POST /v1/nodes/enroll), 100 nodes per
 *    region, each from its own source address (X-Forwarded-For under
 *    --trust-proxy: nodes are separate machines, so the per-source limits of
 *    the public routes do not apply to the fleet as a whole);
 * 2. creates sessions through the customer API (a signup and POST
 *    /v1/sessions each, two per node by default), so placement spreads them
 *    over the nodes and usage reports name real sessions;
 * 3. paced phase: every node sends POST /v1/nodes/{id}/heartbeat every 10 s
 *    and POST /v1/nodes/{id}/usage every 5 s (the cumulative counters of its
 *    sessions with a sequence number), each at a random phase, over shared
 *    keep-alive connections — the load of a fleet of that size at the
 *    periods a joined node uses (usage: the ≤ 5 s flush of issue 16);
 *    requests/s, latency p50/p99 from the node's side, and the SQLite time
 *    per report as the server measured it (/metrics:
 *    tunnelbyte_node_report_write_seconds, a summary over the phase);
 * 4. saturation phase: 64 requests in flight at all times (one heartbeat to
 *    two usage reports): the most reports/s the control plane answers;
 * 5. checks: every answer was a 200, and a sample of sessions shows exactly
 *    the bytes their node reported last (GET /v1/sessions/{id} with the
 *    account's token).
 *
 * Any other answer, a transport error or a wrong total fails the benchmark.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { createControlPlane } from '../src/control/control-plane.js';
import { databasePath } from '../src/control/paths.js';
import { generateKeyPair } from '../src/crypto/wireguard-keys.js';
import type { Row } from './in-process.js';
import { percentile } from './stats.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // from dist/bench/
const NODES_PER_REGION = 100;
const HEARTBEAT_PERIOD_MS = 10_000;
const USAGE_PERIOD_MS = 5_000;
const SATURATION_IN_FLIGHT = 64;

export interface FleetOptions {
  nodes: number;
  /** Sessions spread over the nodes by placement. */
  sessions: number;
  /** Length of the paced phase. */
  seconds: number;
  /** Length of the saturation phase. */
  saturationSeconds: number;
}

interface SimNode {
  id: string;
  credential: string;
  source: string;
  exitAddress: string;
  seq: number;
  sessions: { id: string; rx: number; tx: number }[];
}

interface Phase {
  sent: number;
  latenciesMs: { heartbeat: number[]; usage: number[] };
  bad: string[];
  retriesAcked: number;
}

/** A loopback port nothing listens on right now (the server binds it a moment later). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** The i-th address of a /16 written as a.b.0.0 (i < 65,536): each simulated machine its own source. */
const addressIn = (prefix: string, i: number) => `${prefix}.${(i >> 8) & 255}.${i & 255}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Quantile, sum and count lines of the report-write summary on /metrics, by kind. */
function parseReportWrites(text: string): Record<string, { p50: number; p99: number; sum: number; count: number }> {
  const out: Record<string, { p50: number; p99: number; sum: number; count: number }> = {};
  const get = (kind: string) => (out[kind] ??= { p50: NaN, p99: NaN, sum: 0, count: 0 });
  for (const line of text.split('\n')) {
    const m = /^tunnelbyte_node_report_write_seconds(_sum|_count)?\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    const kind = labels.kind!;
    const v = Number(m[3]);
    if (m[1] === '_sum') get(kind).sum = v;
    else if (m[1] === '_count') get(kind).count = v;
    else if (labels.quantile === '0.5') get(kind).p50 = v;
    else if (labels.quantile === '0.99') get(kind).p99 = v;
  }
  return out;
}

export async function benchFleet(o: FleetOptions): Promise<{ rows: Row[]; samples: Record<string, unknown> }> {
  const dir = mkdtempSync(join(tmpdir(), 'tb-bench-fleet-'));
  const [apiPort, metricsPort] = [await freePort(), await freePort()];
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: dir };
  const child: ChildProcess = spawn(
    process.execPath,
    [join(ROOT, 'bin/tunnelbyte.js'), 'control', '--data', join(dir, 'data'), '--api-listen', `127.0.0.1:${apiPort}`, '--metrics-listen', `127.0.0.1:${metricsPort}`, '--trust-proxy', '--log-level', 'warn'],
    { env, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const api = `http://127.0.0.1:${apiPort}`;
  const pool = new Pool(api, { connections: 128, keepAliveTimeout: 60_000 });
  try {
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`tunnelbyte control exited: ${stderr}`);
      if (i > 300) throw new Error(`tunnelbyte control did not answer in 30 s: ${stderr}`);
      const ok = await fetch(`${api}/v1/health`).then((r) => r.ok, () => false);
      if (ok) break;
      await sleep(100);
    }

    const call = async (method: 'GET' | 'POST', path: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number; json: any }> => {
      const r = await pool.request({ method, path, headers: { 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await r.body.text();
      return { status: r.statusCode, json: text ? JSON.parse(text) : null };
    };
    /** Runs `work(i)` for i < n with `width` at a time. */
    const parallel = async (n: number, width: number, work: (i: number) => Promise<void>) => {
      let next = 0;
      await Promise.all(Array.from({ length: Math.min(width, n) }, async () => {
        while (next < n) await work(next++);
      }));
    };

    // 1. Enrollment: tokens on the database, the exchange over HTTP.
    const regions = Math.ceil(o.nodes / NODES_PER_REGION);
    const cp = createControlPlane({ dbPath: databasePath(join(dir, 'data')) });
    const tokens = Array.from({ length: o.nodes }, (_, i) => cp.nodeEnrollment.issueToken(`fleet-${i % regions}`, 3600_000, { actor: 'admin:bench', source: null }).token);
    cp.close();
    const nodes: SimNode[] = [];
    const enrollStart = performance.now();
    await parallel(o.nodes, 16, async (i) => {
      const source = addressIn('198.18', i); // RFC 2544's benchmarking range
      const r = await call('POST', '/v1/nodes/enroll', { 'x-forwarded-for': source }, {
        token: tokens[i],
        public_key: generateKeyPair().publicKey,
        endpoint: `${source}:51820`,
        exit_addresses: [source],
        pool4: `10.${64 + (i >> 8)}.${i & 255}.0/24`,
      });
      if (r.status !== 201) throw new Error(`enroll node ${i}: ${r.status} ${JSON.stringify(r.json)}`);
      nodes[i] = { id: r.json.node.id, credential: r.json.credential, source, exitAddress: source, seq: 0, sessions: [] };
    });
    const enrollSeconds = (performance.now() - enrollStart) / 1000;
    const byId = new Map(nodes.map((n) => [n.id, n]));

    // 2. Sessions through the customer API; placement picks the node.
    const accounts: { token: string; fp: string; sessionId: string; node: SimNode }[] = [];
    await parallel(o.sessions, 16, async (j) => {
      const source = addressIn('198.19', j);
      const fp = `bench-fleet-${j}`;
      const signup = await call('POST', '/v1/signup', { 'x-forwarded-for': source }, { fingerprint: fp });
      if (signup.status !== 201) throw new Error(`signup ${j}: ${signup.status} ${JSON.stringify(signup.json)}`);
      const auth = { authorization: `Bearer ${signup.json.token}`, 'x-tb-fingerprint': fp, 'x-forwarded-for': source };
      const s = await call('POST', '/v1/sessions', auth, { region: `fleet-${j % regions}` });
      if (s.status !== 201) throw new Error(`session ${j}: ${s.status} ${JSON.stringify(s.json)}`);
      const node = byId.get(s.json.node)!;
      node.sessions.push({ id: s.json.id, rx: 0, tx: 0 });
      accounts.push({ token: signup.json.token, fp, sessionId: s.json.id, node });
    });

    /** One report of node `n`, timed from the node's side into `phase`. */
    const report = async (n: SimNode, kind: 'heartbeat' | 'usage', phase: Phase): Promise<void> => {
      let body: unknown;
      if (kind === 'heartbeat') body = { exit_addresses: [n.exitAddress] };
      else {
        const at = new Date().toISOString();
        for (const s of n.sessions) {
          s.rx += 1 + Math.floor(Math.random() * 5_000_000);
          s.tx += 1 + Math.floor(Math.random() * 500_000);
        }
        body = { seq: ++n.seq, sessions: n.sessions.map((s) => ({ id: s.id, rx_bytes: s.rx, tx_bytes: s.tx, last_handshake_at: at })) };
      }
      phase.sent++;
      const start = performance.now();
      try {
        const r = await call('POST', `/v1/nodes/${n.id}/${kind}`, { authorization: `Bearer ${n.credential}`, 'x-forwarded-for': n.source }, body);
        phase.latenciesMs[kind].push(performance.now() - start);
        if (r.status !== 200) phase.bad.push(`${kind} ${r.status} ${JSON.stringify(r.json)}`);
        else if (kind === 'usage' && r.json.applied === false) phase.retriesAcked++;
      } catch (e) {
        phase.bad.push(`${kind}: ${(e as Error).message}`);
      }
    };
    const newPhase = (): Phase => ({ sent: 0, latenciesMs: { heartbeat: [], usage: [] }, bad: [], retriesAcked: 0 });
    const scrape = async () => parseReportWrites(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());

    // 3. Paced: each node on its own timers, at a random phase.
    const paced = newPhase();
    const inFlight = new Set<Promise<void>>();
    const fire = (n: SimNode, kind: 'heartbeat' | 'usage') => {
      const p = report(n, kind, paced).finally(() => inFlight.delete(p));
      inFlight.add(p);
    };
    const timers: NodeJS.Timeout[] = [];
    for (const n of nodes) {
      for (const [kind, period] of [['heartbeat', HEARTBEAT_PERIOD_MS], ['usage', USAGE_PERIOD_MS]] as const) {
        timers.push(setTimeout(() => {
          fire(n, kind);
          timers.push(setInterval(() => fire(n, kind), period));
        }, Math.random() * period));
      }
    }
    const pacedStart = performance.now();
    await sleep(o.seconds * 1000);
    for (const t of timers) clearTimeout(t);
    await Promise.all(inFlight);
    const pacedSeconds = (performance.now() - pacedStart) / 1000;
    const pacedWrites = await scrape();

    // 4. Saturation: a fixed number of reports in flight, round robin over the nodes.
    const saturated = newPhase();
    let turn = 0;
    const satEnd = performance.now() + o.saturationSeconds * 1000;
    const satStart = performance.now();
    await Promise.all(Array.from({ length: SATURATION_IN_FLIGHT }, async () => {
      while (performance.now() < satEnd) {
        const t = turn++;
        await report(nodes[t % nodes.length]!, t % 3 === 0 ? 'heartbeat' : 'usage', saturated);
      }
    }));
    const satSeconds = (performance.now() - satStart) / 1000;
    const allWrites = await scrape();

    // 5. Every answer a 200, and the totals exact.
    const bad = [...paced.bad, ...saturated.bad];
    if (bad.length > 0) throw new Error(`bench --fleet: ${bad.length} failed reports, e.g. ${bad.slice(0, 3).join('; ')}`);
    const sample = accounts.filter((_, i) => i % Math.max(1, Math.floor(accounts.length / 50)) === 0);
    for (const a of sample) {
      const r = await call('GET', `/v1/sessions/${a.sessionId}`, { authorization: `Bearer ${a.token}`, 'x-tb-fingerprint': a.fp, 'x-forwarded-for': addressIn('198.19', 0) });
      const want = a.node.sessions.find((s) => s.id === a.sessionId)!;
      if (r.status !== 200 || r.json.rx_bytes !== want.rx || r.json.tx_bytes !== want.tx) {
        throw new Error(`bench --fleet: session ${a.sessionId} shows ${JSON.stringify(r.json)}, its node reported rx ${want.rx} tx ${want.tx}`);
      }
    }

    const label = `${o.nodes.toLocaleString('en-US')} nodes, ${o.sessions.toLocaleString('en-US')} sessions`;
    const pacedAll = [...paced.latenciesMs.heartbeat, ...paced.latenciesMs.usage];
    const satAll = [...saturated.latenciesMs.heartbeat, ...saturated.latenciesMs.usage];
    const ms = (s: number) => s * 1000;
    const satMean = (kind: string) => {
      const a = allWrites[kind];
      const p = pacedWrites[kind];
      if (!a || !p || a.count === p.count) return NaN;
      return ms((a.sum - p.sum) / (a.count - p.count));
    };
    const rows: Row[] = [
      { name: `fleet: enrollments over HTTP (${label})`, value: o.nodes / enrollSeconds, unit: 'nodes/s' },
      { name: `fleet paced (heartbeat 10 s, usage 5 s), ${label}`, value: pacedAll.length / pacedSeconds, unit: 'requests/s', note: `offered ${Math.round(o.nodes * (1000 / HEARTBEAT_PERIOD_MS + 1000 / USAGE_PERIOD_MS))}/s, errors 0` },
      { name: 'fleet paced: report latency p50', value: percentile(pacedAll, 0.5), unit: 'ms' },
      { name: 'fleet paced: report latency p99', value: percentile(pacedAll, 0.99), unit: 'ms' },
      { name: 'fleet paced: SQLite time per usage report p50', value: ms(pacedWrites.usage?.p50 ?? NaN), unit: 'ms', note: 'server-side, /metrics' },
      { name: 'fleet paced: SQLite time per usage report p99', value: ms(pacedWrites.usage?.p99 ?? NaN), unit: 'ms', note: 'server-side, /metrics' },
      { name: 'fleet paced: SQLite time per heartbeat p50', value: ms(pacedWrites.heartbeat?.p50 ?? NaN), unit: 'ms', note: 'server-side, /metrics' },
      { name: 'fleet paced: SQLite time per heartbeat p99', value: ms(pacedWrites.heartbeat?.p99 ?? NaN), unit: 'ms', note: 'server-side, /metrics' },
      { name: `fleet saturated, ${SATURATION_IN_FLIGHT} in flight`, value: satAll.length / satSeconds, unit: 'reports/s', note: 'errors 0' },
      { name: 'fleet saturated: report latency p99', value: percentile(satAll, 0.99), unit: 'ms' },
      { name: 'fleet saturated: SQLite time per usage report, mean', value: satMean('usage'), unit: 'ms', note: 'server-side, /metrics' },
    ];
    return {
      rows,
      samples: {
        nodes: o.nodes,
        sessions: o.sessions,
        regions,
        paced: { seconds: pacedSeconds, requests: pacedAll.length, retriesAcked: paced.retriesAcked, writes: pacedWrites },
        saturated: { seconds: satSeconds, requests: satAll.length, retriesAcked: saturated.retriesAcked, writes: allWrites },
        checkedSessions: sample.length,
      },
    };
  } finally {
    await pool.close();
    child.kill('SIGTERM');
    const code = await Promise.race([exited, sleep(10_000).then(() => 'timeout' as const)]);
    if (code === 'timeout') child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}
