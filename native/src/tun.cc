// TUN: open /dev/net/tun, name/MTU/up-down ioctls, batch read and write.
//
// The kernel reports an interface's deletion on the fd itself: poll returns
// POLLERR, read and write fail with EBADFD (tun_chr_poll, tun_chr_read_iter
// and tun_chr_write_iter once tun_detach_all has cleared tfile->tun). A
// zero-length write tells up from down across namespaces without touching
// data: EINVAL (up: the kernel checked our empty packet), EIO (down), EBADFD
// (gone) — the same probe wireguard-go's routineHackListener uses.
//
// Offloads: when tunOpen's flags include IFF_VNET_HDR, the open also sets
// TUNSETVNETHDRSZ (10, sizeof(struct virtio_net_hdr)) and TUNSETOFFLOAD
// (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6), as wireguard-go does
// (tun/tun_linux.go). The kernel then hands us unchecksummed packets and TCP
// super-packets of up to 64 KiB, each behind a virtio_net_hdr; tunRead reads
// them into the Handle's scratch and tun-offload.cc completes checksums and
// splits super-packets into the batch, so JS still gets one plain IP packet
// per slot. Every write then needs a header too: tunWrite puts a zeroed one
// (GSO_NONE, no flags: the packet is complete) in front with writev, without
// copying the packet — or, for a run of consecutive TCP segments of one flow,
// writes them as one GSO_TCPV4/6 packet (GRO-style, tun-offload.cc), so the
// kernel's stack takes in one skb for dozens of segments. We do not advertise TUN_F_UFO/USO4/USO6, so the kernel
// segments UDP itself, nor TUN_F_TSO_ECN (ECN-marked TCP is segmented by the
// kernel too). If any of these ioctls fails, the open fails and the wrapper
// opens again without IFF_VNET_HDR.
#include "io.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace tb {

namespace {

struct OpenJob {
  const char* name;
  int flags;
  int fd;           // out
  char real[IFNAMSIZ];  // out
  const char* failed;   // out: the call that failed
};

// The offloads we can undo in tun-offload.cc: checksums and TCP segmentation.
// TUN_F_TSO* require TUN_F_CSUM (set_offload in drivers/net/tun.c).
constexpr unsigned kTunOffloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;

int OpenTunJob(void* p) {
  auto* job = static_cast<OpenJob*>(p);
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = static_cast<short>(job->flags);
  strncpy(ifr.ifr_name, job->name, IFNAMSIZ - 1);
  // No TUNSETPERSIST: the interface goes away when the last fd is closed.
  job->failed = "ioctl(TUNSETIFF)";
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  if ((job->flags & IFF_VNET_HDR) != 0) {
    // 10 is the kernel's default already (tun->vnet_hdr_sz); set it anyway,
    // since a persistent interface we attach to may have been changed.
    int sz = static_cast<int>(kVnetHdrLen);
    job->failed = "ioctl(TUNSETVNETHDRSZ)";
    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) != 0) {
      int e = errno;
      close(fd);
      return -e;
    }
    job->failed = "ioctl(TUNSETOFFLOAD)";
    if (ioctl(fd, TUNSETOFFLOAD, static_cast<unsigned long>(kTunOffloads)) != 0) {
      int e = errno;
      close(fd);
      return -e;
    }
  }
  job->fd = fd;
  memcpy(job->real, ifr.ifr_name, IFNAMSIZ);
  return fd;
}

int SocketJob(void*) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  return s < 0 ? -errno : s;
}

// A socket for SIOC* ioctls in the namespace where the interface lives now:
// after `ip link set NAME netns OTHER`, an ioctl by name in our namespace
// would miss it (or hit another interface of that name).
int ControlSocket(int tunfd) {
  int nsfd = ioctl(tunfd, TUNGETDEVNETNS);
  if (nsfd < 0) {
    if (errno == EBADFD) return -EBADFD;  // the interface is gone
    return SocketJob(nullptr);            // older kernel: our namespace
  }
  int s = IsOwnNetns(nsfd) ? SocketJob(nullptr) : InNetns(nsfd, SocketJob, nullptr);
  close(nsfd);
  return s;
}

