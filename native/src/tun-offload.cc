// TUN offloads: what a read from a TUN opened with IFF_VNET_HDR (and
// TUNSETOFFLOAD TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6, see tun.cc) hands us,
// turned back into plain IP packets, one per batch slot.
//
// Why: with TSO advertised, the kernel's TCP stack sends the TUN one "super-
// packet" of up to 64 KiB per write instead of ~45 MTU-sized ones, so it
// builds, routes and queues a tenth as many skbs, and a read() returns that
// much more data. This is the change that took wireguard-go from ~1 to ~10
// Gbit/s (tun/offload_linux.go). We do the segmentation here, in C++, so the
// rest of tunnelbyte still sees one IP packet per slot. The write side does
// the reverse for runs of TCP segments (GRO-style coalescing, further down).
//
// Each read starts with a struct virtio_net_hdr (include/uapi/linux/
// virtio_net.h), filled by virtio_net_hdr_from_skb() in drivers/net/tun.c
// (tun_put_user). Its 16-bit fields are in the host's byte order: the TUN is
// "legacy" virtio unless TUNSETVNETLE, and tun_is_little_endian() is then
// virtio_legacy_is_little_endian(), i.e. native. Three cases:
//   - gso_type NONE, flags & NEEDS_CSUM: the skb was CHECKSUM_PARTIAL; the
//     checksum field at csum_start + csum_offset holds the pseudo-header sum
//     (e.g. __tcp_v4_send_check in net/ipv4/tcp_ipv4.c), and we finish it
//     the way skb_checksum_help() (net/core/dev.c) would have.
//   - gso_type TCPV4/TCPV6 (+ the ECN bit): split into gso_size payload
//     chunks the way tcp_gso_segment() (net/ipv4/tcp_offload.c),
//     inet_gso_segment() (net/ipv4/af_inet.c) and ipv6_gso_segment()
//     (net/ipv6/ip6_offload.c) would have: per segment fix the IPv4 total
//     length, ID (+1 each) and header checksum, or the IPv6 payload length;
//     the TCP sequence number; CWR only on the first segment, FIN and PSH
//     only on the last; a full TCP checksum.
//   - anything else (UDP GSO: we never advertise TUN_F_UFO/USO4/USO6, so the
//     kernel segments those itself): dropped and counted (res[kResFailed]).
//
// The header comes from the kernel, but nothing in it is trusted for memory
// safety: every offset is checked against the length read. hdr_len is not
// used at all — like wireguard-go we take the header length from the IP and
// TCP headers themselves, since on the forwarding path the kernel may report
// the length of the whole first packet there.
#include "io.h"

#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>

namespace tb {

namespace {

struct Vnet {
  uint8_t flags;
  uint8_t gsoType;
  uint16_t gsoSize;
  uint16_t csumStart;
  uint16_t csumOffset;
};

// The virtio_net_hdr at b (kVnetHdrLen bytes), native byte order (see top).
Vnet ReadVnet(const uint8_t* b) {
  VirtioNetHdr h;
  memcpy(&h, b, sizeof h);
  return Vnet{h.flags, h.gso_type, h.gso_size, h.csum_start, h.csum_offset};
}

uint16_t Load16(const uint8_t* p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}
void Store16(uint8_t* p, uint16_t v) { memcpy(p, &v, 2); }
uint16_t LoadBe16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
void StoreBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
uint32_t LoadBe32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 | p[3];
}
void StoreBe32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// The Internet checksum (RFC 1071) over memory-order words: loading words in
// the host's order and storing the folded result the same way gives the right
// bytes on either endianness (RFC 1071 §2(B)), so nothing here byte-swaps.
// Pieces summed one after another must have even lengths, except the last.
uint64_t Sum(const uint8_t* p, size_t n, uint64_t acc) {
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    acc += (w & 0xffffffffu) + (w >> 32);
    p += 8;
    n -= 8;
  }
  if (n >= 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    acc += w;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    acc += Load16(p);
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    const uint8_t last[2] = {p[0], 0};  // an odd byte is the high-order byte of a zero-padded word
    acc += Load16(last);
  }
  return acc;
}

