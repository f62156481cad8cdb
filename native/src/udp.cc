// UDP: one socket per bind, recvmmsg/sendmmsg over a whole batch.
//
// One dual-stack AF_INET6 socket (IPV6_V6ONLY=0) serves IPv4 and IPv6 on one
// port: one fd, one poll, one recvmmsg per wakeup and one sendmmsg per batch
// whatever the mix of families. IPv4 peers appear as ::ffff:a.b.c.d and are
// stored as family 4 in the endpoint record (src/io/endpoint.ts). Where IPv6
// is unavailable the wrapper asks for an AF_INET socket instead.
//
// With the offloads (udpSetOffload; udp-offload.cc says how they work) a
// send groups runs of equal-size datagrams to one endpoint into UDP_SEGMENT
// messages, still one sendmmsg per batch, and a receive reads into a 64 KiB
// buffer per message and splits UDP_GRO messages into their datagrams.
//
// With the shed on (udpSetShed; udp-shed.cc says what it keeps and why) a
// receive judges each datagram before it keeps a slot and reads on until the
// batch is full of kept datagrams or the socket is empty (bounded per call).
//
// Not done yet (issue 7): sticky source addresses (IP_PKTINFO), which
// wireguard-go keeps per endpoint.
#include "io.h"

#include <cerrno>
#include <cstring>
#include <new>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

