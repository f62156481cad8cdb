// The unprivileged ICMP echo ("ping") socket: socket(AF_INET, SOCK_DGRAM,
// IPPROTO_ICMP) and its IPv6 twin (net/ipv4/ping.c, net/ipv6/ping.c). Linux
// allows it to any process whose group is inside net.ipv4.ping_group_range
// (the range covers IPv6 too); others get EACCES. The kernel gives the socket
// an echo identifier of its own (it rewrites the one we send), computes the
// checksum, and delivers to it only the echo replies carrying that
// identifier, as ICMP messages without the IP header.
//
// It is a datagram socket like UDP's, so the batch calls udpRecv (recvmmsg,
// sources as endpoint records) and udpSend (sendmmsg to each slot's endpoint
// record; the port is ignored) serve it unchanged: the handle is of the UDP
// kind of its family. The netstack exit (src/server/netstack-exit/) relays
// its clients' echo requests through it.
#include "io.h"

#include <cerrno>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace tb {

namespace {

struct PingJobArgs {
  int family;
};

int PingJob(void* p) {
  auto* a = static_cast<PingJobArgs*>(p);
  const int proto = a->family == AF_INET6 ? static_cast<int>(IPPROTO_ICMPV6) : static_cast<int>(IPPROTO_ICMP);
  int fd = socket(a->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  return fd < 0 ? -errno : fd;
}

// pingOpen(family, netns) → Handle (a UDP kind: udpRecv/udpSend take it).
//   family 4: AF_INET/IPPROTO_ICMP; 6: AF_INET6/IPPROTO_ICMPV6. EACCES when
//   the process's group is outside net.ipv4.ping_group_range.
Napi::Value PingOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t family;
  std::string netns;
  if (!ArgCount(info, 2) || !ArgInt(info, 0, 4, 6, &family) || !ArgString(info, 1, &netns)) return env.Undefined();
  if (family != 4 && family != 6) {
    Napi::RangeError::New(env, "argument 0: expected 4 or 6").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  PingJobArgs job{family == 6 ? AF_INET6 : AF_INET};
  int fd;
  if (netns.empty()) {
    fd = PingJob(&job);
  } else {
    int nsfd = OpenNetns(netns);
    if (nsfd < 0) return ThrowErrno(env, -nsfd, "open(netns)");
    fd = InNetns(nsfd, PingJob, &job);
    close(nsfd);
  }
  if (fd < 0) return ThrowErrno(env, -fd, "socket(IPPROTO_ICMP)");
  return Handle::New(env, fd, family == 6 ? Handle::kUdp6 : Handle::kUdp4);
}

}  // namespace

void InitPing(Napi::Env env, Napi::Object exports) {
  exports.Set("pingOpen", Napi::Function::New<PingOpen>(env, "pingOpen"));
}

}  // namespace tb