// The interface's current name (TUNGETIFF asks the device, so it is right in
// whatever namespace the interface is now, and after a rename).
int CurrentName(int tunfd, struct ifreq* ifr) {
  memset(ifr, 0, sizeof *ifr);
  return ioctl(tunfd, TUNGETIFF, ifr) == 0 ? 0 : -errno;
}

// Runs one SIOC* ioctl on the interface, with ifr's name set to its current
// name (other fields as the caller left them); returns 0 or -errno and names
// the failing call.
int IfIoctl(int tunfd, unsigned long req, struct ifreq* ifr, const char** syscall) {
  *syscall = "ioctl(TUNGETIFF)";
  struct ifreq cur;
  int r = CurrentName(tunfd, &cur);
  if (r != 0) return r;
  memcpy(ifr->ifr_name, cur.ifr_name, IFNAMSIZ);
  *syscall = "socket";
  int s = ControlSocket(tunfd);
  if (s < 0) return s;
  *syscall = req == SIOCGIFMTU ? "ioctl(SIOCGIFMTU)"
             : req == SIOCSIFMTU ? "ioctl(SIOCSIFMTU)"
             : req == SIOCGIFFLAGS ? "ioctl(SIOCGIFFLAGS)"
                                   : "ioctl(SIOCSIFFLAGS)";
  r = ioctl(s, req, ifr) == 0 ? 0 : -errno;
  close(s);
  return r;
}

// tunOpen(name, flags, netns) → Handle. `name` may be a template ("tb%d");
// `flags` are TUNSETIFF flags (IFF_TUN | IFF_NO_PI [| IFF_TUN_EXCL]
// [| IFF_VNET_HDR: offloads, see the top]); `netns` is "" (ours) or a
// namespace file to create the interface in.
Napi::Value TunOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name, netns;
  int64_t flags;
  if (!ArgCount(info, 3) || !ArgString(info, 0, &name) || !ArgInt(info, 1, 0, 0xffff, &flags) ||
      !ArgString(info, 2, &netns)) {
    return env.Undefined();
  }
  if (name.size() >= IFNAMSIZ) {
    Napi::RangeError::New(env, "argument 0: interface name longer than 15 bytes").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  OpenJob job{name.c_str(), static_cast<int>(flags), -1, {0}, "ioctl(TUNSETIFF)"};
  int r;
  if (netns.empty()) {
    r = OpenTunJob(&job);
  } else {
    int nsfd = OpenNetns(netns);
    if (nsfd < 0) return ThrowErrno(env, -nsfd, "open(netns)");
    r = InNetns(nsfd, OpenTunJob, &job);
    close(nsfd);
  }
  if (r < 0) {
    bool setiff = strcmp(job.failed, "ioctl(TUNSETIFF)") == 0;  // or setns, before the job ran
    return ThrowErrno(env, -r, setiff && !netns.empty() ? "setns/ioctl(TUNSETIFF)" : job.failed);
  }
  Napi::Object obj = Handle::New(env, job.fd, Handle::kTun);
  if (obj.IsEmpty()) return env.Undefined();
  if ((flags & IFF_VNET_HDR) != 0) {
    Handle* h = Handle::Unwrap(obj);
    h->vnetHdr = true;
    h->tunScratch.resize(kTunScratchSize);
  }
  return obj;
}

// tunName(h) → the interface's current name.
Napi::Value TunName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ArgCount(info, 1)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, false);
  if (h == nullptr) return env.Undefined();
  struct ifreq ifr;
  int r = CurrentName(h->fd(), &ifr);
  if (r != 0) return ThrowErrno(env, -r, "ioctl(TUNGETIFF)");
  ifr.ifr_name[IFNAMSIZ - 1] = 0;
  return Napi::String::New(env, ifr.ifr_name);
}

// tunGetMtu(h) → MTU.
Napi::Value TunGetMtu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ArgCount(info, 1)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, false);
  if (h == nullptr) return env.Undefined();
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  const char* sc;
  int r = IfIoctl(h->fd(), SIOCGIFMTU, &ifr, &sc);
  if (r != 0) return ThrowErrno(env, -r, sc);
  return Napi::Number::New(env, ifr.ifr_mtu);
}