namespace tb {

// Endpoint record → destination for a socket of this kind; 0 or an errno.
int DecodeEndpoint(const uint8_t* rec, bool v6sock, struct sockaddr_in6* out, socklen_t* len) {
  memset(out, 0, sizeof *out);
  if (rec[0] == 4 && !v6sock) {
    auto* in = reinterpret_cast<struct sockaddr_in*>(out);
    in->sin_family = AF_INET;
    memcpy(&in->sin_port, rec + 2, 2);
    memcpy(&in->sin_addr, rec + 4, 4);
    *len = sizeof(struct sockaddr_in);
    return 0;
  }
  if (rec[0] == 4 || rec[0] == 6) {
    if (!v6sock) return EAFNOSUPPORT;
    out->sin6_family = AF_INET6;
    memcpy(&out->sin6_port, rec + 2, 2);
    if (rec[0] == 4) {
      out->sin6_addr.s6_addr[10] = 0xff;
      out->sin6_addr.s6_addr[11] = 0xff;
      memcpy(out->sin6_addr.s6_addr + 12, rec + 4, 4);
    } else {
      memcpy(out->sin6_addr.s6_addr, rec + 4, 16);
    }
    *len = sizeof(struct sockaddr_in6);
    return 0;
  }
  return EDESTADDRREQ;
}

namespace {

struct SocketJobArgs {
  int family;
};

int SocketJob(void* p) {
  auto* a = static_cast<SocketJobArgs*>(p);
  int s = socket(a->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  return s < 0 ? -errno : s;
}

void SetInt(int fd, int level, int opt, int value) { setsockopt(fd, level, opt, &value, sizeof value); }

// Source address → endpoint record (byte 0 family, bytes 2-3 port BE, 4.. address).
void EncodeEndpoint(const struct sockaddr_in6* sa, uint8_t* rec) {
  memset(rec, 0, kEndpointSize);
  if (sa->sin6_family == AF_INET) {
    auto* in = reinterpret_cast<const struct sockaddr_in*>(sa);
    rec[0] = 4;
    memcpy(rec + 2, &in->sin_port, 2);
    memcpy(rec + 4, &in->sin_addr, 4);
  } else if (sa->sin6_family == AF_INET6) {
    memcpy(rec + 2, &sa->sin6_port, 2);
    if (IN6_IS_ADDR_V4MAPPED(&sa->sin6_addr)) {
      rec[0] = 4;
      memcpy(rec + 4, sa->sin6_addr.s6_addr + 12, 4);
    } else {
      rec[0] = 6;
      memcpy(rec + 4, sa->sin6_addr.s6_addr, 16);
    }
  }
}

void EnsureScratch(Handle* h, size_t n) {
  if (h->msgs.size() < n) {
    h->msgs.resize(n);
    h->iovs.resize(n);
    h->addrs.resize(n);
    h->msgFirst.resize(n);
    h->msgSegs.resize(n);
    h->cmsgs.resize(n);
  }
}

// Points receive message i at one buffer, a source-address slot and, when
// given, a control buffer (UDP_GRO's cmsg). recvmmsg fills in the rest.
void SetRecvMsg(Handle* h, size_t i, uint8_t* buf, size_t len, struct sockaddr_in6* from, void* control, size_t controlLen) {
  h->iovs[i].iov_base = buf;
  h->iovs[i].iov_len = len;
  struct msghdr& m = h->msgs[i].msg_hdr;
  memset(&m, 0, sizeof m);
  m.msg_name = from;
  m.msg_namelen = sizeof(struct sockaddr_in6);
  m.msg_iov = &h->iovs[i];
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = controlLen;
  h->msgs[i].msg_len = 0;
}

// udpOpen(family, address, port, bufferSize, netns) → Handle.
//   family 6: AF_INET6 with IPV6_V6ONLY=0 (IPv4 and IPv6); 4: AF_INET.
//   address "" binds the wildcard; bufferSize sets SO_RCVBUF/SO_SNDBUF, also
//   beyond net.core.[rw]mem_max via the *FORCE options when we may (root).
Napi::Value UdpOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t family, port, bufSize;
  std::string address, netns;
  if (!ArgCount(info, 5) || !ArgInt(info, 0, 4, 6, &family) || !ArgString(info, 1, &address) ||
      !ArgInt(info, 2, 0, 65535, &port) || !ArgInt(info, 3, 0, INT32_MAX, &bufSize) || !ArgString(info, 4, &netns)) {
    return env.Undefined();
  }
  if (family != 4 && family != 6) {
    Napi::RangeError::New(env, "argument 0: expected 4 or 6").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const bool v6 = family == 6;
  struct sockaddr_in6 sa;
  socklen_t salen;
  memset(&sa, 0, sizeof sa);
  if (v6) {
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(static_cast<uint16_t>(port));
    sa.sin6_addr = in6addr_any;
    if (!address.empty() && inet_pton(AF_INET6, address.c_str(), &sa.sin6_addr) != 1) {
      Napi::TypeError::New(env, "argument 1: not an IPv6 address").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    salen = sizeof(struct sockaddr_in6);
  } else {
    auto* in = reinterpret_cast<struct sockaddr_in*>(&sa);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(port));
    in->sin_addr.s_addr = htonl(INADDR_ANY);
    if (!address.empty() && inet_pton(AF_INET, address.c_str(), &in->sin_addr) != 1) {
      Napi::TypeError::New(env, "argument 1: not an IPv4 address").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    salen = sizeof(struct sockaddr_in);
  }

  SocketJobArgs job{v6 ? AF_INET6 : AF_INET};
  int fd;
  if (netns.empty()) {
    fd = SocketJob(&job);
  } else {
    int nsfd = OpenNetns(netns);
    if (nsfd < 0) return ThrowErrno(env, -nsfd, "open(netns)");
    fd = InNetns(nsfd, SocketJob, &job);
    close(nsfd);
  }
  if (fd < 0) return ThrowErrno(env, -fd, "socket");

  if (bufSize > 0) {
    // As wireguard-go: up to *mem_max, then beyond it when CAP_NET_ADMIN allows; failures only cost speed.
    const int size = static_cast<int>(bufSize);
    SetInt(fd, SOL_SOCKET, SO_RCVBUF, size);
    SetInt(fd, SOL_SOCKET, SO_SNDBUF, size);
    SetInt(fd, SOL_SOCKET, SO_RCVBUFFORCE, size);
    SetInt(fd, SOL_SOCKET, SO_SNDBUFFORCE, size);
  }
  // Never set DF: a datagram larger than the path MTU is fragmented, so large
  // inner MTUs work across a 1500-byte path. On an AF_INET6 socket the
  // IPPROTO_IP option governs its IPv4-mapped traffic.
  SetInt(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT);
  if (v6) {
    SetInt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DONT);
    const int off = 0;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) != 0) {
      int e = errno;
      close(fd);
      return ThrowErrno(env, e, "setsockopt(IPV6_V6ONLY)");
    }
  }
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&sa), salen) != 0) {
    int e = errno;
    close(fd);
    return ThrowErrno(env, e, "bind");
  }
  return Handle::New(env, fd, v6 ? Handle::kUdp6 : Handle::kUdp4);
}

