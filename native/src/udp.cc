// UDP: one socket per bind, recvmmsg/sendmmsg over a whole batch.
//
// One dual-stack AF_INET6 socket (IPV6_V6ONLY=0) serves IPv4 and IPv6 on one
// port: one fd, one poll, one recvmmsg per wakeup and one sendmmsg per batch
// whatever the mix of families. IPv4 peers appear as ::ffff:a.b.c.d and are
// stored as family 4 in the endpoint record (src/io/endpoint.ts). Where IPv6
// is unavailable the wrapper asks for an AF_INET socket instead.
//
// Not done yet (issue 7): UDP_GRO/UDP_SEGMENT offloads (a received datagram
// would then hold several, split by a cmsg's segment size — so GRO must stay
// off until the receive path reads that cmsg), and sticky source addresses
// (IP_PKTINFO), which wireguard-go keeps per endpoint.
#include "io.h"

#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace tb {

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

void EnsureScratch(Handle* h, size_t n) {
  if (h->msgs.size() < n) {
    h->msgs.resize(n);
    h->iovs.resize(n);
    h->addrs.resize(n);
  }
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

// udpRecv(h, data, offsets, lengths, endpoints, slotSize, capacity, headroom, res)
//   → datagrams received (0 when none is pending) or -errno. One recvmmsg of
//     up to `capacity` datagrams; datagram i goes to data[i*slotSize + headroom]
//     and its source to endpoints[i*20]. A datagram larger than the room in a
//     slot is dropped and counted in res[0].
Napi::Value UdpRecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BatchArgs b;
  if (!ArgBatch(info, true, true, &b)) return env.Undefined();
  Handle* h = b.handle;
  if (b.count == 0) return Napi::Number::New(env, 0);
  EnsureScratch(h, b.count);
  const size_t room = b.slotSize - b.headroom;
  for (size_t i = 0; i < b.count; i++) {
    h->iovs[i].iov_base = b.data + i * b.slotSize + b.headroom;
    h->iovs[i].iov_len = room;
    struct msghdr& m = h->msgs[i].msg_hdr;
    memset(&m, 0, sizeof m);
    m.msg_name = &h->addrs[i];
    m.msg_namelen = sizeof(struct sockaddr_in6);
    m.msg_iov = &h->iovs[i];
    m.msg_iovlen = 1;
    h->msgs[i].msg_len = 0;
  }
  int r;
  do {
    r = recvmmsg(h->fd(), h->msgs.data(), static_cast<unsigned>(b.count), MSG_DONTWAIT, nullptr);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return Napi::Number::New(env, errno == EAGAIN ? 0 : -errno);
  size_t kept = 0;
  for (size_t i = 0; i < static_cast<size_t>(r); i++) {
    if (h->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
      b.res[kResDropped]++;
      b.res[kResLastErrno] = EMSGSIZE;
      continue;
    }
    if (kept != i) {
      memmove(b.data + kept * b.slotSize + b.headroom, b.data + i * b.slotSize + b.headroom, h->msgs[i].msg_len);
    }
    b.offsets[kept] = static_cast<int32_t>(b.headroom);
    b.lengths[kept] = static_cast<int32_t>(h->msgs[i].msg_len);
    EncodeEndpoint(&h->addrs[i], b.endpoints + kept * kEndpointSize);
    kept++;
  }
  return Napi::Number::New(env, static_cast<double>(kept));
}

// udpSend(h, data, offsets, lengths, endpoints, slotSize, count, 0, res)
//   → datagrams sent. sendmmsg of the whole batch, each to its endpoint
//     record. A full socket buffer (EAGAIN, ENOBUFS) drops the rest of the
//     batch (res[0]); a datagram the kernel refuses (EMSGSIZE, ENETUNREACH,
//     a bad endpoint ...) is skipped and counted in res[1].
Napi::Value UdpSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BatchArgs b;
  if (!ArgBatch(info, true, true, &b) || !CheckPackets(env, b)) return env.Undefined();
  Handle* h = b.handle;
  if (b.count == 0) return Napi::Number::New(env, 0);
  EnsureScratch(h, b.count);
  const bool v6sock = h->kind() == Handle::kUdp6;
  size_t m = 0;
  for (size_t i = 0; i < b.count; i++) {
    socklen_t len;
    int err = DecodeEndpoint(b.endpoints + i * kEndpointSize, v6sock, &h->addrs[m], &len);
    if (err != 0) {
      b.res[kResFailed]++;
      b.res[kResLastErrno] = err;
      continue;
    }
    h->iovs[m].iov_base = b.data + i * b.slotSize + b.offsets[i];
    h->iovs[m].iov_len = static_cast<size_t>(b.lengths[i]);
    struct msghdr& mh = h->msgs[m].msg_hdr;
    memset(&mh, 0, sizeof mh);
    mh.msg_name = &h->addrs[m];
    mh.msg_namelen = len;
    mh.msg_iov = &h->iovs[m];
    mh.msg_iovlen = 1;
    m++;
  }
  size_t done = 0, sent = 0;
  while (done < m) {
    int r = sendmmsg(h->fd(), h->msgs.data() + done, static_cast<unsigned>(m - done), MSG_DONTWAIT);
    if (r > 0) {
      done += static_cast<size_t>(r);
      sent += static_cast<size_t>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    int e = r < 0 ? errno : EIO;
    b.res[kResLastErrno] = e;
    if (e == EAGAIN || e == ENOBUFS) {
      b.res[kResDropped] += static_cast<int32_t>(m - done);
      break;
    }
    b.res[kResFailed]++;
    done++;  // skip the datagram the kernel refused, keep sending the rest
  }
  return Napi::Number::New(env, static_cast<double>(sent));
}

}  // namespace

void InitUdp(Napi::Env env, Napi::Object exports) {
  exports.Set("udpOpen", Napi::Function::New<UdpOpen>(env, "udpOpen"));
  exports.Set("udpPort", Napi::Function::New<UdpPort>(env, "udpPort"));
  exports.Set("udpBufferSizes", Napi::Function::New<UdpBufferSizes>(env, "udpBufferSizes"));
  exports.Set("udpSetMark", Napi::Function::New<UdpSetMark>(env, "udpSetMark"));
  exports.Set("udpRecv", Napi::Function::New<UdpRecv>(env, "udpRecv"));
  exports.Set("udpSend", Napi::Function::New<UdpSend>(env, "udpSend"));
}

}  // namespace tb