// Folds a sum to 16 bits (2^16 ≡ 1 mod 0xffff), not yet complemented.
uint16_t Fold(uint64_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(acc);
}

// A memory-order word holding the big-endian value v (for pseudo-header numbers).
uint16_t Word(uint16_t v) { return htons(v); }

void Count(int32_t* res, int slot, int err) {
  res[slot]++;
  res[kResLastErrno] = err;
}

uint8_t* SlotAt(const SlotsOut& out, size_t i) { return out.data + i * out.slotSize + out.headroom; }

void Place(const SlotsOut& out, size_t i, size_t len) {
  out.offsets[i] = static_cast<int32_t>(out.headroom);
  out.lengths[i] = static_cast<int32_t>(len);
}

// gso_type NONE. NEEDS_CSUM: finish the checksum at csum_start + csum_offset
// as skb_checksum_help() does: fold the sum over [csum_start, end), which
// includes the pseudo-header sum already in the field, complement it, and
// store 0xffff for a 0 (CSUM_MANGLED_0: for UDP a 0 would mean "none").
size_t DeliverPlain(const Vnet& v, const uint8_t* pkt, size_t plen, const SlotsOut& out, size_t slot, int32_t* res) {
  if (plen > out.slotSize - out.headroom) {
    Count(res, kResDropped, EMSGSIZE);
    return 0;
  }
  size_t cs = v.csumStart, co = v.csumOffset;
  bool csum = (v.flags & kVnetFlagNeedsCsum) != 0;
  if (csum && (cs > plen || co > plen - cs || plen - cs - co < 2)) {
    Count(res, kResFailed, EINVAL);
    return 0;
  }
  uint8_t* o = SlotAt(out, slot);
  memcpy(o, pkt, plen);
  if (csum) {
    uint16_t c = static_cast<uint16_t>(~Fold(Sum(o + cs, plen - cs, 0)));
    Store16(o + cs + co, c == 0 ? 0xffff : c);
  }
  Place(out, slot, plen);
  return 1;
}

// A TCP super-packet, checked against its length.
struct Tso {
  const uint8_t* pkt;
  size_t plen;
  bool v6;
  size_t tcpOff;   // IP header length
  size_t hdrLen;   // IP + TCP headers: copied in front of every segment
  size_t gso;      // payload bytes per segment (the last may be shorter)
  size_t payload;  // plen - hdrLen
  size_t segs;     // at least 1
};

// Checks a TCPV4/TCPV6 packet (after the vnet header); 0 or an errno.
int ParseTso(const Vnet& v, const uint8_t* pkt, size_t plen, Tso* t) {
  const uint8_t type = v.gsoType & static_cast<uint8_t>(~kVnetGsoEcn);
  if (plen < 1) return EINVAL;
  const int version = pkt[0] >> 4;
  if (type == kVnetGsoTcpV4) {
    if (version != 4 || plen < 20) return EINVAL;
    size_t ihl = static_cast<size_t>(pkt[0] & 0x0f) * 4;
    // A fragment cannot be a TSO packet (MF set or a fragment offset).
    if (ihl < 20 || pkt[9] != IPPROTO_TCP || (LoadBe16(pkt + 6) & 0x3fff) != 0) return EINVAL;
    t->v6 = false;
    t->tcpOff = ihl;
  } else if (type == kVnetGsoTcpV6) {
    // Extension headers would need walking (ipv6_gso_segment does); the
    // stack puts none on plain TCP, so a packet with any is dropped.
    if (version != 6 || plen < 40 || pkt[6] != IPPROTO_TCP) return EINVAL;
    t->v6 = true;
    t->tcpOff = 40;
  } else {
    return EPROTONOSUPPORT;
  }
  if (t->tcpOff + 20 > plen) return EINVAL;
  size_t doff = static_cast<size_t>(pkt[t->tcpOff + 12] >> 4) * 4;
  if (doff < 20 || t->tcpOff + doff > plen) return EINVAL;
  if (v.gsoSize == 0) return EINVAL;
  t->pkt = pkt;
  t->plen = plen;
  t->hdrLen = t->tcpOff + doff;
  t->gso = v.gsoSize;
  t->payload = plen - t->hdrLen;
  t->segs = t->payload == 0 ? 1 : (t->payload + t->gso - 1) / t->gso;
  // Segment sizes must fit the length fields (they do when the kernel's
  // super-packet did; a forged one is dropped).
  size_t first = t->hdrLen + (t->payload < t->gso ? t->payload : t->gso);
  if (first > 65535 + (t->v6 ? 40 : 0)) return EINVAL;
  return 0;
}