// udpPort(h) → the bound port.
Napi::Value UdpPort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ArgCount(info, 1)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, true);
  if (h == nullptr) return env.Undefined();
  struct sockaddr_in6 sa;
  socklen_t len = sizeof sa;
  if (getsockname(h->fd(), reinterpret_cast<struct sockaddr*>(&sa), &len) != 0) {
    return ThrowErrno(env, errno, "getsockname");
  }
  // sin_port and sin6_port sit at the same offset.
  return Napi::Number::New(env, ntohs(sa.sin6_port));
}

// udpBufferSizes(h) → [SO_RCVBUF, SO_SNDBUF] as the kernel reports them (twice the usable size).
Napi::Value UdpBufferSizes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ArgCount(info, 1)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, true);
  if (h == nullptr) return env.Undefined();
  int rcv = 0, snd = 0;
  socklen_t l = sizeof(int);
  if (getsockopt(h->fd(), SOL_SOCKET, SO_RCVBUF, &rcv, &l) != 0) return ThrowErrno(env, errno, "getsockopt(SO_RCVBUF)");
  l = sizeof(int);
  if (getsockopt(h->fd(), SOL_SOCKET, SO_SNDBUF, &snd, &l) != 0) return ThrowErrno(env, errno, "getsockopt(SO_SNDBUF)");
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Napi::Number::New(env, rcv));
  a.Set(1u, Napi::Number::New(env, snd));
  return a;
}

// udpSetMark(h, mark): SO_MARK (wg's fwmark); 0 clears it.
Napi::Value UdpSetMark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t mark;
  if (!ArgCount(info, 2)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, true);
  if (h == nullptr || !ArgInt(info, 1, 0, UINT32_MAX, &mark)) return env.Undefined();
  uint32_t m = static_cast<uint32_t>(mark);
  if (setsockopt(h->fd(), SOL_SOCKET, SO_MARK, &m, sizeof m) != 0) return ThrowErrno(env, errno, "setsockopt(SO_MARK)");
  return env.Undefined();
}

// With the shed on (udp-shed.cc), one udpRecv call reads on until the batch
// holds this many kept datagrams or the socket is empty — but examines at
// most this many (about a millisecond of recvmmsg), then returns to the event
// loop so timers and handshake work run; the level-triggered poll brings it
// straight back while datagrams wait.
constexpr size_t kShedMaxPerCall = 4096;

// Applies the shed to slots [from, to), just filled with datagrams and their
// endpoint records: what it drops is counted in res[kResSize + reason], what
// it keeps moves down over the gaps. Returns the new end of the kept slots.
size_t ShedSlots(Handle* h, const BatchArgs& b, size_t from, size_t to, double now) {
  size_t kept = from;
  for (size_t i = from; i < to; i++) {
    uint8_t* p = b.data + i * b.slotSize + b.offsets[i];
    const size_t len = static_cast<size_t>(b.lengths[i]);
    const int v = ShedDecide(h->shed.get(), p, len, b.endpoints + i * kEndpointSize, now);
    if (v != kShedKeep) {
      b.res[kResSize + v]++;
      continue;
    }
    if (kept != i) {
      memmove(b.data + kept * b.slotSize + b.offsets[i], p, len);
      b.offsets[kept] = b.offsets[i];
      b.lengths[kept] = b.lengths[i];
      memcpy(b.endpoints + kept * kEndpointSize, b.endpoints + i * kEndpointSize, kEndpointSize);
    }
    kept++;
  }
  return kept;
}

// With UDP_GRO: hands out the messages left in the scratch (groNext.., from
// piece groPiece) into slots filled.. of the batch; returns the new count.
size_t DeliverPending(Handle* h, const BatchArgs& b, const SlotsOut& out, size_t filled) {
  while (h->groNext < h->groCount && filled < b.count) {
    const size_t m = h->groNext;
    if (h->groLens[m] < 0) {  // MSG_TRUNC (only a gro_max_size raised past 64 KiB): never deliver part of one
      b.res[kResDropped]++;
      b.res[kResLastErrno] = EMSGSIZE;
      h->groNext++;
      continue;
    }
    size_t next = h->groPiece;
    bool more;
    const size_t n = GroDeliver(h->groScratch.get() + m * kGroBufSize, static_cast<size_t>(h->groLens[m]),
                                h->groSizes[m], &next, &more, out, filled, b.res);
    for (size_t k = filled; k < filled + n; k++) EncodeEndpoint(&h->groAddrs[m], b.endpoints + k * kEndpointSize);
    filled += n;
    if (more) {
      h->groPiece = next;
      return filled;
    }
    h->groPiece = 0;
    h->groNext++;
  }
  return filled;
}

