/**
 * `npm run bench -- --fleet-e2e` (root): how fast a peer change travels from
 * the API to a joined exit node (issue 16). In the fleet's namespaces
 * (test/support/fleet-net.ts): `tunnelbyte control`, one exit `tunnelbyte
 * serve --join` on it, and in a client namespace bench/fleet-probe.ts, which
 * creates sessions with POST /v1/sessions and times each until the node
 * answers a handshake initiation for it (the session's peer reached the node
 * over the channel's stream and is in its device). Two runs: one session at
 * a time (latency p50/p99), then `parallel` at a time (peer changes per
 * second the path carries). The account is made paid with `tunnelbyte
 * admin` so its session and request limits do not pace the run.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONTROL_API, createFleetNet, REGION_A, type FleetProcess } from '../test/support/fleet-net.js';
import type { Row } from './in-process.js';
import { percentile } from './stats.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // from dist/bench/
const PROBE = fileURLToPath(new URL('./fleet-probe.js', import.meta.url));

interface ProbeResult {
  latenciesMs: number[];
  apiMs: number[];
  failures: number;
  seconds: number;
}

export async function benchFleetEndToEnd(o: { sequential: number; parallelCount: number; parallel: number }): Promise<{ rows: Row[]; samples: Record<string, unknown> }> {
  const net = await createFleetNet();
  const tmp = mkdtempSync(join(tmpdir(), 'tb-bench-fleet-e2e-'));
  const procs: FleetProcess[] = [];
  try {
    const controlData = join(tmp, 'control');
    procs.push(await net.startControl(controlData, ['--paid-sessions', '100000', '--log-level', 'warn']));
    procs.push(await net.startExit('exit-a', join(tmp, 'exit-a'), { token: net.enrollmentToken(controlData, REGION_A), extra: ['--log-level', 'warn'] }));
    const client = net.clients[0];
    const fingerprint = 'bench-fleet-e2e';
    const signup = net.api(client.ns, 'POST', '/v1/signup', { body: { fingerprint } });
    if (signup.status !== 201) throw new Error(`signup: ${signup.status} ${JSON.stringify(signup.body)}`);
    execFileSync(process.execPath, [join(ROOT, 'bin/tunnelbyte.js'), 'admin', '--data', controlData, 'account', 'set-tier', signup.body.account_id, 'paid']);
    const probe = (count: number, parallel: number) =>
      new Promise<ProbeResult>((resolve, reject) => {
        const child = client.ns.spawn('node', [PROBE, JSON.stringify({ api: CONTROL_API, token: signup.body.token, fingerprint, region: REGION_A, count, parallel })]);
        let out = '';
        let err = '';
        child.stdout!.on('data', (d) => (out += d));
        child.stderr!.on('data', (d) => (err += d));
        child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as ProbeResult) : reject(new Error(`fleet probe exited ${code}: ${err}`))));
      });
    const one = await probe(o.sequential, 1);
    const many = await probe(o.parallelCount, o.parallel);
    const failures = one.failures + many.failures;
    if (failures > 0) throw new Error(`bench --fleet-e2e: ${failures} sessions never became reachable on the node within 15 s`);
    const rows: Row[] = [
      { name: 'fleet API → node: session created → handshake answered, p50', value: percentile(one.latenciesMs, 0.5), unit: 'ms', note: `${o.sequential} sessions one at a time` },
      { name: 'fleet API → node: session created → handshake answered, p99', value: percentile(one.latenciesMs, 0.99), unit: 'ms' },
      { name: 'fleet API → node: POST /v1/sessions answered, p50', value: percentile(one.apiMs, 0.5), unit: 'ms', note: 'the part of the above spent before the API answered' },
      { name: `fleet API → node: peer changes, ${o.parallel} sessions at a time`, value: o.parallelCount / many.seconds, unit: 'changes/s', note: `p99 ${Math.round(percentile(many.latenciesMs, 0.99))} ms` },
    ];
    return { rows, samples: { sequential: one, parallel: { ...many, width: o.parallel } } };
  } finally {
    for (const p of procs.reverse()) await p.stop(5_000);
    net.release();
    rmSync(tmp, { recursive: true, force: true });
  }
}