// Writes segment i of t to `o` (room checked by the caller); returns its length.
size_t WriteSegment(const Tso& t, size_t i, uint8_t* o) {
  const size_t off = i * t.gso;
  const size_t pay = t.payload - off < t.gso ? t.payload - off : t.gso;
  const size_t len = t.hdrLen + pay;
  memcpy(o, t.pkt, t.hdrLen);
  memcpy(o + t.hdrLen, t.pkt + t.hdrLen + off, pay);

  if (t.v6) {
    StoreBe16(o + 4, static_cast<uint16_t>(len - 40));  // payload length
  } else {
    // inet_gso_segment: total length, ID + 1 per segment (no FIXEDID in
    // virtio), header checksum over the whole header including options.
    StoreBe16(o + 2, static_cast<uint16_t>(len));
    StoreBe16(o + 4, static_cast<uint16_t>(LoadBe16(t.pkt + 4) + i));
    Store16(o + 10, 0);
    Store16(o + 10, static_cast<uint16_t>(~Fold(Sum(o, t.tcpOff, 0))));
  }

  // tcp_gso_segment: seq advances by the payload before; CWR is cleared after
  // the first segment; FIN and PSH are kept only on the last.
  uint8_t* th = o + t.tcpOff;
  StoreBe32(th + 4, LoadBe32(t.pkt + t.tcpOff + 4) + static_cast<uint32_t>(off));
  if (i > 0) th[13] &= static_cast<uint8_t>(~0x80);             // CWR
  if (i + 1 < t.segs) th[13] &= static_cast<uint8_t>(~0x09);    // FIN | PSH

  // Full TCP checksum: pseudo-header (addresses, zero + protocol 6, TCP
  // length — RFC 793 / RFC 8200 §8.1 give the same sum for lengths < 64 KiB)
  // plus the TCP header and payload.
  const size_t tcpLen = len - t.tcpOff;
  Store16(th + 16, 0);
  uint64_t acc = t.v6 ? Sum(o + 8, 32, 0) : Sum(o + 12, 8, 0);
  acc += Word(IPPROTO_TCP);
  acc += Word(static_cast<uint16_t>(tcpLen));
  Store16(th + 16, static_cast<uint16_t>(~Fold(Sum(th, tcpLen, acc))));
  return len;
}

}  // namespace

size_t TunDeliver(const uint8_t* buf, size_t len, size_t* next, bool* more, const SlotsOut& out, size_t first,
                  int32_t* res) {
  const size_t start = *next;
  *more = false;
  *next = 0;
  if (first >= out.count) {  // no room at all: keep the packet as it is
    *next = start;
    *more = true;
    return 0;
  }
  if (len < kVnetHdrLen) {
    Count(res, kResFailed, EINVAL);
    return 0;
  }
  const Vnet v = ReadVnet(buf);
  const uint8_t* pkt = buf + kVnetHdrLen;
  const size_t plen = len - kVnetHdrLen;
  if (v.gsoType == kVnetGsoNone) return DeliverPlain(v, pkt, plen, out, first, res);

  Tso t;
  int err = ParseTso(v, pkt, plen, &t);
  if (err != 0) {
    // UDP (UFO, USO) or unknown types, or a malformed TCP packet.
    Count(res, kResFailed, err);
    return 0;
  }
  if (start >= t.segs) return 0;  // a stale cursor: nothing left
  const size_t biggest = t.hdrLen + (t.payload < t.gso ? t.payload : t.gso);
  if (biggest > out.slotSize - out.headroom) {
    Count(res, kResDropped, EMSGSIZE);
    return 0;
  }
  if (start == 0) res[kResGso]++;
  size_t slot = first, i = start;
  for (; i < t.segs && slot < out.count; i++, slot++) Place(out, slot, WriteSegment(t, i, SlotAt(out, slot)));
  if (i < t.segs) {
    *next = i;
    *more = true;
  }
  return slot - first;
}