// Reads with UDP_GRO (once h->groScratch exists): delivers what is pending
// from the last recvmmsg, then reads up to kGroMsgs messages at a time into
// the scratch, each with room for a whole coalesced datagram (64 KiB) and a
// cmsg, and splits them into the batch until it is full or the socket is
// drained. Returns the slots filled or -errno.
//
// Why keep a remainder rather than read only as many messages as the batch
// holds in the worst case (64 pieces each, as wireguard-go does): that allows
// one message per 64 slots — a batch of 128 would read two datagrams per
// recvmmsg when traffic does not coalesce (many peers, small packets), and a
// batch of fewer than 64 slots not even one safely. The remainder works like
// the TUN's (tunPendLen): handed out first on the next call, so order is kept
// and nothing is lost; the wrapper comes back after a full batch.
int RecvGro(Handle* h, const BatchArgs& b) {
  const SlotsOut out{b.data, b.offsets, b.lengths, b.slotSize, b.headroom, b.count};
  size_t filled = 0, examined = 0;
  bool drained = false;
  double now = h->shed ? ShedNowMs() : 0;
  for (;;) {
    const size_t before = filled;
    filled = DeliverPending(h, b, out, filled);
    if (h->shed) filled = ShedSlots(h, b, before, filled, now);
    if (filled >= b.count) return static_cast<int>(filled);
    if (h->groNext < h->groCount) continue;  // the batch was full before shedding: deliver the rest first
    if (drained || (h->shed && examined >= kShedMaxPerCall)) return static_cast<int>(filled);
    const size_t want = b.count - filled < kGroMsgs ? b.count - filled : kGroMsgs;
    EnsureScratch(h, want);
    for (size_t i = 0; i < want; i++) {
      SetRecvMsg(h, i, h->groScratch.get() + i * kGroBufSize, kGroBufSize, &h->groAddrs[i], h->cmsgs[i].b, sizeof h->cmsgs[i].b);
    }
    int r;
    do {
      r = recvmmsg(h->fd(), h->msgs.data(), static_cast<unsigned>(want), MSG_DONTWAIT, nullptr);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
      if (filled == 0) return errno == EAGAIN ? 0 : -errno;
      if (errno != EAGAIN) b.res[kResLastErrno] = errno;
      return static_cast<int>(filled);
    }
    // Take everything out of msgs/cmsgs now: a udpSend before the next call reuses them.
    for (size_t i = 0; i < static_cast<size_t>(r); i++) {
      struct msghdr& mh = h->msgs[i].msg_hdr;
      h->groLens[i] = (mh.msg_flags & MSG_TRUNC) ? -1 : static_cast<int32_t>(h->msgs[i].msg_len);
      h->groSizes[i] = 0;
      if (mh.msg_controllen == 0 || (mh.msg_flags & MSG_CTRUNC)) continue;
      for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_UDP || c->cmsg_type != UDP_GRO || c->cmsg_len < CMSG_LEN(sizeof(uint16_t))) continue;
        // udp_cmsg_recv (include/net/udp.h) puts an int; take it as one when it is that long.
        int v = 0;
        if (c->cmsg_len >= CMSG_LEN(sizeof(int))) {
          memcpy(&v, CMSG_DATA(c), sizeof v);
        } else {
          uint16_t v16;
          memcpy(&v16, CMSG_DATA(c), sizeof v16);
          v = v16;
        }
        h->groSizes[i] = v > 0 && v <= 65535 ? static_cast<uint16_t>(v) : 0;
      }
    }
    h->groCount = static_cast<size_t>(r);
    h->groNext = 0;
    h->groPiece = 0;
    drained = static_cast<size_t>(r) < want;
    examined += static_cast<size_t>(r);
    if (h->shed) now = ShedNowMs();
  }
}

