/**
 * The fleet's machines as network namespaces (issue 16): a control plane,
 * three exit nodes in two regions, two clients and the internet, each in a
 * namespace of its own, joined through the `internet` namespace, which
 * routes between them like the internet does and serves HTTP (and iperf3)
 * on 203.0.113.1:
 *
 *                      internet  203.0.113.1 (HTTP :8000, iperf3 :5201), forwards
 *     ┌──────────┬──────────┬───┴──────┬──────────┬──────────┐
 *   control    exit-a     exit-b     exit-c    client-1   client-2
 *   192.0.2.2  198.51.100.2  .6      .10       192.0.2.6  192.0.2.10
 *   API :8080  region A   region A   region B
 *
 * Each link is a /30 (the internet's end is the lower address); every machine
 * has its default route through the internet, so a node reaches the control
 * plane, a client reaches the exits' endpoints and the control plane's API,
 * and an exit's NAT masquerades client traffic behind its own address. IPv4
 * only: the fleet's logic is the same for both families, which the
 * single-exit tests already cover.
 *
 * The processes of the fleet — `tunnelbyte control`, `tunnelbyte serve
 * --join`, wireguard-go, the internet's servers — run inside these
 * namespaces, and `release()` (also called when building fails, and at the
 * latest when the test process exits, test/support/netns.ts) kills them and
 * removes the namespaces with everything in them. Nothing here touches the
 * host's own interfaces, routes or firewall; the only forwarding switched on
 * is the internet namespace's own.
 */
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { curlApi, startInternet } from './exit-net.js';
import { Netns, veth, waitFor } from './netns.js';
import { REPO_ROOT } from './repo.js';
import { ifname, startInterface } from './wg.js';

const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');

export type ExitName = 'exit-a' | 'exit-b' | 'exit-c';

export interface ExitMachine {
  name: ExitName;
  ns: Netns;
  /** Its address on the internet: the WireGuard endpoint's host and the address its NAT leaves from. */
  address: string;
  /** Region of the test's plan: exit-a and exit-b in REGION_A, exit-c in REGION_B. */
  region: string;
  /** TUN interface name the node creates. */
  tun: string;
}

export interface ClientMachine {
  ns: Netns;
  address: string;
  /** The wireguard-go interface started in it. */
  wg: string;
}

export const REGION_A = 'region-a';
export const REGION_B = 'region-b';
export const INTERNET_ADDRESS = '203.0.113.1';
export const CONTROL_ADDRESS = '192.0.2.2';
export const CONTROL_API = `http://${CONTROL_ADDRESS}:8080`;

/** A process of the fleet inside its machine: output collected, stopped politely or killed. */
export class FleetProcess {
  private output = '';
  readonly exited: Promise<number | null>;

