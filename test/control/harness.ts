/**
 * Test harness of the control plane: a real SQLite file in a temp dir, the
 * app on an ephemeral 127.0.0.1 port (node:http + app.callback()), a clock
 * the test moves, a recording data plane, and a registered node.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ManualClock } from '../../src/protocol/clock.js';
import { controlConfig, type ControlConfig, type DeepPartial } from '../../src/control/config.js';
import { createControlPlane, type ControlPlane } from '../../src/control/control-plane.js';
import { createApp } from '../../src/control/http/app.js';
import { createMetrics, metricsRequestListener } from '../../src/control/http/metrics.js';
import type { DataPlane, PeerCounters, PeerSpec } from '../../src/control/services/data-plane.js';
import type { NodeAgent } from '../../src/control/services/node-agent.js';
import type { NodeRecord } from '../../src/control/store/nodes.js';
import { generateKeyPair } from '../../src/crypto/wireguard-keys.js';
import { REPO_ROOT } from '../support/repo.js';

/** A data plane that records calls and whose counters the test sets. */
export class RecordingDataPlane implements DataPlane {
  readonly peers = new Map<string, string[]>();
  readonly calls: string[] = [];
  readonly counters = new Map<string, PeerCounters>();
  addPeer(p: PeerSpec): void {
    this.calls.push(`add ${p.publicKey}`);
    this.peers.set(p.publicKey, [...p.allowedIps]);
    this.counters.set(p.publicKey, { rxBytes: 0, txBytes: 0, lastHandshakeMs: null });
  }
  removePeer(publicKey: string): void {
    this.calls.push(`remove ${publicKey}`);
    this.peers.delete(publicKey);
    this.counters.delete(publicKey);
  }
  readCounters(): Map<string, PeerCounters> {
    return new Map([...this.counters].map(([k, v]) => [k, { ...v }]));
  }
  /** Simulates traffic: the exit received `fromClient` and sent `toClient` bytes. */
  traffic(publicKey: string, fromClient: number, toClient: number, handshakeMs: number | null = null): void {
    const c = this.counters.get(publicKey);
    if (!c) throw new Error(`no peer ${publicKey}`);
    c.rxBytes += fromClient;
    c.txBytes += toClient;
    if (handshakeMs !== null) c.lastHandshakeMs = handshakeMs;
  }
}

export interface Reply {
  status: number;
  headers: Headers;
  json: any;
  text: string;
}

export interface RequestOptions {
  body?: unknown;
  /** Sent as is (for malformed JSON). */
  rawBody?: string | Buffer;
  token?: string;
  fingerprint?: string;
  headers?: Record<string, string>;
}

export interface Harness {
  dir: string;
  dbPath: string;
  clock: ManualClock;
  control: ControlPlane;
  dataPlane: RecordingDataPlane;
  node: NodeRecord;
  agent: NodeAgent;
  url: string;
  /** The metrics listener (GET /metrics). */
  metricsUrl: string;
  request(method: string, path: string, opts?: RequestOptions): Promise<Reply>;
  /** Signs up an anonymous account from machine `fingerprint`. */
  signup(fingerprint?: string): Promise<{ token: string; accountId: string; fingerprint: string }>;
  close(): Promise<void>;
}

export const T0 = Date.UTC(2026, 2, 10, 12, 0, 0); // 2026-03-10T12:00:00Z

export const NODE_EXIT = '198.51.100.7';

let machine = 0;
export const newFingerprint = (): string => `machine-${process.pid}-${++machine}-${Math.random().toString(36).slice(2)}`;