// udpRecv(h, data, offsets, lengths, endpoints, slotSize, capacity, headroom, res)
//   → datagrams received (0 when none is pending) or -errno. One recvmmsg of
//     up to `capacity` datagrams; datagram i goes to data[i*slotSize + headroom]
//     and its source to endpoints[i*20]. A datagram larger than the room in a
//     slot is dropped and counted in res[0]. With UDP_GRO (RecvGro above)
//     coalesced messages are split into their datagrams, counted in res[3].
//     With the shed on (udpSetShed, udp-shed.cc) each datagram is judged
//     before it keeps its slot, what is shed is counted in res[4 + reason],
//     and reading goes on until the batch is full of kept datagrams, the
//     socket is empty or kShedMaxPerCall were examined.
Napi::Value UdpRecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BatchArgs b;
  if (!ArgBatch(info, true, true, &b)) return env.Undefined();
  Handle* h = b.handle;
  if (h->shed) {
    if (b.resLen < kResSize + kShedReasons) {
      Napi::RangeError::New(env, "argument 8: with the shed on, expected an Int32Array of at least 9 elements")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    for (size_t k = 0; k < kShedReasons; k++) b.res[kResSize + k] = 0;
    ShedBeginCall(h->shed.get());
  }
  if (b.count == 0) return Napi::Number::New(env, 0);
  if (h->groScratch) return Napi::Number::New(env, RecvGro(h, b));
  EnsureScratch(h, b.count);
  const size_t room = b.slotSize - b.headroom;
  size_t kept = 0, examined = 0;
  for (;;) {
    // Straight into the free slots kept.. (without the shed: one recvmmsg into the whole batch).
    const size_t want = b.count - kept;
    for (size_t i = 0; i < want; i++) {
      SetRecvMsg(h, i, b.data + (kept + i) * b.slotSize + b.headroom, room, &h->addrs[i], nullptr, 0);
    }
    int r;
    do {
      r = recvmmsg(h->fd(), h->msgs.data(), static_cast<unsigned>(want), MSG_DONTWAIT, nullptr);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
      if (examined == 0) return Napi::Number::New(env, errno == EAGAIN ? 0 : -errno);
      if (errno != EAGAIN) b.res[kResLastErrno] = errno;
      break;
    }
    const double now = h->shed ? ShedNowMs() : 0;
    size_t n = kept;
    for (size_t i = 0; i < static_cast<size_t>(r); i++) {
      const size_t at = kept + i;
      if (h->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        b.res[kResDropped]++;
        b.res[kResLastErrno] = EMSGSIZE;
        continue;
      }
      uint8_t* p = b.data + at * b.slotSize + b.headroom;
      const size_t len = h->msgs[i].msg_len;
      EncodeEndpoint(&h->addrs[i], b.endpoints + n * kEndpointSize);
      if (h->shed) {
        const int v = ShedDecide(h->shed.get(), p, len, b.endpoints + n * kEndpointSize, now);
        if (v != kShedKeep) {
          b.res[kResSize + v]++;
          continue;
        }
      }
      if (n != at) memmove(b.data + n * b.slotSize + b.headroom, p, len);
      b.offsets[n] = static_cast<int32_t>(b.headroom);
      b.lengths[n] = static_cast<int32_t>(len);
      n++;
    }
    kept = n;
    examined += static_cast<size_t>(r);
    if (!h->shed || static_cast<size_t>(r) < want || kept >= b.count || examined >= kShedMaxPerCall) break;
  }
  return Napi::Number::New(env, static_cast<double>(kept));
}

// Errors with which the kernel may refuse a UDP_SEGMENT message as such
// (udp_send_skb: EINVAL, EIO; ENOPROTOOPT/EOPNOTSUPP where the option or the
// route cannot do it; EMSGSIZE for a run longer than the path allows).
bool IsGsoRefusal(int e) { return e == EINVAL || e == EIO || e == ENOPROTOOPT || e == EOPNOTSUPP || e == EMSGSIZE; }

struct SendTally {
  size_t sent = 0;
  size_t gsoSent = 0;  // datagrams that went out in UDP_SEGMENT messages
  size_t left = 0;     // datagrams in messages not yet accounted for
};

// Sends the datagrams of message `m` one sendmsg each, without the cmsg: the
// fallback for a message the kernel refused as a UDP_SEGMENT message. Per
// datagram as ever: a refusal is counted and skipped; a full buffer drops
// everything left in the batch and returns false (stop).
bool SendSingly(Handle* h, const BatchArgs& b, size_t m, SendTally* t) {
  const size_t first = h->msgFirst[m], segs = h->msgSegs[m];
  for (size_t j = first; j < first + segs; j++) {
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_name = &h->addrs[m];
    mh.msg_namelen = h->msgs[m].msg_hdr.msg_namelen;
    mh.msg_iov = &h->iovs[j];
    mh.msg_iovlen = 1;
    ssize_t r;
    do {
      r = sendmsg(h->fd(), &mh, MSG_DONTWAIT);
    } while (r < 0 && errno == EINTR);
    t->left--;
    if (r >= 0) {
      t->sent++;
      continue;
    }
    const int e = errno;
    b.res[kResLastErrno] = e;
    if (e == EAGAIN || e == ENOBUFS) {
      b.res[kResDropped] += static_cast<int32_t>(t->left + 1);
      t->left = 0;
      return false;
    }
    b.res[kResFailed]++;
  }
  return true;
}