// tunSetMtu(h, mtu).
Napi::Value TunSetMtu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t mtu;
  if (!ArgCount(info, 2)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, false);
  if (h == nullptr || !ArgInt(info, 1, 68, 65535, &mtu)) return env.Undefined();
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_mtu = static_cast<int>(mtu);
  const char* sc;
  int r = IfIoctl(h->fd(), SIOCSIFMTU, &ifr, &sc);
  if (r != 0) return ThrowErrno(env, -r, sc);
  return env.Undefined();
}

// tunGetUp(h) → whether IFF_UP is set.
Napi::Value TunGetUp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ArgCount(info, 1)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, false);
  if (h == nullptr) return env.Undefined();
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  const char* sc;
  int r = IfIoctl(h->fd(), SIOCGIFFLAGS, &ifr, &sc);
  if (r != 0) return ThrowErrno(env, -r, sc);
  return Napi::Boolean::New(env, (ifr.ifr_flags & IFF_UP) != 0);
}

// tunSetUp(h, up): sets or clears IFF_UP.
Napi::Value TunSetUp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool up;
  if (!ArgCount(info, 2)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, false);
  if (h == nullptr || !ArgBool(info, 1, &up)) return env.Undefined();
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  const char* sc;
  int r = IfIoctl(h->fd(), SIOCGIFFLAGS, &ifr, &sc);
  if (r == 0) {
    if (up) {
      ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    } else {
      ifr.ifr_flags = static_cast<short>(ifr.ifr_flags & ~IFF_UP);
    }
    r = IfIoctl(h->fd(), SIOCSIFFLAGS, &ifr, &sc);
  }
  if (r != 0) return ThrowErrno(env, -r, sc);
  return env.Undefined();
}

// tunProbe(h) → errno of a zero-length write: EINVAL up, EIO down, EBADFD gone.
Napi::Value TunProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ArgCount(info, 1)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, false);
  if (h == nullptr) return env.Undefined();
  ssize_t n = write(h->fd(), nullptr, 0);
  return Napi::Number::New(env, n < 0 ? errno : 0);
}

// With IFF_VNET_HDR: read() into the Handle's scratch, then TunDeliver
// (tun-offload.cc) copies the packet, or the segments of a super-packet, into
// the batch. A super-packet that does not fit the slots left is kept and
// continued first on the next call. Returns the slots filled, or -errno when
// nothing was delivered and the first read failed.
double TunReadVnet(const BatchArgs& b) {
  Handle* h = b.handle;
  const SlotsOut out{b.data, b.offsets, b.lengths, b.slotSize, b.headroom, b.count};
  uint8_t* scratch = h->tunScratch.data();
  size_t n = 0;
  if (h->tunPendLen != 0) {
    bool more;
    n += TunDeliver(scratch, h->tunPendLen, &h->tunPendNext, &more, out, n, b.res);
    if (more) return static_cast<double>(n);  // the batch is full
    h->tunPendLen = 0;
  }
  while (n < b.count) {
    ssize_t r = read(h->fd(), scratch, kTunScratchSize);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      if (n == 0) return -errno;
      break;  // report what we have; the error repeats on the next call
    }
    size_t next = 0;
    bool more;
    n += TunDeliver(scratch, static_cast<size_t>(r), &next, &more, out, n, b.res);
    if (more) {
      h->tunPendLen = static_cast<size_t>(r);
      h->tunPendNext = next;
      break;
    }
  }
  return static_cast<double>(n);
}

// tunRead(h, data, offsets, lengths, null, slotSize, capacity, headroom, res)
//   → packets read (0 when none is pending), or -errno when the first read
//     failed. Reads until EAGAIN or `capacity` packets; packet i goes to
//     data[i*slotSize + headroom], up to slotSize - headroom bytes. With
//     IFF_VNET_HDR (see the top) the packets are plain IP packets all the
//     same; res[0] counts packets too big for a slot, res[1] malformed or
//     unsupported ones, res[3] the TCP super-packets that were split.
Napi::Value TunRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BatchArgs b;
  if (!ArgBatch(info, false, false, &b)) return env.Undefined();
  if (b.handle->vnetHdr) return Napi::Number::New(env, TunReadVnet(b));
  const int fd = b.handle->fd();
  const size_t room = b.slotSize - b.headroom;
  size_t n = 0;
  while (n < b.count) {
    ssize_t r = read(fd, b.data + n * b.slotSize + b.headroom, room);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      if (n == 0) return Napi::Number::New(env, -errno);
      break;  // report what we have; the error repeats on the next call
    }
    b.offsets[n] = static_cast<int32_t>(b.headroom);
    b.lengths[n] = static_cast<int32_t>(r);
    n++;
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// With IFF_VNET_HDR every write starts with a virtio_net_hdr (tun_get_user
// in drivers/net/tun.c reads one first). All zero is GSO_NONE without
// NEEDS_CSUM: a complete packet whose checksums the stack will verify.
const VirtioNetHdr kZeroVnetHdr = {};