// ---- the write side: GRO-style coalescing (tcp_gro_receive in
// net/ipv4/tcp_offload.c, inet_gro_receive in net/ipv4/af_inet.c,
// ipv6_gro_receive in net/ipv6/ip6_offload.c decide what the kernel merges;
// wireguard-go's tcpGRO in tun/offload_linux.go does the same for its TUN).
// Only strictly consecutive packets are merged, so the order is kept, and
// only what tcp_gso_segment would split back into the very same packets:
// same headers except the IPv4 ID (+1 each), lengths and checksums; sequence
// numbers contiguous; every segment but the last of the full gso_size; ACK
// set, PSH/FIN only on the last, nothing else (SYN, RST, URG, ECE, CWR end a
// run). No IPv4 options or IPv6 extension headers: not worth the cases.

namespace {

constexpr uint8_t kTcpFin = 0x01, kTcpPsh = 0x08, kTcpAck = 0x10;

struct Seg {
  const uint8_t* p;
  size_t len;
  bool v6;
  size_t ipLen;
  size_t hdrLen;
  size_t payload;
  uint32_t seq;
  uint8_t flags;
};

// Pseudo-header sum (addresses, protocol 6, TCP length) of packet p.
uint64_t PseudoSum(const uint8_t* p, bool v6, size_t tcpLen) {
  uint64_t acc = v6 ? Sum(p + 8, 32, 0) : Sum(p + 12, 8, 0);
  return acc + Word(IPPROTO_TCP) + Word(static_cast<uint16_t>(tcpLen));
}

// A TCP data segment we may merge: lengths consistent, checksums verify.
bool ParseSeg(const uint8_t* p, size_t len, Seg* s) {
  if (len < 40) return false;
  if (p[0] == 0x45) {
    if (p[9] != IPPROTO_TCP || LoadBe16(p + 2) != len || (LoadBe16(p + 6) & 0x3fff) != 0) return false;
    if (Fold(Sum(p, 20, 0)) != 0xffff) return false;
    s->v6 = false;
    s->ipLen = 20;
  } else if ((p[0] >> 4) == 6) {
    if (len < 60 || len - 40 > 65535 || p[6] != IPPROTO_TCP || LoadBe16(p + 4) != len - 40) return false;
    s->v6 = true;
    s->ipLen = 40;
  } else {
    return false;
  }
  const uint8_t* th = p + s->ipLen;
  size_t doff = static_cast<size_t>(th[12] >> 4) * 4;
  if (doff < 20 || s->ipLen + doff >= len || s->ipLen + doff > kMaxCoalesceHdr) return false;  // no payload: nothing to merge
  s->flags = th[13];
  if ((s->flags & kTcpAck) == 0 || (s->flags & ~(kTcpAck | kTcpPsh | kTcpFin)) != 0) return false;
  const size_t tcpLen = len - s->ipLen;
  if (Fold(Sum(th, tcpLen, PseudoSum(p, s->v6, tcpLen))) != 0xffff) return false;
  s->p = p;
  s->len = len;
  s->hdrLen = s->ipLen + doff;
  s->payload = len - s->hdrLen;
  s->seq = LoadBe32(th + 4);
  return true;
}

bool Same(const uint8_t* a, const uint8_t* b, size_t from, size_t to) { return memcmp(a + from, b + from, to - from) == 0; }

// Whether `next` can follow `prev` in the run that `first` started (k
// segments so far, `payload` bytes of them).
bool CanFollow(const Seg& first, const Seg& prev, const Seg& next, size_t k, size_t payload) {
  if (next.v6 != first.v6 || next.hdrLen != first.hdrLen) return false;
  if ((prev.flags & (kTcpPsh | kTcpFin)) != 0) return false;  // prev ended its run
  if (prev.payload != first.payload || next.payload > first.payload) return false;
  if (first.hdrLen + payload + next.payload > 65535) return false;  // like the kernel's GRO: 64 KiB in all
  const uint8_t *a = first.p, *n = next.p;
  if (first.v6) {
    if (!Same(a, n, 0, 4) || !Same(a, n, 6, 40)) return false;  // version, class, flow label; next header, hops, addresses
  } else {
    // version/IHL, TOS; DF/fragment, TTL, protocol; addresses. The ID must
    // count up, as inet_gso_segment will make it on the way back.
    if (!Same(a, n, 0, 2) || !Same(a, n, 6, 10) || !Same(a, n, 12, 20)) return false;
    if (LoadBe16(n + 4) != static_cast<uint16_t>(LoadBe16(a + 4) + k)) return false;
  }
  const uint8_t *ta = a + first.ipLen, *tn = n + first.ipLen;
  if (!Same(ta, tn, 0, 4) || !Same(ta, tn, 8, 13)) return false;  // ports; ack, data offset
  if ((next.flags & ~(kTcpPsh | kTcpFin)) != first.flags) return false;
  if (!Same(ta, tn, 14, 16) || !Same(ta, tn, 18, first.hdrLen - first.ipLen)) return false;  // window; urgent, options
  return next.seq == prev.seq + static_cast<uint32_t>(prev.payload);
}

const uint8_t* PacketAt(const BatchArgs& b, size_t i) { return b.data + i * b.slotSize + b.offsets[i]; }

}  // namespace

