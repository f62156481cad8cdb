/**
 * Where an exit's clients may send packets: the internet, and nothing of the
 * exit's own or of the networks around it. The device applies this to every
 * decrypted packet (receive.ts), so it holds even when the host's firewall
 * does not (`serve --no-nat`); the exit server writes the same ranges into
 * its nftables/iptables table (server/host-network.ts).
 *
 * A destination is refused when it is
 *   1. one of the exit's own addresses or inside a client pool (`own`) —
 *      always, whatever is allowed; or
 *   2. inside a range of REFUSED_BY_DEFAULT, or one of the host's addresses
 *      given as `host` (the netstack exit's), and not inside an `allow` range
 *      (`serve --allow-private CIDR…`). An allowed range opens every refused
 *      range it covers, like an accept rule placed before the drop rules.
 *
 * The TUN exit puts the host's addresses in `own`: a forwarded packet to
 * them would reach the host's own services, always refused. The netstack
 * exit (`serve --netstack`) relays through the host's sockets, so a range
 * the operator opens (`--allow-private 127.0.0.0/8`) means the host's own
 * loopback; there the host's addresses are `host`, and the exit's own
 * listeners (API, metrics) are refused by port in its forwarder.
 *
 * The ranges are IANA's special-purpose registries (RFC 6890, and the
 * registries it created) minus the documentation ranges (192.0.2.0/24,
 * 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32), which the public internet
 * never routes and which cannot reach anything of the exit's.
 */
import { AllowedIps, masked, type Prefix } from '../protocol/allowed-ips.js';
import { IPV4_DST, IPV6_DST } from '../protocol/ip.js';
import { formatPrefix, parsePrefix } from '../io/ip-address.js';

/** The ranges a client cannot reach unless the operator allows them, with why. */
export const REFUSED_BY_DEFAULT: readonly { readonly cidr: string; readonly what: string }[] = [
  { cidr: '0.0.0.0/8', what: '"this network" (RFC 791, RFC 1122 §3.2.1.3)' },
  { cidr: '10.0.0.0/8', what: 'private (RFC 1918)' },
  { cidr: '100.64.0.0/10', what: 'carrier-grade NAT, shared address space (RFC 6598); also cloud metadata such as 100.100.100.200' },
  { cidr: '127.0.0.0/8', what: 'loopback (RFC 1122 §3.2.1.3)' },
  { cidr: '169.254.0.0/16', what: 'link-local (RFC 3927), incl. the cloud metadata service 169.254.169.254' },
  { cidr: '172.16.0.0/12', what: 'private (RFC 1918)' },
  { cidr: '192.0.0.0/24', what: 'IETF protocol assignments (RFC 6890 §2.2.2)' },
  { cidr: '192.168.0.0/16', what: 'private (RFC 1918)' },
  { cidr: '198.18.0.0/15', what: 'benchmarking (RFC 2544), used inside data centres' },
  { cidr: '224.0.0.0/4', what: 'multicast (RFC 5771)' },
  { cidr: '240.0.0.0/4', what: 'reserved (RFC 1112 §4), incl. the limited broadcast 255.255.255.255' },
  { cidr: '::/128', what: 'unspecified (RFC 4291 §2.5.2)' },
  { cidr: '::1/128', what: 'loopback (RFC 4291 §2.5.3)' },
  { cidr: '::ffff:0:0/96', what: 'IPv4-mapped (RFC 4291 §2.5.5.2): an IPv4 destination in disguise' },
  { cidr: '64:ff9b:1::/48', what: 'local-use IPv4/IPv6 translation (RFC 8215)' },
  { cidr: '100::/64', what: 'discard-only (RFC 6666)' },
  { cidr: 'fc00::/7', what: 'unique local (RFC 4193), incl. the cloud metadata service fd00:ec2::254' },
  { cidr: 'fe80::/10', what: 'link-local (RFC 4291 §2.5.6)' },
  { cidr: 'fec0::/10', what: 'site-local, deprecated (RFC 3879)' },
  { cidr: 'ff00::/8', what: 'multicast (RFC 4291 §2.7)' },
];

