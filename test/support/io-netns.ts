/**
 * Throwaway network namespaces for the native I/O tests (test/privileged/io-*).
 * The addon opens TUN devices and sockets directly inside a namespace (the
 * `netns` option), so these tests never create anything in the host's
 * namespace. Every namespace is deleted by destroy(), and as a last resort
 * when the process exits.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { openLinuxTun, type LinuxTun, type LinuxTunOptions } from '../../src/io/linux/tun.js';

const live = new Set<string>();
let counter = 0;
process.on('exit', () => {
  for (const name of live) spawnSync('ip', ['netns', 'del', name]);
});

/** Why the privileged I/O tests cannot run here, or null. */
export function ioSkipReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (CI runs as root)';
  if (spawnSync('ip', ['-V']).status !== 0) return 'needs iproute2';
  if (!existsSync('/dev/net/tun')) return 'needs /dev/net/tun';
  return null;
}

export class IoNetns {
  private constructor(readonly name: string) {}

  static create(tag: string): IoNetns {
    const name = `tbio${tag}${process.pid}n${counter++}`;
    execFileSync('ip', ['netns', 'add', name]);
    live.add(name);
    const ns = new IoNetns(name);
    ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  /** `ip -n NAME ARGS...`; throws with stderr on failure. */
  ip(...args: string[]): string {
    return run('ip', ['-n', this.name, ...args]);
  }

  /** Runs a command inside the namespace. */
  exec(cmd: string, args: string[]): string {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args]);
  }

  /** Interface names in the namespace. */
  links(): string[] {
    const out = JSON.parse(this.ip('-j', 'link', 'show')) as { ifname: string }[];
    return out.map((l) => l.ifname);
  }

  destroy(): void {
    if (!live.delete(this.name)) return;
    spawnSync('ip', ['netns', 'del', this.name]);
  }
}

/** The namespaces and TUNs one test file opens, closed together by release() (call it in `after`). */
export class IoScope {
  private readonly namespaces: IoNetns[] = [];
  private readonly tuns: LinuxTun[] = [];

  netns(tag: string): IoNetns {
    const ns = IoNetns.create(tag);
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

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return r.stdout;
}

/** Resolves when `check` returns true; rejects after `ms`. */
export async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** An ICMPv4 echo request (IPv4 header + ICMP), checksums filled in. */
export function icmpEchoRequest(src: string, dst: string, id: number, seq: number, payloadLen = 32): Uint8Array {
  const p = new Uint8Array(20 + 8 + payloadLen);
  const v = new DataView(p.buffer);
  p[0] = 0x45;
  v.setUint16(2, p.length);
  v.setUint16(4, seq); // identification
  p[8] = 64; // TTL
  p[9] = 1; // ICMP
  p.set(src.split('.').map(Number), 12);
  p.set(dst.split('.').map(Number), 16);
  v.setUint16(10, checksum(p.subarray(0, 20)));
  p[20] = 8; // echo request
  v.setUint16(24, id);
  v.setUint16(26, seq);
  for (let i = 0; i < payloadLen; i++) p[28 + i] = (seq + i) & 0xff;
  v.setUint16(22, checksum(p.subarray(20)));
  return p;
}

/** The ICMP echo reply fields of an IPv4 packet, or null if it is not one. */
export function parseEchoReply(p: Uint8Array): { src: string; dst: string; id: number; seq: number; payload: Uint8Array } | null {
  if (p.length < 28 || p[0]! >> 4 !== 4 || p[9] !== 1) return null;
  const ihl = (p[0]! & 0xf) * 4;
  if (p[ihl] !== 0) return null;
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  return {
    src: p.subarray(12, 16).join('.'),
    dst: p.subarray(16, 20).join('.'),
    id: v.getUint16(ihl + 4),
    seq: v.getUint16(ihl + 6),
    payload: p.subarray(ihl + 8),
  };
}

function checksum(b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (b.length & 1) sum += b[b.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