export interface HarnessOptions {
  config?: DeepPartial<ControlConfig>;
  /** Register and attach a node in region `local` (default true). */
  node?: boolean;
  now?: number;
  dir?: string;
}

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'tb-control-'));
  const dbPath = join(dir, 'tunnelbyte.db');
  const clock = new ManualClock(opts.now ?? T0);
  const config: ControlConfig = controlConfig({
    publicRateLimit: { burst: 1000, perSecond: 1000 },
    authFailureLimit: { failures: 100_000, windowSeconds: 60 },
    signupLimit: { perSource: 100_000, windowSeconds: 3600 },
    ...opts.config,
  });
  const control = createControlPlane({ dbPath, config, clock });
  const dataPlane = new RecordingDataPlane();
  let node: NodeRecord | undefined;
  let agent: NodeAgent | undefined;
  if (opts.node ?? true) {
    const reg = control.nodes.register({
      regionId: 'local',
      publicKey: generateKeyPair().publicKey,
      endpoint: 'vpn.example.test:51820',
      exitAddresses: [NODE_EXIT],
      pool4: '10.64.0.0/16',
      pool6: 'fd00:64::/64',
    });
    node = reg.node;
    agent = control.attachDataPlane(node.id, dataPlane, [NODE_EXIT]);
    agent.sync();
  }
  const metrics = createMetrics(control, { defaultMetrics: false });
  const app = createApp({ control, metrics });
  const server: Server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // /metrics has a listener of its own, as in the exit server
  const metricsServer: Server = createServer(metricsRequestListener(metrics));
  await new Promise<void>((resolve) => metricsServer.listen(0, '127.0.0.1', resolve));
  const metricsUrl = `http://127.0.0.1:${(metricsServer.address() as AddressInfo).port}`;

  const request = async (method: string, path: string, o: RequestOptions = {}): Promise<Reply> => {
    const headers: Record<string, string> = { ...o.headers };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    if (o.fingerprint) headers['x-tb-fingerprint'] = o.fingerprint;
    let body: string | Buffer | undefined;
    if (o.rawBody !== undefined) body = o.rawBody;
    else if (o.body !== undefined) {
      body = JSON.stringify(o.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(url + path, { method, headers, body: body as RequestInit['body'] });
    const text = await res.text();
    let json: unknown = undefined;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, json, text };
  };

  const h: Harness = {
    dir,
    dbPath,
    clock,
    control,
    dataPlane,
    node: node!,
    agent: agent!,
    url,
    metricsUrl,
    request,
    async signup(fingerprint = newFingerprint()) {
      const r = await request('POST', '/v1/signup', { body: { fingerprint } });
      if (r.status !== 201 && r.status !== 200) throw new Error(`signup failed: ${r.status} ${r.text}`);
      return { token: r.json.token as string, accountId: r.json.account_id as string, fingerprint };
    },
    async close() {
      metricsServer.closeAllConnections();
      metricsServer.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      control.close();
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}

let enrolled = 0;
/**
 * Enrolls an exit node over the API (POST /v1/nodes/enroll) with a fresh
 * token for `region`; every call gets its own key, endpoint, exit address
 * (203.0.113.n) and IPv4 pool (10.(80+n).0.0/16; IPv6: a random ULA).
 */
export async function enrollNode(h: Harness, region: string): Promise<{ id: string; credential: string }> {
  const n = ++enrolled;
  const token = h.control.nodeEnrollment.issueToken(region, 3600_000, { actor: 'admin:test', source: null }).token;
  const r = await h.request('POST', '/v1/nodes/enroll', {
    body: { token, public_key: generateKeyPair().publicKey, endpoint: `n${n}.example.test:51820`, exit_addresses: [`203.0.113.${n}`], pool4: `10.${80 + n}.0.0/16` },
  });
  if (r.status !== 201) throw new Error(`enrollment failed: ${r.status} ${r.text}`);
  return { id: r.json.node.id as string, credential: r.json.credential as string };
}

/** Makes an account paid directly (as the operator would). */
export function makePaid(h: Harness, accountId: string): void {
  h.control.accounts.setTier(accountId, 'paid');
}

/** `tunnelbyte admin --data DIR ARGS…` as a separate process (on the system clock); never throws. */
export async function runAdmin(dir: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, [join(REPO_ROOT, 'bin/tunnelbyte.js'), 'admin', '--data', dir, ...args], { env: { ...process.env, TB_DATA: '' } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}
