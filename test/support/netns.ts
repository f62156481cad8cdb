/**
 * Network namespaces for privileged tests. Everything a test creates here
 * is removed by `destroy()` — every process inside a namespace is killed
 * first — and, as a last resort, when the test process exits. Tests never
 * touch the host's own interfaces, routes or firewall.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { openLinuxTun, type LinuxTun, type LinuxTunOptions } from '../../src/io/linux/tun.js';

let counter = 0;
const live = new Set<Netns>();
process.on('exit', () => {
  for (const ns of live) ns.destroySync();
});

export const isRoot = (): boolean => process.getuid?.() === 0;

/**
 * Why privileged tests cannot run here, or null when they can. A developer's
 * machine skips them with this reason; with TB_REQUIRE_PRIVILEGED=1 (set by
 * .ci/run) a missing privilege or tool is an error instead, so a CI machine
 * that lost root or a package fails rather than passing with the privileged
 * tier skipped.
 */
export function privilegedSkipReason(tools: string[] = ['ip'], env: NodeJS.ProcessEnv = process.env): string | null {
  const reason = missingPrivilege(tools);
  if (reason !== null && env.TB_REQUIRE_PRIVILEGED === '1') {
    throw new Error(`TB_REQUIRE_PRIVILEGED=1, but the privileged tests cannot run here: ${reason}`);
  }
  return reason;
}

function missingPrivilege(tools: string[]): string | null {
  if (!isRoot()) return 'needs root (CI runs as root)';
  for (const t of tools) {
    if (spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0) return `needs ${t} (apt-get install it; .ci/run does)`;
  }
  if (!existsSync('/dev/net/tun')) return 'needs /dev/net/tun';
  return null;
}

export class Netns {
  readonly name: string;
  private readonly children = new Set<ChildProcess>();
  private readonly cleanups: (() => void)[] = [];
  private destroyed = false;

  private constructor(name: string) {
    this.name = name;
  }

  static create(tag: string): Netns {
    const name = `tb${tag}${process.pid % 100000}n${counter++}`.slice(0, 30);
    execFileSync('ip', ['netns', 'add', name]);
    const ns = new Netns(name);
    live.add(ns);
    ns.run('ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Runs a command inside the namespace and returns its stdout; throws with stderr on failure. */
  run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): string {
    const r = spawnSync('ip', ['netns', 'exec', this.name, cmd, ...args], {
      input: opts.input,
      env: opts.env ?? process.env,
      encoding: 'utf8',
      timeout: opts.timeoutMs ?? 60_000,
      maxBuffer: 256 * 1024 * 1024,
    });
    if (r.status !== 0) {
      const why = (r.stderr || r.stdout || String(r.error ?? '')).slice(0, 2000);
      throw new Error(`[${this.name}] ${cmd} ${args.join(' ').slice(0, 200)} failed (${r.status ?? r.signal}): ${why}`);
    }
    return r.stdout;
  }

  /** `ip ARGS...` inside the namespace; throws with stderr on failure. */
  ip(...args: string[]): string {
    return this.run('ip', args);
  }

  /** Interface names in the namespace. */
  links(): string[] {
    const out = JSON.parse(this.ip('-j', 'link', 'show')) as { ifname: string }[];
    return out.map((l) => l.ifname);
  }

  /** Like run, but returns the status instead of throwing. */
  try(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync('ip', ['netns', 'exec', this.name, cmd, ...args], { env: opts.env ?? process.env, encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, maxBuffer: 256 * 1024 * 1024 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** Starts a long-running process inside the namespace; it is killed on destroy(). */
  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** PIDs of every process in the namespace. */
  pids(): number[] {
    const r = spawnSync('ip', ['netns', 'pids', this.name], { encoding: 'utf8' });
    return r.stdout.split(/\s+/).filter(Boolean).map(Number);
  }

  /** Runs `fn` when the namespace is destroyed (e.g. removing files its processes made outside it). */
  onDestroy(fn: () => void): void {
    this.cleanups.push(fn);
  }

  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    // A polite SIGTERM first, so daemons remove what they made (UAPI sockets), then SIGKILL.
    for (const p of this.pids()) {
      try {
        process.kill(p, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
    for (let i = 0; i < 20 && this.pids().length > 0; i++) spawnSync('sleep', ['0.05']);
    for (const c of this.children) c.kill('SIGKILL');
    for (let i = 0; i < 3; i++) {
      const pids = this.pids();
      if (pids.length === 0) break;
      for (const p of pids) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      spawnSync('sleep', ['0.1']);
    }
    spawnSync('ip', ['netns', 'del', this.name]);
    for (const fn of this.cleanups) {
      try {
        fn();
      } catch {
        /* best effort */
      }
    }
  }

  destroy(): void {
    this.destroySync();
  }
}

/**
 * The namespaces and TUNs one test file opens (the native I/O tests open TUN
 * devices directly inside a namespace through the `netns` option), closed
 * together by release() (call it in `after`).
 */
export class Scope {
  private readonly namespaces: Netns[] = [];
  private readonly tuns: LinuxTun[] = [];

  netns(tag: string): Netns {
    const ns = Netns.create(tag);
    this.namespaces.push(ns);
    return ns;
  }

  tun(opts: LinuxTunOptions): LinuxTun {
    const t = openLinuxTun(opts);
    this.tuns.push(t);
    return t;
  }

  release(): void {
    for (const t of this.tuns.splice(0)) t.close();
    for (const ns of this.namespaces.splice(0)) ns.destroy();
  }
}

/** A veth pair between two namespaces, with addresses ("198.51.100.1/24", "2001:db8:1::1/64" ...). */
export function veth(a: Netns, aAddrs: string[], b: Netns, bAddrs: string[], opts: { mtu?: number } = {}): { aIf: string; bIf: string } {
  const id = `${process.pid % 10000}${counter++}`;
  const aIf = `va${id}`.slice(0, 15);
  const bIf = `vb${id}`.slice(0, 15);
  execFileSync('ip', ['link', 'add', aIf, 'netns', a.name, 'type', 'veth', 'peer', 'name', bIf, 'netns', b.name]);
  for (const [ns, ifn, addrs] of [[a, aIf, aAddrs], [b, bIf, bAddrs]] as const) {
    if (opts.mtu) ns.run('ip', ['link', 'set', ifn, 'mtu', String(opts.mtu)]);
    for (const addr of addrs) ns.run('ip', ['addr', 'add', addr, 'dev', ifn, ...(addr.includes(':') ? ['nodad'] : [])]);
    ns.run('ip', ['link', 'set', ifn, 'up']);
  }
  return { aIf, bIf };
}

/** Polls `check` until it returns a truthy value or the timeout passes. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 10_000, everyMs = 100): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
