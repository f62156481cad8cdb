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

namespace {

Napi::Value Fail(Napi::Env env, const char* msg) {
  Napi::RangeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

// udpPlanForTest(lengths, endpoints, count, gso, v6sock, out) → messages.
//   Test-only: the messages udpSend would make of datagrams 0..count-1,
//   message m as out[3m] = first datagram, out[3m+1] = datagrams in it,
//   out[3m+2] = UDP_SEGMENT size (0 for a single datagram, sent without the
//   cmsg). Datagrams whose endpoint record this socket cannot send to are
//   skipped (udpSend counts them failed), as udpSend does.
Napi::Value UdpPlanForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t *lengths, *out;
  uint8_t* endpoints;
  size_t lenLen, epLen, outLen;
  int64_t count;
  bool gso, v6sock;
  if (!ArgCount(info, 6) || !ArgInt32s(info, 0, &lengths, &lenLen) || !ArgBytes(info, 1, false, &endpoints, &epLen) ||
      !ArgInt(info, 2, 0, 65536, &count) || !ArgBool(info, 3, &gso) || !ArgBool(info, 4, &v6sock) ||
      !ArgInt32s(info, 5, &out, &outLen)) {
    return env.Undefined();
  }
  const size_t n = static_cast<size_t>(count);
  if (n > lenLen || n > epLen / kEndpointSize) return Fail(env, "argument 2: count exceeds lengths/endpoints");
  for (size_t i = 0; i < n; i++) {
    if (lengths[i] < 0 || lengths[i] > 65535) return Fail(env, "argument 0: lengths must be in 0..65535");
  }
  size_t m = 0;
  for (size_t i = 0; i < n;) {
    struct sockaddr_in6 sa;
    socklen_t salen;
    if (DecodeEndpoint(endpoints + i * kEndpointSize, v6sock, &sa, &salen) != 0) {
      i++;
      continue;
    }
    size_t seg;
    const size_t k = UdpRun(endpoints, lengths, i, n, gso, &seg);
    if (3 * m + 3 > outLen) return Fail(env, "argument 5: out too small");
    out[3 * m] = static_cast<int32_t>(i);
    out[3 * m + 1] = static_cast<int32_t>(k);
    out[3 * m + 2] = k > 1 ? static_cast<int32_t>(seg) : 0;
    m++;
    i += k;
  }
  return Napi::Number::New(env, static_cast<double>(m));
}

// udpSplitForTest(input, gsoSize, data, offsets, lengths, slotSize, count, headroom, res, cursor)
//   → slots filled. Test-only: GroDeliver of one received message (`input`,
//   gsoSize as its UDP_GRO cmsg said, 0 for none) into slots 0..count-1;
//   cursor = Int32Array(2) [next piece, more] as for tunSegmentForTest.
Napi::Value UdpSplitForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t *input, *data;
  size_t inputLen, dataLen, offLen, lenLen, resLen, curLen;
  int32_t *offsets, *lengths, *res, *cursor;
  int64_t gsoSize, slotSize, count, headroom;
  if (!ArgCount(info, 10) || !ArgBytes(info, 0, false, &input, &inputLen) || !ArgInt(info, 1, 0, 65535, &gsoSize) ||
      !ArgBytes(info, 2, false, &data, &dataLen) || !ArgInt32s(info, 3, &offsets, &offLen) ||
      !ArgInt32s(info, 4, &lengths, &lenLen) || !ArgInt(info, 5, 1, INT32_MAX, &slotSize) ||
      !ArgInt(info, 6, 0, 65536, &count) || !ArgInt(info, 7, 0, slotSize - 1, &headroom) ||
      !ArgInt32s(info, 8, &res, &resLen) || !ArgInt32s(info, 9, &cursor, &curLen)) {
    return env.Undefined();
  }
  const size_t n = static_cast<size_t>(count), slot = static_cast<size_t>(slotSize);
  if (inputLen > kGroBufSize) return Fail(env, "argument 0: longer than a received message can be");
  if (n > offLen || n > lenLen) return Fail(env, "argument 6: count exceeds offsets/lengths");
  if (n > dataLen / slot) return Fail(env, "argument 6: count * slotSize exceeds data");
  if (resLen < kResSize) return Fail(env, "argument 8: expected an Int32Array of at least 4 elements");
  if (curLen < 2 || cursor[0] < 0) return Fail(env, "argument 9: expected an Int32Array(2) holding a cursor >= 0");
  for (size_t k = 0; k < kResSize; k++) res[k] = 0;
  SlotsOut out{data, offsets, lengths, slot, static_cast<size_t>(headroom), n};
  size_t next = static_cast<size_t>(cursor[0]);
  bool more;
  size_t filled = GroDeliver(input, inputLen, static_cast<size_t>(gsoSize), &next, &more, out, 0, res);
  cursor[0] = static_cast<int32_t>(next);
  cursor[1] = more ? 1 : 0;
  return Napi::Number::New(env, static_cast<double>(filled));
}

}  // namespace

void InitUdpOffload(Napi::Env env, Napi::Object exports) {
  exports.Set("udpPlanForTest", Napi::Function::New<UdpPlanForTest>(env, "udpPlanForTest"));
  exports.Set("udpSplitForTest", Napi::Function::New<UdpSplitForTest>(env, "udpSplitForTest"));
}

}  // namespace tb
