/**
 * A reader for the classic libpcap file format (what `tcpdump -w` writes) and
 * the TCP segments in it, for tests that assert what actually went over a link
 * (options negotiated, windows, SACK blocks, retransmissions) rather than what
 * a stack's counters say.
 *
 * File format (https://www.tcpdump.org/manpages/pcap-savefile.5.html,
 * draft-ietf-opsawg-pcap): a 24-byte global header — magic 0xa1b2c3d4
 * (µs timestamps) or 0xa1b23c4d (ns), in the writer's byte order, version,
 * snaplen, link type — then per packet a 16-byte record header (seconds,
 * µs/ns, captured length, original length) and the captured bytes.
 * Link types read here: RAW (101: the packet starts with the IP header, what a
 * wireguard-go TUN gives), LINUX_SLL (113) and LINUX_SLL2 (276) (`-i any`),
 * and EN10MB (1). The IP and TCP (or UDP) headers are parsed from the captured bytes;
 * the payload length comes from the IP header, so a short snaplen is enough.
 */
import { readFileSync } from 'node:fs';

export interface TcpOptionsSeen {
  mss: number | null;
  /** Window scale shift (RFC 7323 §2), null when the option is absent. */
  wscale: number | null;
  sackPermitted: boolean;
  /** SACK blocks (RFC 2018 §3) as [left, right) sequence pairs. */
  sack: [number, number][];
  timestamp: [number, number] | null;
}

export interface TcpSegmentSeen {
  /** Seconds since the epoch (fractional). */
  time: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: { syn: boolean; ack: boolean; fin: boolean; rst: boolean; psh: boolean };
  /** The raw 16-bit window field (scale it with the sender's SYN wscale). */
  window: number;
  /** TCP payload bytes, from the IP header's lengths. */
  len: number;
  options: TcpOptionsSeen;
}

const LINKTYPE_EN10MB = 1;
const LINKTYPE_RAW = 101;
const LINKTYPE_LINUX_SLL = 113;
const LINKTYPE_LINUX_SLL2 = 276;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