export interface DestinationPolicySpec {
  /** The exit's own addresses and its client pools (prefixes, `a.b.c.d/32` for one address): always refused. */
  own: string[];
  /** Ranges opened inside REFUSED_BY_DEFAULT (`--allow-private`). */
  allow: string[];
  /** The host's addresses refused unless an `allow` range covers them (the netstack exit; the TUN exit puts them in `own`). */
  host?: string[];
}

const REFUSED = { verdict: 'refused' } as const;
const ALLOWED = { verdict: 'allowed' } as const;
type Verdict = typeof REFUSED | typeof ALLOWED;

/** A prefix from its text; misuse (a malformed prefix from configuration) throws. */
export function prefixOf(cidr: string): Prefix {
  const p = parsePrefix(cidr);
  if (!p) throw new RangeError(`not an IP prefix (ADDRESS/BITS): ${cidr}`);
  return p;
}

/** The prefix in its canonical text form, host bits cleared (192.168.1.7/24 → 192.168.1.0/24), as firewalls want it. */
export function canonicalPrefix(cidr: string): string {
  const p = prefixOf(cidr);
  return formatPrefix(p.family, masked(p.address, p.cidr), p.cidr);
}

/** `addr` → `addr/32` or `addr/128`; a prefix stays as it is. */
export function asPrefix(addrOrPrefix: string): string {
  if (addrOrPrefix.includes('/')) return addrOrPrefix;
  return `${addrOrPrefix}/${addrOrPrefix.includes(':') ? 128 : 32}`;
}

export class DestinationPolicy {
  /** Own addresses and pools: refused first, whatever `allow` says. */
  private readonly own = new AllowedIps<Verdict>();
  /** REFUSED_BY_DEFAULT and the allowed ranges: refused only if a refused range matches and no allowed one does. */
  private readonly refused = new AllowedIps<Verdict>();
  private readonly allowed = new AllowedIps<Verdict>();

  constructor(readonly spec: DestinationPolicySpec) {
    for (const s of spec.own) {
      const p = prefixOf(asPrefix(s));
      this.own.insert(p.family, p.address, p.cidr, REFUSED);
    }
    for (const r of [...REFUSED_BY_DEFAULT.map((d) => d.cidr), ...(spec.host ?? []).map(asPrefix)]) {
      const p = prefixOf(r);
      this.refused.insert(p.family, p.address, p.cidr, REFUSED);
    }
    for (const s of spec.allow) {
      const p = prefixOf(s);
      this.allowed.insert(p.family, p.address, p.cidr, ALLOWED);
    }
  }

  /** Whether the IPv4 packet at buf[at…] goes somewhere a client may not reach. */
  refuses4(buf: Uint8Array, at: number): boolean {
    const d = at + IPV4_DST;
    if (this.own.lookup4(buf, d) !== null) return true;
    return this.refused.lookup4(buf, d) !== null && this.allowed.lookup4(buf, d) === null;
  }

  /** Whether the IPv6 packet at buf[at…] goes somewhere a client may not reach. */
  refuses6(buf: Uint8Array, at: number): boolean {
    const d = at + IPV6_DST;
    if (this.own.lookup6(buf, d) !== null) return true;
    return this.refused.lookup6(buf, d) !== null && this.allowed.lookup6(buf, d) === null;
  }

  /** Whether a client may reach `address` (an IP in text form). */
  refusesAddress(address: string): boolean {
    const p = prefixOf(asPrefix(address));
    const at = p.family === 4 ? IPV4_DST : IPV6_DST;
    const packet = new Uint8Array(at + p.address.length);
    packet.set(p.address, at);
    return p.family === 4 ? this.refuses4(packet, 0) : this.refuses6(packet, 0);
  }
}