// tunWrite(h, data, offsets, lengths, null, slotSize, count, 0, res) → packets
// written. One non-blocking write() per packet; a full queue (EAGAIN,
// ENOBUFS) drops the packet (res[0]), other errors fail it (res[1]). With
// IFF_VNET_HDR: a writev behind a zeroed virtio_net_hdr, or, for a run of
// TCP segments of one flow (TunCoalesce, tun-offload.cc), one GSO_TCPV4/6
// writev of them all — header, then each segment's payload, nothing copied
// but the headers — counted in res[3].
Napi::Value TunWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BatchArgs b;
  if (!ArgBatch(info, false, false, &b) || !CheckPackets(env, b)) return env.Undefined();
  Handle* h = b.handle;
  const int fd = h->fd();
  const bool vnet = h->vnetHdr;
  if (vnet && h->iovs.size() < kMaxCoalesce + 2) h->iovs.resize(kMaxCoalesce + 2);
  size_t written = 0;
  Coalesced c;
  for (size_t i = 0; i < b.count;) {
    uint8_t* p = b.data + i * b.slotSize + b.offsets[i];
    const size_t len = static_cast<size_t>(b.lengths[i]);
    size_t k = vnet ? TunCoalesce(b, i, &c) : 1;
    struct iovec* iov = h->iovs.data();
    int iovcnt = 2;
    if (k > 1) {
      iov[0] = {&c.vnet, kVnetHdrLen};
      iov[1] = {c.hdr, c.hdrLen};
      for (size_t j = 0; j < k; j++) {
        iov[2 + j] = {b.data + (i + j) * b.slotSize + b.offsets[i + j] + c.hdrLen,
                      static_cast<size_t>(b.lengths[i + j]) - c.hdrLen};
      }
      iovcnt = static_cast<int>(2 + k);
    } else if (vnet) {
      iov[0] = {const_cast<VirtioNetHdr*>(&kZeroVnetHdr), kVnetHdrLen};
      iov[1] = {p, len};
    }
    ssize_t r;
    do {
      r = vnet ? writev(fd, iov, iovcnt) : write(fd, p, len);
    } while (r < 0 && errno == EINTR);
    if (r >= 0) {
      written += k;
      if (k > 1) b.res[kResGso]++;
    } else {
      b.res[(errno == EAGAIN || errno == ENOBUFS) ? kResDropped : kResFailed] += static_cast<int32_t>(k);
      b.res[kResLastErrno] = errno;
    }
    i += k;
  }
  return Napi::Number::New(env, static_cast<double>(written));
}

}  // namespace

void InitTun(Napi::Env env, Napi::Object exports) {
  exports.Set("tunOpen", Napi::Function::New<TunOpen>(env, "tunOpen"));
  exports.Set("tunName", Napi::Function::New<TunName>(env, "tunName"));
  exports.Set("tunGetMtu", Napi::Function::New<TunGetMtu>(env, "tunGetMtu"));
  exports.Set("tunSetMtu", Napi::Function::New<TunSetMtu>(env, "tunSetMtu"));
  exports.Set("tunGetUp", Napi::Function::New<TunGetUp>(env, "tunGetUp"));
  exports.Set("tunSetUp", Napi::Function::New<TunSetUp>(env, "tunSetUp"));
  exports.Set("tunProbe", Napi::Function::New<TunProbe>(env, "tunProbe"));
  exports.Set("tunRead", Napi::Function::New<TunRead>(env, "tunRead"));
  exports.Set("tunWrite", Napi::Function::New<TunWrite>(env, "tunWrite"));
}

}  // namespace tb