/** Every packet record of a pcap file: its time, link type and captured bytes. */
export function readPcap(file: string): { linkType: number; packets: { time: number; data: Buffer }[] } {
  const b = readFileSync(file);
  if (b.length < 24) throw new Error(`${file}: not a pcap file (${b.length} bytes)`);
  const magicLE = b.readUInt32LE(0);
  const magicBE = b.readUInt32BE(0);
  let le: boolean;
  let nano: boolean;
  if (magicLE === 0xa1b2c3d4 || magicLE === 0xa1b23c4d) [le, nano] = [true, magicLE === 0xa1b23c4d];
  else if (magicBE === 0xa1b2c3d4 || magicBE === 0xa1b23c4d) [le, nano] = [false, magicBE === 0xa1b23c4d];
  else throw new Error(`${file}: bad pcap magic ${b.subarray(0, 4).toString('hex')} (pcapng is not read here)`);
  const u32 = (o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const linkType = u32(20) & 0x0fffffff;
  const packets: { time: number; data: Buffer }[] = [];
  let o = 24;
  // A capture stopped mid-record (the writer killed) ends at the last whole record.
  while (o + 16 <= b.length) {
    const caplen = u32(o + 8);
    if (o + 16 + caplen > b.length) break;
    packets.push({ time: u32(o) + u32(o + 4) / (nano ? 1e9 : 1e6), data: b.subarray(o + 16, o + 16 + caplen) });
    o += 16 + caplen;
  }
  return { linkType, packets };
}

/** Where the IP header starts in a frame of `linkType`, or -1 for a frame that does not carry IP. */
function ipOffset(linkType: number, f: Buffer): number {
  switch (linkType) {
    case LINKTYPE_RAW:
      return 0;
    case LINKTYPE_LINUX_SLL:
      return f.length >= 16 ? 16 : -1;
    case LINKTYPE_LINUX_SLL2:
      return f.length >= 20 ? 20 : -1;
    case LINKTYPE_EN10MB:
      return f.length >= 14 && (f.readUInt16BE(12) === 0x0800 || f.readUInt16BE(12) === 0x86dd) ? 14 : -1;
    default:
      throw new Error(`pcap link type ${linkType} is not read here`);
  }
}

function ipv6Text(b: Buffer, o: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(o + 2 * i).toString(16));
  // The canonical form (RFC 5952): the longest run of two or more zero groups becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** TCP options (RFC 9293 §3.1; kinds 2 MSS, 3 WS, 4 SACK-permitted, 5 SACK, 8 TS); a malformed list ends the parse. */
function parseOptions(b: Buffer, from: number, to: number): TcpOptionsSeen {
  const opts: TcpOptionsSeen = { mss: null, wscale: null, sackPermitted: false, sack: [], timestamp: null };
  let o = from;
  while (o < to) {
    const kind = b[o]!;
    if (kind === 0) break;
    if (kind === 1) {
      o++;
      continue;
    }
    if (o + 1 >= to) break;
    const len = b[o + 1]!;
    if (len < 2 || o + len > to) break;
    if (kind === 2 && len === 4) opts.mss = b.readUInt16BE(o + 2);
    else if (kind === 3 && len === 3) opts.wscale = b[o + 2]!;
    else if (kind === 4 && len === 2) opts.sackPermitted = true;
    else if (kind === 5 && (len - 2) % 8 === 0) {
      for (let k = o + 2; k < o + len; k += 8) opts.sack.push([b.readUInt32BE(k), b.readUInt32BE(k + 4)]);
    } else if (kind === 8 && len === 10) opts.timestamp = [b.readUInt32BE(o + 2), b.readUInt32BE(o + 6)];
    o += len;
  }
  return opts;
}

/** Where a packet's layer-4 header starts, where its payload ends (from the IP header's lengths) and its addresses; null for another protocol or a frame too short. */
function ipPacket(linkType: number, f: Buffer, proto: number): { l4: number; payloadEnd: number; src: string; dst: string } | null {
  const ip = ipOffset(linkType, f);
  if (ip < 0 || f.length < ip + 1) return null;
  const version = f[ip]! >> 4;
  if (version === 4) {
    if (f.length < ip + 20 || f[ip + 9] !== proto) return null;
    return { l4: ip + (f[ip]! & 0x0f) * 4, payloadEnd: ip + f.readUInt16BE(ip + 2), src: [...f.subarray(ip + 12, ip + 16)].join('.'), dst: [...f.subarray(ip + 16, ip + 20)].join('.') };
  }
  // IPv6 without extension headers: the next header is the protocol itself.
  if (version === 6) {
    if (f.length < ip + 40 || f[ip + 6] !== proto) return null;
    return { l4: ip + 40, payloadEnd: ip + 40 + f.readUInt16BE(ip + 4), src: ipv6Text(f, ip + 8), dst: ipv6Text(f, ip + 24) };
  }
  return null;
}

/** The TCP segments of a capture (IPv4 and IPv6 without extension headers), in capture order. */
export function tcpSegments(file: string): TcpSegmentSeen[] {
  const { linkType, packets } = readPcap(file);
  const out: TcpSegmentSeen[] = [];
  for (const p of packets) {
    const f = p.data;
    const ip = ipPacket(linkType, f, IPPROTO_TCP);
    if (ip === null) continue;
    const { l4: tcp, payloadEnd, src, dst } = ip;
    if (f.length < tcp + 20) continue;
    const dataOff = (f[tcp + 12]! >> 4) * 4;
    const fl = f[tcp + 13]!;
    out.push({
      time: p.time,
      src,
      dst,
      sport: f.readUInt16BE(tcp),
      dport: f.readUInt16BE(tcp + 2),
      seq: f.readUInt32BE(tcp + 4),
      ack: f.readUInt32BE(tcp + 8),
      flags: { fin: (fl & 1) !== 0, syn: (fl & 2) !== 0, rst: (fl & 4) !== 0, psh: (fl & 8) !== 0, ack: (fl & 16) !== 0 },
      window: f.readUInt16BE(tcp + 14),
      len: Math.max(0, payloadEnd - tcp - dataOff),
      options: parseOptions(f, tcp + 20, Math.min(tcp + dataOff, f.length)),
    });
  }
  return out;
}

export interface UdpDatagramSeen {
  /** Seconds since the epoch (fractional). */
  time: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** UDP payload bytes, from the IP header's lengths. */
  len: number;
}

/** The UDP datagrams of a capture (IPv4 and IPv6 without extension headers), in capture order. */
export function udpDatagrams(file: string): UdpDatagramSeen[] {
  const { linkType, packets } = readPcap(file);
  const out: UdpDatagramSeen[] = [];
  for (const p of packets) {
    const f = p.data;
    const ip = ipPacket(linkType, f, IPPROTO_UDP);
    if (ip === null || f.length < ip.l4 + 8) continue;
    out.push({ time: p.time, src: ip.src, dst: ip.dst, sport: f.readUInt16BE(ip.l4), dport: f.readUInt16BE(ip.l4 + 2), len: Math.max(0, ip.payloadEnd - ip.l4 - 8) });
  }
  return out;
}