// udpSend(h, data, offsets, lengths, endpoints, slotSize, count, 0, res)
//   → datagrams sent. sendmmsg of the whole batch, each to its endpoint
//     record. A full socket buffer (EAGAIN, ENOBUFS) drops the rest of the
//     batch (res[0]); a datagram the kernel refuses (EMSGSIZE, ENETUNREACH,
//     a bad endpoint ...) is skipped and counted in res[1]. With GSO a
//     message is a run of datagrams (UdpRun) with a UDP_SEGMENT cmsg; the
//     counts stay per datagram, and res[3] counts those sent in such runs.
Napi::Value UdpSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BatchArgs b;
  if (!ArgBatch(info, true, true, &b) || !CheckPackets(env, b)) return env.Undefined();
  Handle* h = b.handle;
  if (b.count == 0) return Napi::Number::New(env, 0);
  EnsureScratch(h, b.count);
  const bool v6sock = h->kind() == Handle::kUdp6;
  SendTally t;
  size_t m = 0;
  for (size_t i = 0; i < b.count;) {
    socklen_t len;
    int err = DecodeEndpoint(b.endpoints + i * kEndpointSize, v6sock, &h->addrs[m], &len);
    if (err != 0) {
      b.res[kResFailed]++;
      b.res[kResLastErrno] = err;
      i++;
      continue;
    }
    size_t seg;
    const size_t k = UdpRun(b.endpoints, b.lengths, i, b.count, h->udpGso, &seg);
    for (size_t j = i; j < i + k; j++) {
      h->iovs[j].iov_base = b.data + j * b.slotSize + b.offsets[j];
      h->iovs[j].iov_len = static_cast<size_t>(b.lengths[j]);
    }
    struct msghdr& mh = h->msgs[m].msg_hdr;
    memset(&mh, 0, sizeof mh);
    mh.msg_name = &h->addrs[m];
    mh.msg_namelen = len;
    mh.msg_iov = &h->iovs[i];
    mh.msg_iovlen = k;
    if (k > 1) {
      // SOL_UDP/UDP_SEGMENT with a uint16_t, as udp_cmsg_send (net/ipv4/udp.c) reads it.
      memset(h->cmsgs[m].b, 0, sizeof h->cmsgs[m].b);
      mh.msg_control = h->cmsgs[m].b;
      mh.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
      struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      const uint16_t gs = static_cast<uint16_t>(seg);
      memcpy(CMSG_DATA(c), &gs, sizeof gs);
    }
    h->msgFirst[m] = static_cast<uint32_t>(i);
    h->msgSegs[m] = static_cast<uint32_t>(k);
    t.left += k;
    m++;
    i += k;
  }
  size_t done = 0;
  while (done < m) {
    if (!h->udpGso && h->msgSegs[done] > 1) {
      // GSO was turned off during this batch: the rest goes without it.
      if (!SendSingly(h, b, done, &t)) break;
      done++;
      continue;
    }
    size_t upto = m;
    if (!h->udpGso) {  // (turned off during this batch: only up to the next run, which goes singly above)
      upto = done + 1;
      while (upto < m && h->msgSegs[upto] == 1) upto++;
    }
    int r = sendmmsg(h->fd(), h->msgs.data() + done, static_cast<unsigned>(upto - done), MSG_DONTWAIT);
    if (r > 0) {
      for (size_t k = done; k < done + static_cast<size_t>(r); k++) {
        t.sent += h->msgSegs[k];
        t.left -= h->msgSegs[k];
        if (h->msgSegs[k] > 1) {
          t.gsoSent += h->msgSegs[k];
          h->udpGsoConfirmed = true;
        }
      }
      done += static_cast<size_t>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    const int e = r < 0 ? errno : EIO;
    if (h->msgSegs[done] > 1 && IsGsoRefusal(e)) {
      // The kernel would not take this run as one message. ENOPROTOOPT,
      // EOPNOTSUPP and EIO (no checksum offload on the route's device, see
      // udp_send_skb; wireguard-go's errShouldDisableUDPGSO) mean it never
      // will on this socket, as does EINVAL before any GSO send worked;
      // later EINVAL/EMSGSIZE are about this run (a segment over the MTU,
      // too long a run). Either way its datagrams go again one by one.
      if (e == ENOPROTOOPT || e == EOPNOTSUPP || e == EIO || (e == EINVAL && !h->udpGsoConfirmed)) h->udpGso = false;
      if (!SendSingly(h, b, done, &t)) break;
      done++;
      continue;
    }
    b.res[kResLastErrno] = e;
    if (e == EAGAIN || e == ENOBUFS) {
      b.res[kResDropped] += static_cast<int32_t>(t.left);
      t.left = 0;
      break;
    }
    // Refused for another reason (no route ...): every datagram of the message.
    b.res[kResFailed] += static_cast<int32_t>(h->msgSegs[done]);
    t.left -= h->msgSegs[done];
    done++;
  }
  b.res[kResGso] = static_cast<int32_t>(t.gsoSent);
  return Napi::Number::New(env, static_cast<double>(t.sent));
}

