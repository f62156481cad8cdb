/**
 * What the exit server changes on its host, and undoes on exit: addresses on
 * its TUN interface, IP forwarding, masquerading NAT of the client pools and
 * the filter that keeps clients off the host itself and off private and
 * special networks (docs/contract.md §4; the ranges are device/destination-policy.ts's).
 * NAT and filter go into a table of its own (nftables, or iptables rules
 * tagged with a comment when nft is absent), so removing it never touches
 * anyone else's rules. Start-up and shutdown only: nothing here runs per
 * packet.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';

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

/**
 * Every address of this host (in this network namespace), on every
 * interface, sorted: what a client must not reach through the exit.
 */
export function hostAddresses(): string[] {
  const out = new Set<string>();
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) out.add(a.address.replace(/%.*$/, ''));
  }
  return [...out].sort();
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

export interface NatOptions {
  tun: string;
  pool4: string;
  pool6: string | null;
  /** Destination ranges clients may not reach through the exit (REFUSED_BY_DEFAULT). */
  refuse: string[];
  /** Ranges opened inside `refuse` (`--allow-private`). */
  allow: string[];
}

/**
 * Enables forwarding and, in the exit's own table:
 *   - input: nothing from the clients reaches the host itself (its API,
 *     metrics, anything bound to 0.0.0.0, on any of its addresses — the pool
 *     gateways too): only replies to connections the host opened;
 *   - forward: client to client dropped; allowed ranges accepted; refused
 *     ranges dropped; the rest of the clients' traffic accepted; towards the
 *     clients only replies (nothing from a LAN or the internet opens a
 *     connection to a client);
 *   - postrouting: everything from the pools that leaves, through whichever
 *     interface (the internet, an allowed LAN), is masqueraded.
 * The host's own traffic is untouched. Returns how to undo exactly that.
 */
export function setupNat(opts: NatOptions): NatHandle {
  const prev4 = readSysctl(SYSCTL4);
  const prev6 = readSysctl(SYSCTL6);
  writeSysctl(SYSCTL4, '1');
  if (opts.pool6) writeSysctl(SYSCTL6, '1');
  const restoreSysctls = () => {
    if (prev4 !== null) writeSysctl(SYSCTL4, prev4);
    if (prev6 !== null && opts.pool6) writeSysctl(SYSCTL6, prev6);
  };
  const table = `tunnelbyte_${opts.tun.replace(/[^A-Za-z0-9_]/g, '_')}`;
  const v4 = (cidrs: string[]) => cidrs.filter((c) => !c.includes(':'));
  const v6 = (cidrs: string[]) => cidrs.filter((c) => c.includes(':'));
  try {
    if (has('nft')) {
      spawnSync('nft', ['delete', 'table', 'inet', table]); // a stale table from a killed run
      const set = (name: string, type: 'ipv4_addr' | 'ipv6_addr', cidrs: string[]) => [
        `  set ${name} {`,
        `    type ${type}; flags interval; auto-merge;`,
        ...(cidrs.length ? [`    elements = { ${cidrs.join(', ')} }`] : []),
        '  }',
      ];
      const tun = `"${opts.tun}"`;
      const rules = [
        `table inet ${table} {`,
        ...set('allow4', 'ipv4_addr', v4(opts.allow)),
        ...set('allow6', 'ipv6_addr', v6(opts.allow)),
        ...set('refuse4', 'ipv4_addr', v4(opts.refuse)),
        ...set('refuse6', 'ipv6_addr', v6(opts.refuse)),
        '  chain input {',
        '    type filter hook input priority filter; policy accept;',
        `    iifname ${tun} ct state established,related accept`,
        `    iifname ${tun} drop`,
        '  }',
        '  chain forward {',
        '    type filter hook forward priority filter; policy accept;',
        `    iifname ${tun} oifname ${tun} drop`,
        `    iifname ${tun} ip daddr @allow4 accept`,
        `    iifname ${tun} ip6 daddr @allow6 accept`,
        `    iifname ${tun} ip daddr @refuse4 drop`,
        `    iifname ${tun} ip6 daddr @refuse6 drop`,
        `    iifname ${tun} accept`,
        `    oifname ${tun} ct state established,related accept`,
        `    oifname ${tun} drop`,
        '  }',
        '  chain postrouting {',
        '    type nat hook postrouting priority srcnat; policy accept;',
        `    ip saddr ${opts.pool4} oifname != ${tun} masquerade`,
        ...(opts.pool6 ? [`    ip6 saddr ${opts.pool6} oifname != ${tun} masquerade`] : []),
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
    // iptables: the same rules, each tagged with the table's name, inserted at
    // the top of the built-in chains in this order.
    const comment = ['-m', 'comment', '--comment', table];
    const rulesFor = (pool: string, allow: string[], refuse: string[]): string[][] => [
      ['-t', 'filter', 'INPUT', '-i', opts.tun, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', ...comment, '-j', 'ACCEPT'],
      ['-t', 'filter', 'INPUT', '-i', opts.tun, ...comment, '-j', 'DROP'],
      ['-t', 'filter', 'FORWARD', '-i', opts.tun, '-o', opts.tun, ...comment, '-j', 'DROP'],
      ...allow.map((c) => ['-t', 'filter', 'FORWARD', '-i', opts.tun, '-d', c, ...comment, '-j', 'ACCEPT']),
      ...refuse.map((c) => ['-t', 'filter', 'FORWARD', '-i', opts.tun, '-d', c, ...comment, '-j', 'DROP']),
      ['-t', 'filter', 'FORWARD', '-i', opts.tun, ...comment, '-j', 'ACCEPT'],
      ['-t', 'filter', 'FORWARD', '-o', opts.tun, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', ...comment, '-j', 'ACCEPT'],
      ['-t', 'filter', 'FORWARD', '-o', opts.tun, ...comment, '-j', 'DROP'],
      ['-t', 'nat', 'POSTROUTING', '-s', pool, '!', '-o', opts.tun, ...comment, '-j', 'MASQUERADE'],
    ];
    const rules4 = rulesFor(opts.pool4, v4(opts.allow), v4(opts.refuse));
    const rules6 = opts.pool6 ? rulesFor(opts.pool6, v6(opts.allow), v6(opts.refuse)) : [];
    const apply = (bin: string, rules: string[][], op: '-I' | '-D') => {
      for (const r of op === '-I' ? [...rules].reverse() : rules) {
        const [t, tbl, chain, ...rest] = r;
        const res = spawnSync(bin, [t!, tbl!, op, chain!, ...rest], { encoding: 'utf8' });
        if (op === '-I' && res.status !== 0) throw new Error(`${bin} ${r.join(' ')}: ${res.stderr.trim()}`);
      }
    };
    const has6 = rules6.length > 0 && has('ip6tables');
    const removeAll = () => {
      apply('iptables', rules4, '-D');
      if (has6) apply('ip6tables', rules6, '-D');
    };
    try {
      apply('iptables', rules4, '-I');
      if (has6) apply('ip6tables', rules6, '-I');
    } catch (e) {
      removeAll();
      throw e;
    }
    return {
      backend: 'iptables',
      remove: () => {
        removeAll();
        restoreSysctls();
      },
    };
  } catch (e) {
    restoreSysctls();
    throw e;
  }
}
