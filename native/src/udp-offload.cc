// UDP offloads: the send plan for UDP_SEGMENT (GSO) and the split of UDP_GRO
// messages, as wireguard-go does them (conn/bind_std.go, conn/gso_linux.go).
//
// Send (UDP_SEGMENT, Linux 4.18): one sendmsg whose iovecs hold N datagrams
// of gso_size bytes back to back (the last may be shorter) and a cmsg
// SOL_UDP/UDP_SEGMENT = gso_size. udp_sendmsg builds one skb of the whole
// payload and udp_send_skb (net/ipv4/udp.c; udp_v6_send_skb in
// net/ipv6/udp.c) marks it SKB_GSO_UDP_L4; __udp_gso_segment
// (net/ipv4/udp_offload.c) cuts it into N datagrams with their own UDP
// headers (and checksums) as late as possible — in the NIC with
// tx-udp-segmentation, else at the device boundary in software. Either way
// the whole run costs one trip through the socket, routing and qdisc layers
// instead of N: the send side's share of wireguard-go's 2022 speed-up.
// udp_send_skb refuses with EINVAL a message of more than UDP_MAX_SEGMENTS
// segments, a segment that with its headers exceeds the path's fragsize (the
// device MTU here, PMTUDISC_DONT) and sockets with SO_NO_CHECK, and with EIO
// one whose device cannot checksum (ip_summed != CHECKSUM_PARTIAL) or an
// xfrm route; kernels without it ENOPROTOOPT the getsockopt probe. udp.cc
// resends a refused message datagram by datagram, so nothing is lost.
//
// Receive (UDP_GRO, Linux 5.0): with the socket option set,
// udp_gro_receive / udp_gro_receive_segment (net/ipv4/udp_offload.c) merge
// consecutive datagrams of one flow of equal size (the last may be shorter,
// at most UDP_GRO_CNT_MAX = 64 of them) into one skb, and udp_recvmsg hands
// it over whole with a cmsg SOL_UDP/UDP_GRO carrying gso_size (udp_cmsg_recv
// in include/net/udp.h). Over loopback a UDP_SEGMENT send arrives that way
// too (udp_unexpected_gso lets it through unsegmented to such a socket). We
// cut it back at gso_size, each piece into its own slot with the same source.
#include "io.h"

#include <cerrno>
#include <cstring>

namespace tb {

size_t UdpRun(const uint8_t* endpoints, const int32_t* lengths, size_t first, size_t count, bool gso, size_t* segSize) {
  const size_t seg = static_cast<size_t>(lengths[first]);
  *segSize = seg;
  if (!gso || seg == 0 || first >= count) return 1;
  const uint8_t* ep = endpoints + first * kEndpointSize;
  const size_t maxBytes = ep[0] == 6 ? kGsoMaxBytes6 : kGsoMaxBytes4;
  size_t total = seg, n = 1;
  for (size_t j = first + 1; j < count && n < kGsoMaxSegs; j++) {
    const size_t len = static_cast<size_t>(lengths[j]);
    if (len == 0 || len > seg || total + len > maxBytes) break;
    if (memcmp(endpoints + j * kEndpointSize, ep, kEndpointSize) != 0) break;
    total += len;
    n++;
    if (len < seg) break;  // a shorter datagram can only be the last segment
  }
  return n;
}

size_t GroDeliver(const uint8_t* buf, size_t len, size_t gsoSize, size_t* next, bool* more, const SlotsOut& out,
                  size_t first, int32_t* res) {
  *more = false;
  const size_t piece = gsoSize == 0 || gsoSize >= len ? (len == 0 ? 1 : len) : gsoSize;
  const size_t pieces = len == 0 ? 1 : (len + piece - 1) / piece;
  const size_t room = out.slotSize - out.headroom;
  size_t k = *next, filled = 0;
  if (k == 0 && pieces > 1) res[kResGso]++;
  for (; k < pieces; k++) {
    if (first + filled >= out.count) {
      *more = true;
      *next = k;
      return filled;
    }
    const size_t at = k * piece;
    const size_t n = len - at < piece ? len - at : piece;
    if (n > room) {
      res[kResDropped]++;
      res[kResLastErrno] = EMSGSIZE;
      continue;
    }
    const size_t slot = first + filled;
    if (n > 0) memcpy(out.data + slot * out.slotSize + out.headroom, buf + at, n);
    out.offsets[slot] = static_cast<int32_t>(out.headroom);
    out.lengths[slot] = static_cast<int32_t>(n);
    filled++;
  }
  *next = 0;
  return filled;
}

}  // namespace tb