// udpSetOffload(h, gso, gro) → state, bit 0 GSO, bit 1 GRO.
//   GSO is on when asked and the kernel knows UDP_SEGMENT (the getsockopt
//   probe wireguard-go's supportsUDPOffload makes; it fails with ENOPROTOOPT
//   before 4.18); a send may still turn it off (UdpSend). GRO is on when
//   setsockopt(SOL_UDP, UDP_GRO, 1) works (5.0+) and the 4 MiB receive
//   scratch could be allocated. Turning GRO off stops the coalescing, but
//   receives keep going through the scratch: datagrams queued while it was
//   on may still arrive coalesced.
Napi::Value UdpSetOffload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ArgCount(info, 3)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, true);
  bool gso, gro;
  if (h == nullptr || !ArgBool(info, 1, &gso) || !ArgBool(info, 2, &gro)) return env.Undefined();
  if (gso) {
    int v = 0;
    socklen_t l = sizeof v;
    h->udpGso = getsockopt(h->fd(), SOL_UDP, UDP_SEGMENT, &v, &l) == 0;
  } else {
    h->udpGso = false;
  }
  if (gro && !h->udpGro) {
    if (!h->groScratch) {
      h->groScratch.reset(new (std::nothrow) uint8_t[kGroMsgs * kGroBufSize]);
      if (h->groScratch) {
        h->groAddrs.resize(kGroMsgs);
        h->groLens.resize(kGroMsgs);
        h->groSizes.resize(kGroMsgs);
      }
    }
    const int one = 1;
    h->udpGro = h->groScratch && setsockopt(h->fd(), SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  } else if (!gro && h->udpGro) {
    const int zero = 0;
    setsockopt(h->fd(), SOL_UDP, UDP_GRO, &zero, sizeof zero);
    h->udpGro = false;
  }
  return Napi::Number::New(env, (h->udpGso ? 1 : 0) | (h->udpGro ? 2 : 0));
}

// udpGetOffload(h) → state as udpSetOffload returns it (GSO may have been
// turned off by a refused send since).
Napi::Value UdpGetOffload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ArgCount(info, 1)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, true);
  if (h == nullptr) return env.Undefined();
  return Napi::Number::New(env, (h->udpGso ? 1 : 0) | (h->udpGro ? 2 : 0));
}

}  // namespace

void InitUdp(Napi::Env env, Napi::Object exports) {
  exports.Set("udpOpen", Napi::Function::New<UdpOpen>(env, "udpOpen"));
  exports.Set("udpPort", Napi::Function::New<UdpPort>(env, "udpPort"));
  exports.Set("udpBufferSizes", Napi::Function::New<UdpBufferSizes>(env, "udpBufferSizes"));
  exports.Set("udpSetMark", Napi::Function::New<UdpSetMark>(env, "udpSetMark"));
  exports.Set("udpRecv", Napi::Function::New<UdpRecv>(env, "udpRecv"));
  exports.Set("udpSend", Napi::Function::New<UdpSend>(env, "udpSend"));
  exports.Set("udpSetOffload", Napi::Function::New<UdpSetOffload>(env, "udpSetOffload"));
  exports.Set("udpGetOffload", Napi::Function::New<UdpGetOffload>(env, "udpGetOffload"));
  InitUdpShed(env, exports);
}

}  // namespace tb
