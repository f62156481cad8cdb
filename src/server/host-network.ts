/**
 * What the exit server changes on its host, and undoes on exit: addresses on
 * its TUN interface, IP forwarding, and masquerading NAT of the client pools
 * out of the default-route interface (SPEC §4). NAT goes into a table of its
 * own (nftables, or iptables rules tagged with a comment when nft is absent),
 * so removing it never touches anyone else's rules. Start-up and shutdown
 * only: nothing here runs per packet.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

export interface DefaultRoute {
  /** Interface of the IPv4 default route (or the IPv6 one when there is no IPv4 default). */
  device: string | null;
  device6: string | null;
  addresses4: string[];
  addresses6: string[];
}

function ipJson(args: string[]): any[] {
  const r = spawnSync('ip', ['-j', ...args], { encoding: 'utf8' });
  if (r.status !== 0 || !r.stdout.trim()) return [];
  try {
    return JSON.parse(r.stdout);
  } catch {
    return [];
  }
}

/** The default-route interfaces and their global addresses, as `ip` reports them. */
export function detectDefaultRoute(): DefaultRoute {
  const dev4 = (ipJson(['-4', 'route', 'show', 'default'])[0]?.dev as string | undefined) ?? null;
  const dev6 = (ipJson(['-6', 'route', 'show', 'default'])[0]?.dev as string | undefined) ?? null;
  const addrsOf = (dev: string | null, family: 'inet' | 'inet6') => {
    if (!dev) return [];
    const info = ipJson(['addr', 'show', 'dev', dev])[0];
    return ((info?.addr_info ?? []) as { family: string; local: string; scope: string }[])
      .filter((a) => a.family === family && a.scope === 'global')
      .map((a) => a.local);
  };
  return { device: dev4 ?? dev6, device6: dev6 ?? dev4, addresses4: addrsOf(dev4, 'inet'), addresses6: addrsOf(dev6 ?? dev4, 'inet6') };
}

function run(cmd: string, args: string[], input?: string): void {
  execFileSync(cmd, args, { input, stdio: ['pipe', 'ignore', 'pipe'] });
}

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** Puts the pools' gateway addresses on the interface and brings it up. */
export function configureInterface(ifname: string, gateway4: string, prefix4: number, gateway6: string | null, prefix6: number, mtu: number): void {
  run('ip', ['link', 'set', ifname, 'mtu', String(mtu)]);
  run('ip', ['addr', 'replace', `${gateway4}/${prefix4}`, 'dev', ifname]);
  if (gateway6) run('ip', ['-6', 'addr', 'replace', `${gateway6}/${prefix6}`, 'dev', ifname, 'nodad']);
  run('ip', ['link', 'set', ifname, 'up']);
}

export interface NatHandle {
  readonly backend: 'nft' | 'iptables';
  remove(): void;
}

const SYSCTL4 = '/proc/sys/net/ipv4/ip_forward';
const SYSCTL6 = '/proc/sys/net/ipv6/conf/all/forwarding';

function readSysctl(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

function writeSysctl(path: string, v: string): void {
  try {
    writeFileSync(path, v);
  } catch {
    /* IPv6 may be disabled */
  }
}

/**
 * Enables forwarding and masquerades traffic from the pools leaving through
 * `outIf` (and only from the pools: the host's own traffic is untouched).
 * Returns how to undo exactly that.
 */
export function setupNat(opts: { tun: string; outIf: string; outIf6: string; pool4: string; pool6: string | null }): NatHandle {
  const prev4 = readSysctl(SYSCTL4);
  const prev6 = readSysctl(SYSCTL6);
  writeSysctl(SYSCTL4, '1');
  if (opts.pool6) writeSysctl(SYSCTL6, '1');
  const restoreSysctls = () => {
    if (prev4 !== null) writeSysctl(SYSCTL4, prev4);
    if (prev6 !== null && opts.pool6) writeSysctl(SYSCTL6, prev6);
  };
  const table = `tunnelbyte_${opts.tun.replace(/[^A-Za-z0-9_]/g, '_')}`;
  try {
    if (has('nft')) {
      spawnSync('nft', ['delete', 'table', 'inet', table]); // a stale table from a killed run
      const rules = [
        `table inet ${table} {`,
        '  chain postrouting {',
        '    type nat hook postrouting priority srcnat; policy accept;',
        `    ip saddr ${opts.pool4} oifname "${opts.outIf}" masquerade`,
        ...(opts.pool6 ? [`    ip6 saddr ${opts.pool6} oifname "${opts.outIf6}" masquerade`] : []),
        '  }',
        '  chain forward {',
        '    type filter hook forward priority filter; policy accept;',
        `    iifname "${opts.tun}" oifname "${opts.tun}" drop`,
        `    iifname "${opts.tun}" accept`,
        `    oifname "${opts.tun}" ct state established,related accept`,
        '  }',
        '}',
      ].join('\n');
      run('nft', ['-f', '-'], rules);
      return {
        backend: 'nft',
        remove: () => {
          spawnSync('nft', ['delete', 'table', 'inet', table]);
          restoreSysctls();
        },
      };
    }
    const comment = ['-m', 'comment', '--comment', table];
    const rules4: string[][] = [
      ['-t', 'nat', 'POSTROUTING', '-s', opts.pool4, '-o', opts.outIf, ...comment, '-j', 'MASQUERADE'],
      ['-t', 'filter', 'FORWARD', '-i', opts.tun, '-o', opts.tun, ...comment, '-j', 'DROP'],
      ['-t', 'filter', 'FORWARD', '-i', opts.tun, ...comment, '-j', 'ACCEPT'],
      ['-t', 'filter', 'FORWARD', '-o', opts.tun, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', ...comment, '-j', 'ACCEPT'],
    ];
    const rules6 = opts.pool6 ? rules4.map((r) => r.map((x) => (x === opts.pool4 ? opts.pool6! : x === opts.outIf ? opts.outIf6 : x))) : [];
    const apply = (bin: string, rules: string[][], op: '-I' | '-D') => {
      for (const r of op === '-I' ? [...rules].reverse() : rules) {
        const [t, tbl, chain, ...rest] = r;
        spawnSync(bin, [t!, tbl!, op, chain!, ...rest]);
      }
    };
    apply('iptables', rules4, '-I');
    if (rules6.length && has('ip6tables')) apply('ip6tables', rules6, '-I');
    return {
      backend: 'iptables',
      remove: () => {
        apply('iptables', rules4, '-D');
        if (rules6.length && has('ip6tables')) apply('ip6tables', rules6, '-D');
        restoreSysctls();
      },
    };
  } catch (e) {
    restoreSysctls();
    throw e;
  }
}