  constructor(readonly proc: ChildProcess) {
    proc.stdout?.on('data', (d) => (this.output += d));
    proc.stderr?.on('data', (d) => (this.output += d));
    this.exited = new Promise((resolve) => {
      if (proc.exitCode !== null) resolve(proc.exitCode);
      else proc.once('exit', (code) => resolve(code));
    });
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  log(): string {
    return this.output;
  }

  /**
   * The process of the program itself: `ip netns exec` execs it, so the
   * spawned pid is the program's (no shell between), and a signal reaches it.
   */
  get pid(): number {
    return this.proc.pid!;
  }

  /** SIGTERM and wait (SIGKILL after `graceMs`); the exit status, null when killed. */
  async stop(graceMs = 20_000): Promise<number | null> {
    if (!this.running) return this.exited;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** `kill -9`: no chance to flush or clean up. */
  async kill9(): Promise<void> {
    if (this.running) this.proc.kill('SIGKILL');
    await this.exited;
  }
}

export interface FleetNet {
  internet: Netns;
  control: Netns;
  exits: Record<ExitName, ExitMachine>;
  clients: [ClientMachine, ClientMachine];
  /** One /v1 call with curl from inside `from` to the control plane's API. */
  api(from: Netns, method: string, path: string, opts?: { token?: string; fp?: string; body?: unknown }): { status: number; body: any };
  /** Starts `tunnelbyte control` in the control namespace on `dataDir`; resolves once /v1/health answers from a client. */
  startControl(dataDir: string, extra?: string[]): Promise<FleetProcess>;
  /** A one-time enrollment token for `region`, from `tunnelbyte admin node token` on the control plane's data directory. */
  enrollmentToken(controlDataDir: string, region: string): string;
  /**
   * Starts `tunnelbyte serve --join` in an exit's namespace on `dataDir`
   * (with `--node-token` on its first start); resolves once its TUN is up.
   */
  startExit(name: ExitName, dataDir: string, o?: { token?: string; extra?: string[] }): Promise<FleetProcess>;
  /** Kills every process and removes every namespace. */
  release(): void;
}

/** The node id and credential a joined exit keeps in its data directory (node.json, 0600). */
export function nodeIdentity(dataDir: string): { nodeId: string; credential: string } {
  const o = JSON.parse(readFileSync(join(dataDir, 'node.json'), 'utf8')) as { node_id: string; credential: string };
  return { nodeId: o.node_id, credential: o.credential };
}

/** Builds the machines and links; on any failure removes what it made and throws. */
export async function createFleetNet(): Promise<FleetNet> {
  const made: Netns[] = [];
  const machine = (tag: string) => {
    const ns = Netns.create(tag);
    made.push(ns);
    return ns;
  };
  const release = () => {
    for (const ns of made.splice(0).reverse()) ns.destroy();
  };
  try {
    const internet = machine('Inet');
    internet.run('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    internet.ip('addr', 'add', `${INTERNET_ADDRESS}/32`, 'dev', 'lo'); // its servers' address, reached through its links
    /** A machine on the internet behind the /30 whose router end is `router`, its own address `host`. */
    const attach = (ns: Netns, router: string, host: string) => {
      veth(internet, [`${router}/30`], ns, [`${host}/30`]);
      ns.ip('route', 'add', 'default', 'via', router);
    };
    const control = machine('Ctl');
    attach(control, '192.0.2.1', CONTROL_ADDRESS);
    const exit = (name: ExitName, tag: string, router: string, address: string, region: string): ExitMachine => {
      const ns = machine(tag);
      attach(ns, router, address);
      return { name, ns, address, region, tun: ifname('tbf') };
    };
    const exits = {
      'exit-a': exit('exit-a', 'ExA', '198.51.100.1', '198.51.100.2', REGION_A),
      'exit-b': exit('exit-b', 'ExB', '198.51.100.5', '198.51.100.6', REGION_A),
      'exit-c': exit('exit-c', 'ExC', '198.51.100.9', '198.51.100.10', REGION_B),
    };
    const client = (tag: string, router: string, address: string): ClientMachine => {
      const ns = machine(tag);
      attach(ns, router, address);
      const wg = ifname('wgf');
      startInterface(ns, 'wireguard-go', wg);
      return { ns, address, wg };
    };
    const clients: [ClientMachine, ClientMachine] = [client('Cl1', '192.0.2.5', '192.0.2.6'), client('Cl2', '192.0.2.9', '192.0.2.10')];
    await startInternet(internet);
    internet.spawn('iperf3', ['-s', '-B', INTERNET_ADDRESS]);
    // The internet routes: a client reaches its server from its own address.
    await waitFor('a client reaches the internet', () => clients[0].ns.try('curl', ['-sf', '--max-time', '2', `http://${INTERNET_ADDRESS}:8000/ip`]).stdout === clients[0].address);

    const api = (from: Netns, method: string, path: string, opts: { token?: string; fp?: string; body?: unknown } = {}) => curlApi(from, CONTROL_API, method, path, opts);
    return {
      internet,
      control,
      exits,
      clients,
      api,
      async startControl(dataDir, extra = []) {
        const p = new FleetProcess(control.spawn('node', [TB, 'control', '--data', dataDir, '--api-listen', `${CONTROL_ADDRESS}:8080`, '--sync-interval', '1', ...extra]));
        await waitFor('the control plane answers', () => {
          if (!p.running) throw new Error(`tunnelbyte control exited: ${p.log().slice(-2000)}`);
          return clients[0].ns.try('curl', ['-sf', '--max-time', '2', `${CONTROL_API}/v1/health`]).status === 0;
        }, 30_000, 200);
        return p;
      },
      enrollmentToken(controlDataDir, region) {
        const out = execFileSync(process.execPath, [TB, 'admin', '--data', controlDataDir, 'node', 'token', '--region', region, '--expires', '1h'], { encoding: 'utf8' }).trim();
        assert.match(out, /^tbe_/);
        return out;
      },
      async startExit(name, dataDir, o = {}) {
        const m = exits[name];
        const args = [TB, 'serve', '--join', CONTROL_API, '--data', dataDir, '--endpoint', m.address, '--tun', m.tun, '--sync-interval', '1', '--heartbeat-interval', '1'];
        if (o.token) args.push('--node-token', o.token);
        const p = new FleetProcess(m.ns.spawn('node', [...args, ...(o.extra ?? [])]));
        await waitFor(`${name} up (its TUN ${m.tun})`, () => {
          if (!p.running) throw new Error(`${name} exited: ${p.log().slice(-2000)}`);
          return m.ns.links().includes(m.tun);
        }, 30_000, 200);
        return p;
      },
      release,
    };
  } catch (e) {
    release();
    throw e;
  }
}