size_t TunCoalesce(const BatchArgs& b, size_t first, Coalesced* c) {
  Seg s0;
  if (first + 1 >= b.count || !ParseSeg(PacketAt(b, first), static_cast<size_t>(b.lengths[first]), &s0)) return 1;
  if ((s0.flags & (kTcpPsh | kTcpFin)) != 0) return 1;
  Seg prev = s0, next;
  size_t k = 1, payload = s0.payload;
  while (first + k < b.count && k < kMaxCoalesce &&
         ParseSeg(PacketAt(b, first + k), static_cast<size_t>(b.lengths[first + k]), &next) &&
         CanFollow(s0, prev, next, k, payload)) {
    payload += next.payload;
    prev = next;
    k++;
  }
  if (k == 1) return 1;
  // The merged packet's headers: the first segment's, with the lengths of
  // the whole, PSH/FIN of the last, and — as NEEDS_CSUM asks — the TCP
  // checksum field holding the pseudo-header sum only (what
  // __tcp_v4_send_check leaves for CHECKSUM_PARTIAL).
  const size_t total = s0.hdrLen + payload;
  uint8_t* h = c->hdr;
  memcpy(h, s0.p, s0.hdrLen);
  if (s0.v6) {
    StoreBe16(h + 4, static_cast<uint16_t>(total - 40));
  } else {
    StoreBe16(h + 2, static_cast<uint16_t>(total));
    Store16(h + 10, 0);
    Store16(h + 10, static_cast<uint16_t>(~Fold(Sum(h, 20, 0))));
  }
  uint8_t* th = h + s0.ipLen;
  th[13] = static_cast<uint8_t>(s0.flags | (prev.flags & (kTcpPsh | kTcpFin)));
  Store16(th + 16, Fold(PseudoSum(h, s0.v6, total - s0.ipLen)));
  c->hdrLen = s0.hdrLen;
  c->payloadLen = payload;
  c->vnet = VirtioNetHdr{kVnetFlagNeedsCsum, s0.v6 ? kVnetGsoTcpV6 : kVnetGsoTcpV4, static_cast<uint16_t>(s0.hdrLen),
                         static_cast<uint16_t>(s0.payload), static_cast<uint16_t>(s0.ipLen), 16};
  return k;
}

}  // namespace tb
